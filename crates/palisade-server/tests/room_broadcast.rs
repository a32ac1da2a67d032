//! Members of a room see each other's events; nobody else does, and nobody
//! can speak for someone else.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const POLICY: &str = r#"
[roles.user]
permissions = ["chat:send"]
[roles.teacher]
permissions = ["announce:send", "chat:send"]

[rooms.lobby]
[rooms.other]
[rooms.announcements]
publish = "announce:send"

[events."chat.message"]
permission = "chat:send"
[events."admin.broadcast"]
permission = "admin:broadcast"
"#;

fn send(id: &str, room: &str, event: &str, data: &serde_json::Value) -> serde_json::Value {
    json!({"type":"send","id":id,"room":room,"event":event,"data":data})
}

#[tokio::test]
async fn three_members_see_every_event_in_order_with_increasing_seq() {
    let server = TestServer::start(POLICY).await;
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (mut ws, _) = connect(&server, &token(name, &[])).await;
        join(&mut ws, "lobby").await;
        clients.push(ws);
    }
    let (mut outsider, _) = connect(&server, &token("mallory", &[])).await;
    join(&mut outsider, "other").await;

    // Everyone publishes three times, without waiting.
    for round in 0..3 {
        for (i, ws) in clients.iter_mut().enumerate() {
            let id = format!("m{round}-{i}");
            send_json(ws, send(&id, "lobby", "chat.message", &json!({"content": id}))).await;
        }
    }
    // Each client gets an ack (with a seq) per own message, and sees all
    // nine events, its own included, in the same strictly increasing order.
    let mut acked = Vec::new();
    let mut views = Vec::new();
    for ws in &mut clients {
        let (mut acks, mut events) = (0, Vec::new());
        while acks < 3 || events.len() < 9 {
            let frame = next_json(ws).await;
            match frame["type"].as_str() {
                Some("ack") => {
                    acks += 1;
                    acked.push(frame["seq"].as_u64().unwrap());
                }
                Some("event") => {
                    assert_eq!(
                        (frame["room"].as_str(), frame["event"].as_str()),
                        (Some("lobby"), Some("chat.message"))
                    );
                    let content = frame["data"]["content"].as_str().unwrap().to_owned();
                    // The sender named is the one whose message it is.
                    let sender = content.rsplit('-').next().unwrap().parse::<usize>().unwrap();
                    assert_eq!(frame["from"]["id"], ["alice", "bob", "carol"][sender]);
                    events.push((frame["seq"].as_u64().unwrap(), content));
                }
                _ => panic!("unexpected {frame}"),
            }
        }
        assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "{events:?}");
        views.push(events);
    }
    acked.sort_unstable();
    assert_eq!(views[0].iter().map(|e| e.0).collect::<Vec<_>>(), acked);
    assert!(views.iter().all(|v| *v == views[0]));
    assert_silent(&mut outsider, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn identity_comes_from_the_token_not_the_payload() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    let spoof = json!({"content":"hi","from":{"id":"admin","name":"admin"},"user_id":"admin"});
    let ack = request(&mut alice, send("1", "lobby", "chat.message", &spoof)).await;
    assert_eq!(ack["type"], "ack");
    let event = next_json(&mut bob).await;
    assert_eq!(event["from"], json!({"id":"alice","name":"alice-name"}));
}

#[tokio::test]
async fn refused_requests_get_their_code_and_broadcast_nothing() {
    let server = TestServer::start_lenient(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    join(&mut alice, "announcements").await;
    join(&mut bob, "lobby").await;
    join(&mut bob, "announcements").await;

    let cases = [
        (send("a", "announcements", "chat.message", &json!({})), "forbidden"),
        (send("b", "lobby", "admin.broadcast", &json!({})), "forbidden"),
        (send("c", "lobby", "no.such.event", &json!({})), "unknown_event"),
        (send("d", "other", "chat.message", &json!({})), "not_member"),
        (json!({"type":"join","id":"e","room":"unlisted"}), "forbidden"),
        (json!({"type":"join","id":"f","room":"has space"}), "bad_request"),
        (json!({"type":"leave","id":"g","room":"other"}), "not_member"),
        (json!({"type":"frobnicate","id":"h"}), "bad_request"),
        (json!({"type":"send","id":"i","room":"lobby"}), "bad_request"),
    ];
    for (frame, code) in cases {
        let reply = request(&mut alice, frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame}");
        assert_eq!(reply["code"], code, "{frame}");
        assert!(reply["ref"].as_str().unwrap().starts_with("r_"));
        assert!(reply["message"].as_str().unwrap().len() < 40);
    }
    // Not JSON at all: an error with no id.
    alice.send(Message::Text("{nope".into())).await.unwrap();
    let reply = next_json(&mut alice).await;
    assert_eq!((reply["code"].as_str(), reply.get("id")), (Some("bad_request"), None));

    assert_silent(&mut bob, Duration::from_millis(300)).await;

    // A teacher may announce; bob sees exactly that.
    let (mut teacher, _) = connect(&server, &token("tess", &["teacher"])).await;
    join(&mut teacher, "announcements").await;
    let ack = request(&mut teacher, send("t", "announcements", "chat.message", &json!({"content":"quiz"}))).await;
    assert_eq!(ack["type"], "ack");
    let event = next_json(&mut bob).await;
    assert_eq!((event["room"].as_str(), event["from"]["id"].as_str()), (Some("announcements"), Some("tess")));
}

#[tokio::test]
async fn leaving_stops_delivery() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    let ack = request(&mut bob, json!({"type":"leave","id":"l","room":"lobby"})).await;
    assert_eq!(ack["type"], "ack");
    request(&mut alice, send("1", "lobby", "chat.message", &json!({"content":"x"}))).await;
    assert_silent(&mut bob, Duration::from_millis(300)).await;
}
