//! Transport: frames RFC 6455 says a server must refuse: one far larger than
//! any message needs, and a client frame without a mask; then the floods a
//! server must bound: a message in endless fragments, a burst of pings, a
//! compressed message that inflates 160-fold (docs/SCAN.md, "transport";
//! Palisade's own answers are in docs/PROTOCOL.md, close codes 1002, 1009
//! and 4008).

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::ScanError;
use crate::checks::Scan;
use crate::checks::frames::{self, CLOSE, CONTINUATION, PING, PONG, TEXT};
use crate::checks::message::{Reply, send_and_wait, still_up};
use crate::finding::{Rule, Severity};
use crate::net::{Io, READ_TIMEOUT, websocket};

/// A 2 MiB message is taken.
pub(crate) const OVERSIZE: Rule = Rule {
    id: "transport.oversize-accepted",
    severity: Severity::Medium,
    title: "a 2 MiB message is accepted (no message size limit: memory exhaustion)",
    fix: "cap the frame and message size (tens of KiB for chat) and close with 1009 above it, before reading the payload",
};
/// An unmasked client frame is taken.
pub(crate) const UNMASKED: Rule = Rule {
    id: "transport.unmasked-accepted",
    severity: Severity::Medium,
    title: "an unmasked client frame is accepted (RFC 6455 §5.1: the server must close)",
    fix: "use a WebSocket library that enforces client masking, and close with 1002",
};
/// Closed, but not with 1002.
pub(crate) const UNMASKED_CODE: Rule = Rule {
    id: "transport.unmasked-closed-without-1002",
    severity: Severity::Low,
    title: "an unmasked client frame closes the connection, but not with 1002 (protocol error)",
    fix: "close with 1002 so a client can tell a protocol error from a shutdown",
};

/// A message in endless fragments is taken.
pub(crate) const FRAGMENT_FLOOD: Rule = Rule {
    id: "transport.fragment-flood-accepted",
    severity: Severity::Medium,
    title: "a message of 4096 fragments (1 MiB, never finished) is taken without a close (no bound on a fragmented message)",
    fix: "count a fragmented message's total against the message size limit, close with 1009 past it, and bound the fragments per message",
};
/// A burst of pings is answered in full.
pub(crate) const PING_FLOOD: Rule = Rule {
    id: "transport.ping-flood-unlimited",
    severity: Severity::Low,
    title: "100 pings in one burst are all answered and the connection stays open (no control-frame rate limit)",
    fix: "rate-limit client pings and pongs per connection, and close a client that keeps flooding",
};
/// A permessage-deflate message that inflates to 16 MiB is taken.
pub(crate) const COMPRESSION_BOMB: Rule = Rule {
    id: "transport.compression-bomb-accepted",
    severity: Severity::High,
    title: "a 100 KiB compressed message that inflates to 16 MiB is taken (decompression bomb)",
    fix: "bound a message's inflated size by the message size limit while inflating, and close with 1009 past it",
};

/// Fragments of the fragment flood, and the size of each.
const FRAGMENTS: usize = 4096;
const FRAGMENT_BYTES: usize = 256;
/// Pings of the ping flood.
const PINGS: usize = 100;
/// What the compression bomb inflates to.
const BOMB_BYTES: usize = 16 * 1024 * 1024;
/// The flood probes' own client addresses against a loopback target
/// (`127.0.<n>.1`), away from every check family's.
const FLOOD_FAMILIES: [u8; 3] = [101, 102, 103];

