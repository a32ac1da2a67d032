//! Room owners (docs/POLICY.md, "Room owners"): only a room's owner, or a
//! moderator, deletes it, removes members or publishes owner-only events;
//! removed members are told and are out; owners survive a restart.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::owners::{POLICY, code, say};
use common::*;
use serde_json::{Value, json};

/// The next frame that is not an event (a member also gets its own).
async fn next_notice(ws: &mut Ws) -> Value {
    loop {
        let frame = next_json(ws).await;
        if frame["type"] != "event" {
            return frame;
        }
    }
}

#[tokio::test]
async fn only_the_first_joiner_acts_as_owner_and_removed_members_are_told() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    let (mut carol, _) = connect(&server, &token("carol", &[])).await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        join(ws, "team:a").await;
    }

    // Others are refused every owner action.
    assert_eq!(code(&say(&mut bob, "team:a", "room.topic").await), "forbidden");
    let remove_alice = json!({"type":"room.remove_member","id":"r","room":"team:a","user":"alice"});
    assert_eq!(code(&request(&mut bob, remove_alice).await), "forbidden");
    assert_eq!(code(&request(&mut bob, json!({"type":"room.delete","id":"d","room":"team:a"})).await), "forbidden");

    // The owner's topic reaches the others.
    assert_eq!(say(&mut alice, "team:a", "room.topic").await["type"], "ack");
    assert_eq!(next_json(&mut bob).await["event"], "room.topic");
    assert_eq!(next_json(&mut carol).await["event"], "room.topic");

    // The owner removes bob: bob is told, and is no longer a member.
    let remove_bob = json!({"type":"room.remove_member","id":"r","room":"team:a","user":"bob"});
    assert_eq!(request(&mut alice, remove_bob).await["type"], "ack");
    let removed = next_notice(&mut bob).await;
    assert_eq!(
        (removed["type"].as_str(), removed["room"].as_str(), removed["reason"].as_str()),
        (Some("removed"), Some("team:a"), Some("removed_by_owner")),
        "{removed}"
    );
    assert_eq!(code(&say(&mut bob, "team:a", "chat.message").await), "not_member");
    assert_eq!(say(&mut carol, "team:a", "chat.message").await["type"], "ack");
    assert_eq!(next_json(&mut alice).await["event"], "chat.message");

    // The owner deletes the room: carol is told, its history is gone.
    let deleted = request(&mut alice, json!({"type":"room.delete","id":"d","room":"team:a"})).await;
    assert_eq!(deleted["type"], "ack", "{deleted}");
    let removed = next_notice(&mut carol).await;
    assert_eq!((removed["type"].as_str(), removed["reason"].as_str()), (Some("removed"), Some("deleted")));
    assert_eq!(code(&say(&mut carol, "team:a", "chat.message").await), "not_member");
    let back = request(&mut bob, json!({"type":"recover","id":"r","room":"team:a","since":1})).await;
    assert_eq!((back["type"].as_str(), back["complete"].as_bool()), (Some("ack"), Some(false)), "{back}");
    // Bob joined first after the delete: the room is his now.
    assert_eq!(say(&mut bob, "team:a", "room.topic").await["type"], "ack");
}

#[tokio::test]
async fn created_rooms_keep_their_owner_across_a_restart_and_moderators_override() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    let join_x = json!({"type":"join","id":"j","room":"club:x"});
    assert_eq!(code(&request(&mut bob, join_x.clone()).await), "forbidden", "not created yet");
    let create = json!({"type":"create","id":"c","room":"club:x"});
    let created = request(&mut alice, create.clone()).await;
    assert!(created["type"] == "ack" && created["seq"].is_u64(), "{created}");
    assert_eq!(code(&request(&mut bob, create.clone()).await), "forbidden", "owned by alice");
    drop((alice, bob));

    let server = server.restart().await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    assert_eq!(code(&request(&mut bob, create.clone()).await), "forbidden", "still alice's after a restart");
    assert_eq!(request(&mut bob, join_x).await["type"], "ack", "and still created");
    let delete = json!({"type":"room.delete","id":"d","room":"club:x"});
    assert_eq!(code(&request(&mut bob, delete.clone()).await), "forbidden");

    let (mut moderator, _) = connect(&server, &token("mo", &["moderator"])).await;
    assert_eq!(request(&mut moderator, delete).await["type"], "ack", "a moderator deletes any club");
    let removed = next_notice(&mut bob).await;
    assert_eq!((removed["type"].as_str(), removed["reason"].as_str()), (Some("removed"), Some("deleted")));
    assert_eq!(request(&mut bob, create).await["type"], "ack", "a deleted room is anyone's to create");
}
