//! A member whose rights shrink tries to stay: a `refresh` with fewer roles
//! or a narrower `rooms` claim, or a policy reload that drops a permission,
//! must take it out of the rooms it may no longer be in, and say so.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn chat(id: &str, room: &str) -> Value {
    json!({"type":"send","id":id,"room":room,"event":"chat.message","data":{"content":"hi"}})
}

/// Sends `refresh` and returns the frames up to and including its reply.
async fn refresh(ws: &mut Ws, token: &str) -> Vec<Value> {
    send_json(ws, json!({"type":"refresh","id":"r","token":token})).await;
    let mut frames = Vec::new();
    loop {
        let frame = next_json(ws).await;
        let done = frame["id"] == "r";
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_refresh_with_fewer_roles_removes_the_member_from_rooms_it_lost() {
    let server = TestServer::start("").await;
    let (mut alice, _) = connect(&server, &token("alice", &["student"])).await;
    let (mut bob, _) = connect(&server, &token("bob", &["student"])).await;
    join(&mut alice, "course:1").await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "course:1").await;

    // Same user, no longer a student: course rooms need `course:join`.
    let frames = refresh(&mut alice, &token("alice", &[])).await;
    assert_eq!(
        frames,
        [
            json!({"type":"removed","room":"course:1","code":"forbidden","reason":"rights"}),
            json!({"type":"ack","id":"r"})
        ],
    );

    // The room no longer reaches her, and she can no longer publish there…
    assert_eq!(request(&mut bob, chat("b1", "course:1")).await["type"], "ack");
    assert_silent(&mut alice, Duration::from_millis(300)).await;
    assert_eq!(request(&mut alice, chat("a1", "course:1")).await["code"], "not_member");
    assert_eq!(request(&mut alice, json!({"type":"join","id":"j","room":"course:1"})).await["code"], "forbidden");
    // …while the lobby, which she may still join, is kept.
    assert_eq!(request(&mut alice, chat("a2", "lobby")).await["type"], "ack");
}

#[tokio::test]
async fn a_refresh_with_a_narrower_rooms_claim_removes_the_rooms_outside_it() {
    let server = TestServer::start("").await;
    let (mut alice, _) = connect(&server, &token("alice", &["student"])).await;
    join(&mut alice, "course:1").await;
    join(&mut alice, "course:2").await;
    let narrowed = sign(
        &json!({"sub": "alice", "roles": ["student"], "rooms": ["course:1"], "exp": unix_now() + 600,
                "iss": "palisade", "aud": "palisade"}),
        SECRET,
    );
    let frames = refresh(&mut alice, &narrowed).await;
    assert_eq!(frames[0], json!({"type":"removed","room":"course:2","code":"forbidden","reason":"rights"}));
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(request(&mut alice, chat("a1", "course:1")).await["type"], "ack");
    // Publishing checks the claim too, before membership.
    assert_eq!(request(&mut alice, chat("a2", "course:2")).await["code"], "forbidden");
}

#[tokio::test]
async fn a_reload_that_drops_a_permission_removes_members_without_waiting_for_them() {
    let server = TestServer::start("").await;
    let (mut alice, _) = connect(&server, &token("alice", &["student"])).await;
    let (mut teacher, _) = connect(&server, &token("tess", &["teacher"])).await;
    join(&mut alice, "course:1").await;
    join(&mut alice, "lobby").await;
    join(&mut teacher, "course:1").await;

    // Students lose `course:join`; teachers keep it.
    let mut config = std::fs::read_to_string(&server.config_path).unwrap();
    config.push_str(
        "\n[roles.user]\npermissions = [\"chat:send\"]\n[roles.student]\npermissions = [\"chat:send\"]\n\
         [roles.teacher]\npermissions = [\"chat:*\", \"course:*\"]\n",
    );
    std::fs::write(&server.config_path, config).unwrap();
    server.reloader.reload(&BTreeMap::new()).unwrap();

    // Alice is told without sending anything; the teacher is not.
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type":"removed","room":"course:1","code":"forbidden","reason":"rights"})
    );
    assert_eq!(request(&mut teacher, chat("t1", "course:1")).await["type"], "ack");
    assert_silent(&mut alice, Duration::from_millis(300)).await;
    assert_eq!(request(&mut alice, chat("a1", "course:1")).await["code"], "not_member");
    assert_eq!(request(&mut alice, chat("a2", "lobby")).await["type"], "ack");
}
