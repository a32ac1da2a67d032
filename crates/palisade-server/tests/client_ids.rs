//! Client message ids (docs/PROTOCOL.md §2.1, `send.cid`): a client that
//! lost its connection before the `ack` sends the message again with the
//! same `cid`, and the room sees it once.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const POLICY: &str = r#"
[rooms.lobby]
[events."chat.message"]
"#;

#[tokio::test]
async fn a_message_resent_after_a_reconnect_reaches_the_room_once() {
    let server = TestServer::start(POLICY).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut bob, "lobby").await;
    let message = json!({"type":"send","id":"1","room":"lobby","event":"chat.message","data":{"n":1},"cid":"m-1"});

    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    join(&mut alice, "lobby").await;
    let first = request(&mut alice, message.clone()).await;
    assert_eq!(first["type"], "ack", "{first}");
    assert!(first.get("duplicate").is_none(), "{first}");
    let seq = first["seq"].as_u64().unwrap();
    assert_eq!(next_json(&mut bob).await["seq"], seq);
    drop(alice);

    // The same message from a new connection: its first seq, not a second event.
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    join(&mut alice, "lobby").await;
    let again = request(&mut alice, message.clone()).await;
    assert_eq!((again["seq"].as_u64(), again["duplicate"].as_bool()), (Some(seq), Some(true)), "{again}");
    assert_silent(&mut bob, Duration::from_millis(200)).await;

    // Another user's same cid is another message.
    let (mut carol, _) = connect(&server, &token("carol", &[])).await;
    join(&mut carol, "lobby").await;
    let hers = request(&mut carol, message).await;
    assert!(hers["seq"].as_u64().unwrap() > seq && hers.get("duplicate").is_none(), "{hers}");
    assert_eq!(next_json(&mut bob).await["seq"], hers["seq"]);
}