/// Size of the oversize message.
const OVERSIZE_BYTES: usize = 2 * 1024 * 1024;
/// The unmasked frame's payload.
const UNMASKED_PAYLOAD: &[u8] = b"palisade-scan unmasked";
/// Most messages read while waiting for the close.
const MAX_MESSAGES: usize = 16;

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut ws = match scan.open_authenticated().await? {
        Ok(ws) => ws,
        Err(why) => {
            scan.report.skip("transport", format!("cannot open a connection with the credentials given: {why}"));
            return Ok(());
        }
    };
    scan.budget.spend(OVERSIZE_BYTES)?;
    let sent = format!("sent one text message of {OVERSIZE_BYTES} bytes");
    match send_and_wait(&mut ws, Message::text("a".repeat(OVERSIZE_BYTES))).await {
        Reply::Refused => {}
        Reply::Relayed => scan.found(&OVERSIZE, &format!("{sent}; got it back whole")),
        Reply::Nothing => scan.found(&OVERSIZE, &format!("{sent}; no close and no error in {READ_TIMEOUT:?}")),
    }
    drop(ws);
    still_up(scan, &sent).await?;
    unmasked(scan).await?;
    if !scan.may_flood() {
        for rule in [&FRAGMENT_FLOOD, &PING_FLOOD, &COMPRESSION_BOMB] {
            scan.report.skip(rule.id, "floods run against loopback only, unless --i-own-this-target");
        }
        return Ok(());
    }
    scan.budget.speak_from(FLOOD_FAMILIES[0]);
    fragment_flood(scan).await?;
    scan.budget.speak_from(FLOOD_FAMILIES[1]);
    ping_flood(scan).await?;
    scan.budget.speak_from(FLOOD_FAMILIES[2]);
    compression_bomb(scan).await?;
    still_up(scan, "after the fragment flood, the ping flood and the compression bomb").await
}

/// An upgraded raw connection with the credentials (and `extra` headers):
/// the stream and the 101, or `None` (recorded as a skip of `rule`).
async fn raw_open(
    scan: &mut Scan<'_>,
    rule: &Rule,
    extra: &[(String, String)],
) -> Result<Option<(Box<dyn Io>, crate::net::Answer)>, ScanError> {
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    headers.extend_from_slice(extra);
    let path = scan.path();
    let (io, answer) = scan.budget.upgrade(&path, &headers).await?;
    if answer.status != 101 {
        scan.report.skip(rule.id, format!("the handshake with the credentials got {}", answer.status));
        return Ok(None);
    }
    Ok(Some((io, answer)))
}

/// What the server did after a flood, read from its frames' headers until
/// [`READ_TIMEOUT`]: closed (a close frame or the connection dropped), or
/// not, with the count of pongs and data frames seen.
struct Aftermath {
    closed: bool,
    pongs: usize,
    data: usize,
}

async fn aftermath(io: &mut Box<dyn Io>) -> Aftermath {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut seen = Aftermath { closed: false, pongs: 0, data: 0 };
    // Bounded: at most a few frames per ping sent, and a few more.
    for _ in 0..(PINGS * 2 + 16) {
        match frames::next_opcode(io, deadline).await {
            Err(()) => break,
            Ok(None | Some(CLOSE)) => {
                seen.closed = true;
                break;
            }
            Ok(Some(PONG)) => seen.pongs += 1,
            Ok(Some(PING)) => {}
            Ok(Some(_)) => seen.data += 1,
        }
    }
    seen
}

/// Writes `bytes`, counted against the budget: whether all of it went out
/// (a server that closes mid-way makes the write fail).
async fn write(scan: &mut Scan<'_>, io: &mut Box<dyn Io>, bytes: &[u8]) -> Result<bool, ScanError> {
    scan.budget.spend(bytes.len())?;
    Ok(matches!(tokio::time::timeout(READ_TIMEOUT, io.write_all(bytes)).await, Ok(Ok(()))))
}

/// [`FRAGMENTS`] fragments of one text message, the last without FIN.
async fn fragment_flood(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some((mut io, _)) = raw_open(scan, &FRAGMENT_FLOOD, &[]).await? else { return Ok(()) };
    let chunk = [b'a'; FRAGMENT_BYTES];
    let mut all_sent = true;
    for batch in 0..FRAGMENTS / 64 {
        let mut bytes = Vec::with_capacity(64 * (FRAGMENT_BYTES + 8));
        for i in 0..64 {
            let opcode = if batch == 0 && i == 0 { TEXT } else { CONTINUATION };
            bytes.extend(frames::client_frame(false, false, opcode, &chunk));
        }
        if !write(scan, &mut io, &bytes).await? {
            all_sent = false;
            break;
        }
    }
    let seen = aftermath(&mut io).await;
    if all_sent && !seen.closed {
        let evidence = format!(
            "sent {FRAGMENTS} fragments of {FRAGMENT_BYTES} bytes of one text message, none with FIN; no close in {READ_TIMEOUT:?}"
        );
        scan.found(&FRAGMENT_FLOOD, &evidence);
    }
    Ok(())
}

