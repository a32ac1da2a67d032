//! What members receive is what the policy promised: the schema holds for
//! the sanitized copy, not only for what the sender wrote, and no field of
//! the default policy reaches them unconstrained.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn send(id: &str, event: &str, data: &Value) -> Value {
    json!({"type":"send","id":id,"room":"course:1","event":event,"data":data})
}

async fn pair(server: &TestServer) -> (Ws, Ws) {
    let (mut alice, _) = connect(server, &token("alice", &["student"])).await;
    let (mut bob, _) = connect(server, &token("bob", &["student"])).await;
    join(&mut alice, "course:1").await;
    join(&mut bob, "course:1").await;
    (alice, bob)
}

#[tokio::test]
async fn a_script_only_message_is_refused_not_broadcast_empty() {
    let server = TestServer::start("").await;
    let (mut alice, mut bob) = pair(&server).await;
    // `minLength: 1` holds for what was sent; the sanitized copy is "".
    let reply = request(&mut alice, send("1", "chat.message", &json!({"content": "<script>x</script>"}))).await;
    assert_eq!(
        (reply["code"].as_str(), reply["path"].as_str()),
        (Some("invalid_payload"), Some("/content")),
        "{reply}"
    );
    assert_eq!(reply["id"], "1");
    assert_silent(&mut bob, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn quiz_ids_carrying_markup_are_refused() {
    let server = TestServer::start("").await;
    let (mut alice, mut bob) = pair(&server).await;
    let now_ms = unix_now() * 1000;
    for (i, (field, value)) in
        [("sessionId", "<img src=x onerror=alert(1)>"), ("questionId", "q1\u{202e}")].into_iter().enumerate()
    {
        let mut data = json!({"sessionId": "s1", "questionId": "q1", "answer": 1});
        data[field] = json!(value);
        let mut frame = send(&format!("q{i}"), "quiz.answer", &data);
        frame["nonce"] = json!(format!("n-{i}"));
        frame["ts"] = json!(now_ms);
        let reply = request(&mut alice, frame).await;
        assert_eq!(reply["code"], "invalid_payload", "{reply}");
        assert_eq!(reply["path"], format!("/{field}"));
    }
    assert_silent(&mut bob, Duration::from_millis(300)).await;
}
