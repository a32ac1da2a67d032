//! The abuse guard over real sockets (issue 8): message floods escalate from
//! `rate_limited` to 4008 to a ban, reconnect storms are banned, caps refuse
//! the one too many and keep the rest, limits per user and per address hold
//! across connections, control frames count, a ban closes every live
//! connection of the address, and `dry_run` blocks nothing but counts
//! everything. Each test plays its clients from its own 127.0.0.x addresses.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use palisade_core::refusal::Kind;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Bytes, Message};

fn chat(id: usize) -> Value {
    json!({"type":"send","id":id.to_string(),"room":"lobby","event":"chat.message","data":{"content":"hi"}})
}

/// What the server did with one more message: the reply, or the close.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ack,
    Error(String, Option<u64>),
    Closed(Option<u16>),
}

/// Sends one chat message and reads what comes back for it.
async fn send_one(ws: &mut Ws, id: usize) -> Outcome {
    if ws.send(Message::Text(chat(id).to_string().into())).await.is_err() {
        return Outcome::Closed(close_code(ws).await);
    }
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a reply in time") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("ack") => return Outcome::Ack,
                    Some("error") => {
                        return Outcome::Error(v["code"].as_str().unwrap().to_owned(), v["retry_after_ms"].as_u64());
                    }
                    _ => continue,
                }
            }
            Some(Ok(Message::Close(frame))) => return Outcome::Closed(frame.map(|f| f.code.into())),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Outcome::Closed(None),
        }
    }
}

/// Sends until the server closes; returns every outcome, the close last.
async fn flood(ws: &mut Ws, max: usize) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for id in 0..max {
        let outcome = send_one(ws, id).await;
        let closed = matches!(outcome, Outcome::Closed(_));
        outcomes.push(outcome);
        if closed {
            return outcomes;
        }
    }
    panic!("not closed after {max} messages: {:?}", outcomes.last());
}

async fn joined_from(server: &TestServer, from: [u8; 4], user: &str) -> Ws {
    let (mut ws, _) = connect_from(server, from, &token(user, &[])).await;
    join(&mut ws, "lobby").await;
    ws
}

#[tokio::test]
async fn a_message_flood_is_rate_limited_then_disconnected_then_banned() {
    let server = TestServer::start("").await;
    const FROM: [u8; 4] = [127, 0, 8, 1];
    let mut ws = joined_from(&server, FROM, "flooder").await;
    let outcomes = flood(&mut ws, 500).await;
    // The burst of connection_rate ("20/s") passes (less the join), then
    // rate_limited with a retry hint, then 4008 at disconnect_at.
    let first_error = outcomes.iter().position(|o| matches!(o, Outcome::Error(..))).unwrap();
    assert!(outcomes[..first_error].iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
    let Outcome::Error(code, retry) = &outcomes[first_error] else { unreachable!() };
    assert_eq!(code, "rate_limited");
    assert!(retry.is_some_and(|ms| ms > 0 && ms <= 1000), "{retry:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Closed(Some(4008))), "{outcomes:?}");
    // The same user, back: its score disconnects it at its first excess…
    let mut again = joined_from(&server, FROM, "flooder").await;
    assert_eq!(flood(&mut again, 500).await.last(), Some(&Outcome::Closed(Some(4008))));
    // …and the next disconnect takes the address past ban_at: 4003.
    let mut third = joined_from(&server, FROM, "flooder").await;
    assert_eq!(flood(&mut third, 500).await.last(), Some(&Outcome::Closed(Some(4003))));
    let (status, _) =
        refused(&server, Dial { bearer: Some(&token("flooder", &[])), from: Some(FROM), ..Dial::default() }).await;
    assert_eq!(status, 403, "banned at the next handshake");
    // Other addresses, even for the same user name, are untouched.
    let mut other = joined_from(&server, [127, 0, 8, 2], "someone").await;
    assert_eq!(send_one(&mut other, 1).await, Outcome::Ack);
    assert_eq!(server.stats.bans(), 1);
    assert_eq!(server.stats.disconnects(), 2);
}

#[tokio::test]
async fn a_reconnect_storm_is_refused_with_retry_after_then_banned() {
    let server = TestServer::start("").await;
    const FROM: [u8; 4] = [127, 0, 9, 1];
    let t = token("stormy", &[]);
    let dial_opts = || Dial { bearer: Some(&t), from: Some(FROM), ..Dial::default() };
    // connect_rate "30/min": a burst of 30 upgrades.
    for _ in 0..30 {
        let (ws, _) = dial(&server, dial_opts()).await.expect("within the burst");
        drop(ws);
    }
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (status, retry) = refused(&server, dial_opts()).await;
        if status == 429 {
            assert!(retry.is_some_and(|s| s >= 1), "429 says when to retry");
        }
        statuses.push(status);
        if status == 403 {
            break;
        }
    }
    // Each refused attempt weighs 2 (rapid_reconnect): ban_at 60 takes 30,
    // or 31 when the score's decay between attempts shaved a fraction off.
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((30..=31).contains(&limited), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&403));
    assert!(server.stats.refused(Kind::RapidReconnect) >= 30);
    let (_ws, _) = connect_from(&server, [127, 0, 9, 2], &token("calm", &[])).await;
}