/// [`PINGS`] pings in one write.
async fn ping_flood(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some((mut io, _)) = raw_open(scan, &PING_FLOOD, &[]).await? else { return Ok(()) };
    let bytes: Vec<u8> = (0..PINGS).flat_map(|_| frames::client_frame(true, false, PING, b"palisade-scan")).collect();
    let all_sent = write(scan, &mut io, &bytes).await?;
    let seen = aftermath(&mut io).await;
    if all_sent && !seen.closed && seen.pongs >= PINGS {
        let evidence =
            format!("sent {PINGS} pings in one burst; got {} pongs and no close in {READ_TIMEOUT:?}", seen.pongs);
        scan.found(&PING_FLOOD, &evidence);
    }
    Ok(())
}

/// Offers permessage-deflate; when the server takes it, sends one
/// compressed message that inflates to [`BOMB_BYTES`].
async fn compression_bomb(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let offer = [("Sec-WebSocket-Extensions".to_owned(), "permessage-deflate".to_owned())];
    let Some((mut io, answer)) = raw_open(scan, &COMPRESSION_BOMB, &offer).await? else { return Ok(()) };
    let taken = answer.header("sec-websocket-extensions").is_some_and(|e| e.contains("permessage-deflate"));
    if !taken {
        scan.report.skip(COMPRESSION_BOMB.id, "the target does not take permessage-deflate: nothing to inflate");
        return Ok(());
    }
    let bomb = frames::deflate_bomb(BOMB_BYTES);
    let frame = frames::client_frame(true, true, TEXT, &bomb);
    let all_sent = write(scan, &mut io, &frame).await?;
    let seen = aftermath(&mut io).await;
    if all_sent && !seen.closed {
        let what = if seen.data > 0 { "got a message back" } else { "no close" };
        let evidence = format!(
            "offered permessage-deflate, got it; sent one compressed text message of {} bytes that inflates to {BOMB_BYTES}; {what} in {READ_TIMEOUT:?}",
            bomb.len()
        );
        scan.found(&COMPRESSION_BOMB, &evidence);
    }
    Ok(())
}

/// Writes one unmasked text frame right after the 101 and reads for the
/// close.
async fn unmasked(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let (mut io, answer) = scan.budget.upgrade(&path, &headers).await?;
    if answer.status != 101 {
        scan.report.skip(UNMASKED.id, format!("the handshake with the credentials got {}", answer.status));
        return Ok(());
    }
    // FIN + text opcode, then a length under 126 with the mask bit clear.
    let mut frame = vec![0x81, u8::try_from(UNMASKED_PAYLOAD.len()).unwrap_or(0)];
    frame.extend_from_slice(UNMASKED_PAYLOAD);
    scan.budget.spend(frame.len())?;
    if io.write_all(&frame).await.is_err() {
        return Ok(());
    }
    let mut ws = websocket(io).await;
    let sent = "sent a text frame without a mask after the 101";
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(close))))) if u16::from(close.code) == 1002 => return Ok(()),
            Ok(Some(Ok(Message::Close(close)))) => {
                let code = close.map_or_else(|| "no code".to_owned(), |c| u16::from(c.code).to_string());
                scan.found(&UNMASKED_CODE, &format!("{sent}; got a close with {code}"));
                return Ok(());
            }
            Ok(None | Some(Err(_))) => {
                scan.found(&UNMASKED_CODE, &format!("{sent}; the connection was dropped without a close frame"));
                return Ok(());
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => break,
        }
    }
    scan.found(&UNMASKED, &format!("{sent}; the connection stayed open"));
    Ok(())
}

pub(crate) fn plan() -> Vec<String> {
    vec![
        format!("with the credentials, send one {OVERSIZE_BYTES}-byte text message; expect a close (1009) or an error"),
        "with the credentials, send one unmasked text frame; expect a close with 1002".to_owned(),
        format!(
            "(loopback only) send one text message as {FRAGMENTS} fragments of {FRAGMENT_BYTES} bytes, none final; no close is {}",
            FRAGMENT_FLOOD.id
        ),
        format!("(loopback only) send {PINGS} pings in one burst; every pong and no close is {}", PING_FLOOD.id),
        format!(
            "(loopback only) offer permessage-deflate; if taken, send a message inflating to {BOMB_BYTES} bytes; no close is {}",
            COMPRESSION_BOMB.id
        ),
    ]
}
