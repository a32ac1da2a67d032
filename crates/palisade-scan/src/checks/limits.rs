//! Limits: what the endpoint does when one client asks for too much, in
//! bounded floods (loopback only unless `--i-own-this-target`): a burst of
//! messages, a burst of connections, and, once it has banned the client,
//! whether the ban holds when the client comes straight back
//! (docs/SCAN.md, "limits").

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::checks::Scan;
use crate::checks::talk;
use crate::finding::{Rule, Severity};
use crate::net::{READ_TIMEOUT, Ws};
use crate::{Options, ScanError};

/// A burst of messages is taken whole.
pub(crate) const MESSAGE_FLOOD: Rule = Rule {
    id: "limits.message-flood-unlimited",
    severity: Severity::Medium,
    title: "100 messages in one burst are all accepted (no message rate limit: one client can flood a room)",
    fix: "rate-limit messages per connection, user and address, answer the excess with an error, and disconnect a client that keeps on",
};
/// A burst of connections is taken whole.
pub(crate) const CONNECTION_FLOOD: Rule = Rule {
    id: "limits.connection-flood-unlimited",
    severity: Severity::Medium,
    title: "40 connections from one address within seconds are all accepted and held (no connection rate or cap)",
    fix: "rate-limit handshakes per address and cap open connections per address and per user (429 with Retry-After)",
};
/// A ban does not outlive the connection it closed.
pub(crate) const BAN: Rule = Rule {
    id: "limits.ban-not-persistent",
    severity: Severity::High,
    title: "a client the endpoint just banned is let straight back in",
    fix: "keep bans by address (and user) with an expiry, and check them before the 101 of every handshake",
};

/// Messages per round of the message flood, and rounds at most.
const BURST: usize = 100;
const ROUNDS: usize = 8;
/// Handshakes of the connection flood.
const CONNECTIONS: usize = 40;
/// The connection flood's client address against a loopback target
/// (`127.0.105.1`), apart from the message flood's (the family's own).
const CONNECTION_FAMILY: u8 = 105;
/// Close code of a ban (Palisade's 4003; PROTOCOL.md §4).
const BANNED: u16 = 4003;

/// What one round of the message flood got back.
#[derive(Default)]
struct Round {
    accepted: usize,
    refused: usize,
    close: Option<u16>,
    dropped: bool,
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    if !scan.may_flood() {
        scan.report.skip("limits", "floods run against loopback only, unless --i-own-this-target");
        return Ok(());
    }
    message_flood(scan).await?;
    let family = scan.budget.source();
    scan.budget.speak_from(CONNECTION_FAMILY);
    let outcome = connection_flood(scan).await;
    scan.budget.set_source(family);
    outcome
}

/// Up to [`ROUNDS`] rounds of [`BURST`] sends to `--room`, each on a new
/// connection from the same address, until the target bans it; then one
/// more handshake from that address.
async fn message_flood(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some(room) = scan.options.room.clone() else {
        scan.report.skip(MESSAGE_FLOOD.id, "needs --room (a room the identity may publish in)");
        return Ok(());
    };
    let event = talk::event(scan.options).to_owned();
    let mut banned = None;
    for round in 0..ROUNDS {
        let mut ws = match scan.open_authenticated().await? {
            Ok(ws) => ws,
            Err(why) if round > 0 && why.contains("403") => {
                banned = Some(format!("round {} of the flood was refused at the handshake ({why})", round + 1));
                break;
            }
            Err(why) => {
                scan.report.skip("limits", format!("cannot open a connection with the credentials given: {why}"));
                return Ok(());
            }
        };
        let joined = talk::request(&mut ws, &talk::join("palisade-scan-limits-join", &room)).await;
        if !joined.accepted() {
            scan.report.skip("limits", format!("cannot join {room}: {}", joined.describe()));
            return Ok(());
        }
        let got = burst(scan, &mut ws, &room, &event).await?;
        if round == 0 && got.refused == 0 && got.close.is_none() && !got.dropped && got.accepted >= BURST {
            let evidence = format!("sent {BURST} {event} messages to {room} in one burst; all {BURST} were accepted");
            scan.found(&MESSAGE_FLOOD, &evidence);
            scan.report.skip(BAN.id, "the message flood was never refused: no ban to test");
            return Ok(());
        }
        if got.close == Some(BANNED) {
            banned = Some(format!(
                "round {} of {BURST} messages: {} accepted, {} refused, then close {BANNED}",
                round + 1,
                got.accepted,
                got.refused
            ));
            break;
        }
    }
    let Some(how) = banned else {
        scan.report.skip(BAN.id, format!("no ban (close {BANNED} or 403) after {ROUNDS} rounds of {BURST} messages"));
        return Ok(());
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    if let Ok(mut ws) = scan.open_authenticated().await? {
        // Accepted: but a ban may also close it at once.
        let deadline = Instant::now() + READ_TIMEOUT;
        let closed = loop {
            match timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => break true,
                Ok(Some(Ok(_))) => {}
                Err(_) => break false,
            }
        };
        if !closed {
            scan.found(&BAN, &format!("{how}; 1 s later a handshake from the same address got 101 and stayed open"));
        }
    }
    Ok(())
}

