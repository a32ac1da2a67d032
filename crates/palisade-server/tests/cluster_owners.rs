//! Rooms' owners in cluster mode (docs/OPERATIONS.md, "Cluster mode"), on
//! a real `redis-server`: a room has one owner in the cluster, whichever
//! node its members are on, and the owner's deletions and removals reach
//! the members on every node.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::nodes;
use common::redis::RedisServer;
use common::*;
use serde_json::{Value, json};
use tokio::time::Instant;

const POLICY: &str = r#"
[roles.user]
permissions = ["chat:send"]

[rooms."team:*"]
owners = "first_join"
history = 10
[rooms."club:*"]
owners = "create"

[events."chat.message"]
permission = "chat:send"
[events."room.topic"]
owner = true
"#;

fn code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().unwrap()
}

async fn say(ws: &mut Ws, room: &str, event: &str) -> Value {
    request(ws, json!({"type":"send","id":"s","room":room,"event":event,"data":{"content":"hi"}})).await
}

/// The next `removed` notice (events before it are skipped).
async fn removed(ws: &mut Ws) -> (String, String) {
    loop {
        let frame = next_json(ws).await;
        if frame["type"] == "removed" {
            return (frame["room"].as_str().unwrap().to_owned(), frame["reason"].as_str().unwrap().to_owned());
        }
        assert_eq!(frame["type"], "event", "{frame}");
    }
}

#[tokio::test]
async fn a_room_has_one_owner_in_the_cluster_and_the_owners_acts_reach_every_node() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut alice, _) = connect(&a, &token("alice", &["user"])).await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;

    // First joins on both nodes at once: one of them owns the room, in
    // every node's eyes.
    tokio::join!(join(&mut alice, "team:x"), join(&mut bob, "team:x"));
    let (by_alice, by_bob) =
        tokio::join!(say(&mut alice, "team:x", "room.topic"), say(&mut bob, "team:x", "room.topic"));
    let owners = [&by_alice, &by_bob].iter().filter(|r| r["type"] == "ack").count();
    assert_eq!(owners, 1, "exactly one owner: {by_alice} {by_bob}");
    let (mut owner, mut other, other_user) =
        if by_alice["type"] == "ack" { (alice, bob, "bob") } else { (bob, alice, "alice") };
    assert_eq!(code(if other_user == "bob" { &by_bob } else { &by_alice }), "forbidden");
    assert_eq!(code(&request(&mut other, json!({"type":"room.delete","id":"d","room":"team:x"})).await), "forbidden");

    // The owner's removal reaches the member on the other node.
    let remove = json!({"type":"room.remove_member","id":"r","room":"team:x","user":other_user});
    assert_eq!(request(&mut owner, remove).await["type"], "ack");
    assert_eq!(removed(&mut other).await, ("team:x".to_owned(), "removed_by_owner".to_owned()));
    assert_eq!(code(&say(&mut other, "team:x", "chat.message").await), "not_member");

    // A deletion too, and it drops the room's history for every node.
    join(&mut other, "team:x").await;
    assert_eq!(say(&mut owner, "team:x", "chat.message").await["type"], "ack");
    assert_eq!(request(&mut owner, json!({"type":"room.delete","id":"d","room":"team:x"})).await["type"], "ack");
    assert_eq!(removed(&mut other).await, ("team:x".to_owned(), "deleted".to_owned()));
    let back = request(&mut other, json!({"type":"recover","id":"r","room":"team:x","since":0})).await;
    assert_eq!(back["type"], "ack", "{back}");
    assert_eq!(back["complete"], false, "nothing kept: {back}");

    // The deleted room is anyone's again, on any node, once that node
    // has heard of the deletion (the change stream, within moments).
    let deadline = Instant::now() + WAIT;
    loop {
        request(&mut other, json!({"type":"leave","id":"l","room":"team:x"})).await;
        join(&mut other, "team:x").await;
        if say(&mut other, "team:x", "room.topic").await["type"] == "ack" {
            break;
        }
        assert!(Instant::now() < deadline, "the deleted room never became claimable on the other node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    join(&mut owner, "team:x").await;
    assert_eq!(code(&say(&mut owner, "team:x", "room.topic").await), "forbidden", "the old owner is not any more");
}

#[tokio::test]
async fn a_create_on_one_node_refuses_the_same_create_on_the_other() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut carol, _) = connect(&a, &token("carol", &["user"])).await;
    let (mut dave, _) = connect(&b, &token("dave", &["user"])).await;

    // At once: one create wins, the other is refused.
    let create = |id: &str| json!({"type":"create","id":id,"room":"club:y"});
    let (by_carol, by_dave) = tokio::join!(request(&mut carol, create("c")), request(&mut dave, create("d")));
    let wins = [&by_carol, &by_dave].iter().filter(|r| r["type"] == "ack").count();
    assert_eq!(wins, 1, "{by_carol} {by_dave}");
    let (mut winner, mut loser) = if by_carol["type"] == "ack" { (carol, dave) } else { (dave, carol) };
    assert_eq!(code(&request(&mut loser, create("again")).await), "forbidden", "and again later");
    assert_eq!(say(&mut winner, "club:y", "room.topic").await["type"], "ack");

    // A plain join of a created room is allowed on the other node, without
    // owning it.
    join(&mut loser, "club:y").await;
    assert_eq!(code(&say(&mut loser, "club:y", "room.topic").await), "forbidden");
}