#[tokio::test]
async fn caps_refuse_the_one_too_many_and_keep_the_rest() {
    let server = TestServer::start("[abuse]\nmax_connections_per_ip = 3\nmax_connections_per_user = 2\n").await;
    // Per address, whoever the users are.
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(joined_from(&server, [127, 0, 10, 1], &format!("u{n}")).await);
    }
    let (status, retry) =
        refused(&server, Dial { bearer: Some(&token("u9", &[])), from: Some([127, 0, 10, 1]), ..Dial::default() })
            .await;
    assert_eq!((status, retry.is_some()), (429, true));
    for (i, ws) in held.iter_mut().enumerate() {
        assert_eq!(send_one(ws, i).await, Outcome::Ack, "the open ones are untouched");
    }
    // Per user, whatever the addresses.
    let _a = joined_from(&server, [127, 0, 10, 2], "alice").await;
    let _b = joined_from(&server, [127, 0, 10, 3], "alice").await;
    let (status, _) =
        refused(&server, Dial { bearer: Some(&token("alice", &[])), from: Some([127, 0, 10, 4]), ..Dial::default() })
            .await;
    assert_eq!(status, 429);
    // A closed connection frees its place.
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let mut admitted = false;
    for _ in 0..50 {
        let t = token("u9", &[]);
        if dial(&server, Dial { bearer: Some(&t), from: Some([127, 0, 10, 1]), ..Dial::default() }).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the address's place was not released");
}

#[tokio::test]
async fn a_users_rate_holds_across_three_connections() {
    // Per connection far more than per user, and no refill within the test.
    let server = TestServer::start("[abuse]\nuser_rate = \"10/h\"\n").await;
    let mut conns = Vec::new();
    for n in 1..=3 {
        conns.push(joined_from(&server, [127, 0, 11, n], "alice").await);
    }
    let mut outcomes = Vec::new();
    for round in 0..6 {
        for ws in &mut conns {
            outcomes.push(send_one(ws, round).await);
        }
    }
    // Ten messages per user: the three joins, and seven sends.
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Ack).count(), 7, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Ack || matches!(o, Outcome::Error(c, Some(_)) if c == "rate_limited")),
        "{outcomes:?}"
    );
    // Bob, on the same addresses, has his own budget.
    let mut bob = joined_from(&server, [127, 0, 11, 1], "bob").await;
    assert_eq!(send_one(&mut bob, 1).await, Outcome::Ack);
}