/// Writes [`BURST`] sends at once and reads what comes back for
/// [`READ_TIMEOUT`].
async fn burst(scan: &mut Scan<'_>, ws: &mut Ws, room: &str, event: &str) -> Result<Round, ScanError> {
    let mut round = Round::default();
    for i in 0..BURST {
        let data = talk::data(scan.options.data.as_deref(), &talk::unique("flood"))?;
        let text = talk::send(&format!("palisade-scan-flood-{i}"), room, event, data).to_string();
        scan.budget.spend(text.len())?;
        if ws.feed(Message::text(text)).await.is_err() {
            round.dropped = true;
            return Ok(round);
        }
    }
    if ws.flush().await.is_err() {
        round.dropped = true;
        return Ok(round);
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..BURST * 4 {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(None | Some(Err(_))) => {
                round.dropped = true;
                break;
            }
            Ok(Some(Ok(Message::Close(close)))) => {
                round.close = Some(close.map_or(1005, |c| u16::from(c.code)));
                break;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                let id = v["id"].as_str().unwrap_or_default();
                if !id.starts_with("palisade-scan-flood-") {
                    continue;
                }
                match v["type"].as_str() {
                    Some("error") => round.refused += 1,
                    // An ack, or the message relayed as sent.
                    _ => round.accepted += 1,
                }
            }
            Ok(Some(Ok(_))) => {}
        }
        if round.accepted + round.refused >= BURST {
            break;
        }
    }
    Ok(round)
}

/// [`CONNECTIONS`] handshakes with the credentials at the probe pace (no
/// 429 waited out), all held open until the last.
async fn connection_flood(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..CONNECTIONS {
        let (io, answer) = scan.budget.upgrade_once(&path, &headers).await?;
        if answer.status == 101 {
            held.push(io);
        } else {
            refused.push(answer.status);
        }
    }
    if refused.is_empty() {
        let evidence =
            format!("opened {CONNECTIONS} connections from one address, one every 200 ms, all held open; all got 101");
        scan.found(&CONNECTION_FLOOD, &evidence);
    }
    drop(held);
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let room = options.room.as_deref().unwrap_or("<--room>");
    vec![
        format!(
            "(loopback only) send {BURST} {} messages to {room} in one burst; all accepted is {}",
            talk::event(options),
            MESSAGE_FLOOD.id
        ),
        format!(
            "(loopback only) repeat on new connections, {ROUNDS} rounds at most, until close {BANNED} or 403; a handshake 1 s later that gets 101 is {}",
            BAN.id
        ),
        format!(
            "(loopback only) open {CONNECTIONS} connections, one every 200 ms, and hold them; all accepted is {}",
            CONNECTION_FLOOD.id
        ),
    ]
}
