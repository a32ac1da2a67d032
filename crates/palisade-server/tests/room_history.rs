//! Room history and `recover` (docs/PROTOCOL.md §3): a client back from a
//! reconnect gets exactly what it missed, is told when that is not
//! everything, and a room's `seq` never goes backwards.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const POLICY: &str = r#"
[roles.user]
permissions = ["chat:send"]
[roles.staff]
permissions = ["staff:join", "chat:send"]

[rooms.lobby]
history = 3
history_ttl = "1h"
[rooms.plain]
[rooms.staff]
join = "staff:join"
history = 3

[events."chat.message"]
permission = "chat:send"
"#;

async fn say(ws: &mut Ws, room: &str, text: &str) -> u64 {
    let frame = json!({"type":"send","id":text,"room":room,"event":"chat.message","data":{"content":text}});
    let ack = request(ws, frame).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().unwrap()
}

async fn join_seq(ws: &mut Ws, room: &str) -> u64 {
    let ack = request(ws, json!({"type":"join","id":"j","room":room})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().expect("a join's ack carries the room's seq")
}

/// Sends `recover` and reads the replayed events up to its ack.
async fn recover(ws: &mut Ws, room: &str, since: u64) -> (Vec<Value>, Value) {
    send_json(ws, json!({"type":"recover","id":"r","room":room,"since":since})).await;
    let mut events = Vec::new();
    loop {
        let frame = next_json(ws).await;
        match frame["type"].as_str() {
            Some("event") => events.push(frame),
            _ => return (events, frame),
        }
    }
}

fn contents(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["data"]["content"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_reconnecting_client_recovers_exactly_what_it_missed() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    let seen = join_seq(&mut bob, "lobby").await;
    let first = say(&mut alice, "lobby", "one").await;
    assert_eq!(next_json(&mut bob).await["seq"], first);
    drop(bob);

    say(&mut alice, "lobby", "two").await;
    let last = say(&mut alice, "lobby", "three").await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    let (events, ack) = recover(&mut bob, "lobby", first).await;
    assert_eq!(contents(&events), ["two", "three"]);
    assert!(events.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    assert_eq!(events[0]["from"]["id"], "alice", "replayed as the event was sent");
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64(), ack["complete"].as_bool()),
        (Some("ack"), Some(last), Some(true))
    );
    assert!(seen < first, "the join's seq is the room's newest, before any event");

    // Joined by the recover: what comes next arrives live.
    let live = say(&mut alice, "lobby", "four").await;
    assert_eq!(next_json(&mut bob).await["seq"], live);
}

#[tokio::test]
async fn a_since_older_than_the_ring_or_from_elsewhere_is_incomplete() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    join(&mut alice, "lobby").await;
    let mut seqs = Vec::new();
    for text in ["a", "b", "c", "d", "e"] {
        seqs.push(say(&mut alice, "lobby", text).await);
    }
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    let (events, ack) = recover(&mut bob, "lobby", seqs[0]).await;
    assert_eq!(contents(&events), ["c", "d", "e"], "the ring keeps 3");
    assert_eq!(ack["complete"], false, "b was lost");
    let (events, ack) = recover(&mut bob, "lobby", 7).await;
    assert_eq!((events.len(), &ack["complete"]), (3, &json!(false)), "another epoch");
    let (events, ack) = recover(&mut bob, "lobby", seqs[4]).await;
    assert_eq!((events.len(), &ack["complete"]), (0, &json!(true)), "nothing missed");

    // A room without history replays nothing, and says so.
    join(&mut alice, "plain").await;
    let said = say(&mut alice, "plain", "x").await;
    let (events, ack) = recover(&mut bob, "plain", said - 1).await;
    assert_eq!((events.len(), &ack["complete"]), (0, &json!(false)));
}

#[tokio::test]
async fn seq_survives_the_room_emptying_and_a_restart() {
    let mut server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    join(&mut alice, "plain").await;
    let before = say(&mut alice, "plain", "x").await;
    request(&mut alice, json!({"type":"leave","id":"l","room":"plain"})).await;
    let again = join_seq(&mut alice, "plain").await;
    assert!(again >= before, "{again} after {before}: emptied, not reset");
    assert!(say(&mut alice, "plain", "y").await > before);
    drop(alice);
    server.shutdown().await;

    let restarted = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&restarted, &token("alice", &[])).await;
    assert!(join_seq(&mut alice, "plain").await > before, "seeded from the clock after a restart");
}

#[tokio::test]
async fn recover_needs_the_right_to_join() {
    let server = TestServer::start(POLICY).await;
    let (mut sam, _) = connect(&server, &token("sam", &["staff"])).await;
    join(&mut sam, "staff").await;
    let said = say(&mut sam, "staff", "staff only").await;
    let (mut mallory, _) = connect(&server, &token("mallory", &[])).await;
    let (events, reply) = recover(&mut mallory, "staff", said - 1).await;
    assert!(events.is_empty(), "nothing of the room's history leaks");
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")), "{reply}");
}