#[tokio::test]
async fn an_events_own_rate_is_enforced_per_user() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect_from(&server, [127, 0, 12, 1], &token("uploader", &["student"])).await;
    join(&mut ws, "lobby").await;
    let welcome_csrf = {
        // file.upload needs the CSRF token: reconnect to read it.
        let (mut fresh, welcome) = connect_from(&server, [127, 0, 12, 1], &token("uploader", &["student"])).await;
        join(&mut fresh, "lobby").await;
        ws = fresh;
        welcome["csrf"].as_str().unwrap().to_owned()
    };
    let upload = |id: &str| {
        json!({"type":"send","id":id,"room":"lobby","event":"file.upload","csrf":welcome_csrf,
               "data":{"name":"a.png","size":10,"mime":"image/png"}})
    };
    // "1/s": the first passes, the second in the same second does not.
    assert_eq!(request(&mut ws, upload("1")).await["type"], "ack");
    let second = request(&mut ws, upload("2")).await;
    assert_eq!(second["code"], "rate_limited", "{second}");
    assert!(second["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 1000), "{second}");
}

#[tokio::test]
async fn a_ping_flood_is_closed() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect_from(&server, [127, 0, 13, 1], &token("pinger", &[])).await;
    // control_rate "5/s"; every excess weighs 1 and disconnect_at is 30.
    for _ in 0..200 {
        if ws.send(Message::Ping(Bytes::from_static(b"x"))).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, Some(4008));
    assert_eq!(server.stats.refused(Kind::RateExcess), 0, "a ping has no reply to refuse; it is only scored");
}

#[tokio::test]
async fn a_ban_closes_every_live_connection_of_the_address() {
    let server = TestServer::start("[abuse]\nban_at = 30\n").await;
    const FROM: [u8; 4] = [127, 0, 14, 1];
    let mut bystander = joined_from(&server, FROM, "roommate").await;
    let mut neighbour = joined_from(&server, [127, 0, 14, 2], "neighbour").await;
    let mut flooder = joined_from(&server, FROM, "flooder").await;
    // ban_at equal to disconnect_at: the first disconnect is a ban.
    assert_eq!(flood(&mut flooder, 500).await.last(), Some(&Outcome::Closed(Some(4003))));
    assert_eq!(close_code(&mut bystander).await, Some(4003), "same address: closed too");
    assert_eq!(send_one(&mut neighbour, 1).await, Outcome::Ack, "another address: untouched");
}

#[tokio::test]
async fn an_attack_that_goes_on_while_banned_yields_one_ban_record() {
    let mut server = TestServer::start("[abuse]\nban_at = 30\n").await;
    const FROM: [u8; 4] = [127, 0, 14, 9];
    let mut flooders = Vec::new();
    for i in 0..4 {
        flooders.push(joined_from(&server, FROM, &format!("flooder{i}")).await);
    }
    // Every connection pipelines its flood, so refusals keep arriving on
    // the others after the first one crossed ban_at.
    for ws in &mut flooders {
        for id in 0..300 {
            if ws.feed(Message::Text(chat(id).to_string().into())).await.is_err() {
                break;
            }
        }
        let _ = ws.flush().await;
    }
    for ws in &mut flooders {
        while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, ws.next()).await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    }
    // And it goes on knocking while banned.
    for _ in 0..20 {
        let (status, _) =
            refused(&server, Dial { bearer: Some(&token("flooder0", &[])), from: Some(FROM), ..Dial::default() }).await;
        assert_eq!(status, 403);
    }
    assert_eq!(server.stats.bans(), 1);
    server.shutdown().await;
    let db = rusqlite::Connection::open(server.data_dir.join("palisade.db")).unwrap();
    let records: i64 = db.query_row("SELECT count(*) FROM audit WHERE kind = 'ban'", [], |r| r.get(0)).unwrap();
    assert_eq!(records, 1, "one attack, one ban record");
    let history: i64 = db.query_row("SELECT count(*) FROM ban_history WHERE action = 'ban'", [], |r| r.get(0)).unwrap();
    assert_eq!(history, 1, "one ban saved once");
}

#[tokio::test]
async fn spam_is_refused_as_invalid_payload() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect_from(&server, [127, 0, 15, 1], &token("spammer", &[])).await;
    join(&mut ws, "lobby").await;
    let frame = json!({"type":"send","id":"s","room":"lobby","event":"chat.message",
                       "data":{"content":"!".repeat(33)}});
    assert_eq!(request(&mut ws, frame).await["code"], "invalid_payload");
    let links = (0..9).map(|i| format!("https://l{i}.test")).collect::<Vec<_>>().join(" ");
    let frame = json!({"type":"send","id":"l","room":"lobby","event":"chat.message","data":{"content":links}});
    assert_eq!(request(&mut ws, frame).await["code"], "invalid_payload");
    assert_eq!(server.stats.refused(Kind::Spam), 2);
}

#[tokio::test]
async fn dry_run_blocks_nothing_but_counts_everything() {
    let server = TestServer::start("[abuse]\ndry_run = true\nmax_connections_per_ip = 1\n").await;
    const FROM: [u8; 4] = [127, 0, 16, 1];
    let mut ws = joined_from(&server, FROM, "loud").await;
    // Over the per-address cap: admitted, reported.
    let _second = joined_from(&server, FROM, "loud").await;
    for id in 0..200 {
        assert_eq!(send_one(&mut ws, id).await, Outcome::Ack, "message {id}");
    }
    let spam = json!({"type":"send","id":"s","room":"lobby","event":"chat.message","data":{"content":"z".repeat(40)}});
    assert_eq!(request(&mut ws, spam).await["type"], "ack");
    assert_eq!(server.stats.unenforced(Kind::TooManyConnections), 1);
    assert_eq!(server.stats.unenforced(Kind::Spam), 1);
    assert!(server.stats.unenforced(Kind::RateExcess) >= 150, "{}", server.stats.unenforced(Kind::RateExcess));
    assert_eq!((server.stats.bans(), server.stats.disconnects()), (0, 0), "computed, not enforced");
    assert_eq!(server.stats.refused(Kind::RateExcess), 0);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let server =
        TestServer::start("[server]\ntrusted_proxies = [\"127.0.17.1\"]\n[abuse]\nmax_connections_per_ip = 1\n").await;
    let via =
        |client: &'static str, from: [u8; 4]| Dial { from: Some(from), forwarded_for: Some(client), ..Dial::default() };
    let t = token("u", &[]);
    // Through the trusted proxy: each forwarded client has its own cap.
    let a = dial(&server, Dial { bearer: Some(&t), ..via("127.0.17.10", [127, 0, 17, 1]) }).await;
    let b = dial(&server, Dial { bearer: Some(&t), ..via("127.0.17.11", [127, 0, 17, 1]) }).await;
    assert!(a.is_ok() && b.is_ok());
    let (status, _) = refused(&server, Dial { bearer: Some(&t), ..via("127.0.17.10", [127, 0, 17, 1]) }).await;
    assert_eq!(status, 429, "127.0.17.10 already holds its one connection");
    // A client-written entry left of the proxy's is ignored.
    let (status, _) =
        refused(&server, Dial { bearer: Some(&t), ..via("127.0.17.99, 127.0.17.10", [127, 0, 17, 1]) }).await;
    assert_eq!(status, 429);
    // From an untrusted peer, the header is ignored: the peer counts.
    let c = dial(&server, Dial { bearer: Some(&t), ..via("127.0.17.12", [127, 0, 17, 2]) }).await;
    assert!(c.is_ok());
    let (status, _) = refused(&server, Dial { bearer: Some(&t), ..via("127.0.17.13", [127, 0, 17, 2]) }).await;
    assert_eq!(status, 429, "a spoofed header does not buy a fresh address");
}
