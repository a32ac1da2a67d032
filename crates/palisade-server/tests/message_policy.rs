//! What an attacker tries with message contents: malformed and hostile
//! payloads, stolen sessions without the CSRF token, replayed messages,
//! script injection. Each refusal carries its code and reaches no one else.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The shipped default policy, with a profanity list and a blocked host.
const POLICY: &str = r#"
[sanitize]
profanity_words = ["darn"]
url_blocked_hosts = ["evil.example"]
"#;

async fn pair(server: &TestServer, roles: &[&str]) -> (Ws, Ws) {
    let (mut alice, _) = connect(server, &token("alice", roles)).await;
    let (mut bob, _) = connect(server, &token("bob", &["student"])).await;
    join(&mut alice, "course:1").await;
    join(&mut bob, "course:1").await;
    (alice, bob)
}

fn send(id: &str, event: &str, data: &Value) -> Value {
    json!({"type":"send","id":id,"room":"course:1","event":event,"data":data})
}

#[tokio::test]
async fn script_injection_is_stripped_from_what_others_receive() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, mut bob) = pair(&server, &["student"]).await;
    let content = r#"<b>hi</b> <img src=x onerror=alert(1)><script>steal()</script><a href="javascript:alert(1)">x</a> <a href="https://evil.example/">y</a> darn"#;
    let ack =
        request(&mut alice, send("1", "chat.message", &json!({"content": content, "mentions": ["<i>bob</i>"]}))).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let event = next_json(&mut bob).await;
    let got = event["data"]["content"].as_str().unwrap();
    for bad in ["<script", "onerror", "javascript:", "<img", "evil.example"] {
        assert!(!got.contains(bad), "{bad} survived in {got}");
    }
    assert!(got.contains("<b>hi</b>") && got.contains("****"), "{got}");
    assert_eq!(event["data"]["mentions"], json!(["&lt;i&gt;bob&lt;/i&gt;"]));
}

#[tokio::test]
async fn each_payload_refusal_has_its_code_and_reaches_no_one() {
    let server = TestServer::start_lenient(POLICY).await;
    let (mut alice, mut bob) = pair(&server, &["student"]).await;
    let deep = serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(33), "]".repeat(33))).unwrap();
    let cases = [
        (send("a", "chat.message", &json!({"content": ""})), "invalid_payload", Some("/content")),
        (send("b", "chat.message", &json!({"content": "hi", "user_id": "admin"})), "invalid_payload", Some("")),
        (send("c", "chat.message", &json!({"content": "x".repeat(9000)})), "too_large", None),
        (send("d", "chat.message", &json!({"content": "hi", "mentions": deep})), "bad_request", None),
        (send("e", "quiz.answer", &json!({"sessionId": "s", "questionId": "q", "answer": 3})), "replay", None),
        (send("f", "file.upload", &json!({"name": "a.png", "size": 10, "mime": "image/png"})), "csrf_failed", None),
        (send("g", "quiz.answer", &json!({"sessionId": "s", "questionId": "q", "answer": 99})), "replay", None),
    ];
    for (frame, code, path) in cases {
        let reply = request(&mut alice, frame.clone()).await;
        assert_eq!(reply["code"], code, "{frame}: {reply}");
        assert_eq!(reply.get("path").and_then(Value::as_str), path, "{reply}");
        // Neither the limits nor the schema leak into the message.
        let message = reply["message"].as_str().unwrap();
        assert!(!message.contains("2000") && !message.contains("maxLength"), "{message}");
    }
    // Duplicate keys cannot be produced by serde_json::Value: send raw text.
    let dup =
        r#"{"type":"send","id":"h","room":"course:1","event":"chat.message","data":{"content":"a","content":"b"}}"#;
    send_raw(&mut alice, dup).await;
    assert_eq!(next_json(&mut alice).await["code"], "bad_request");
    assert_silent(&mut bob, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn csrf_protected_events_pass_with_the_welcome_token() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, welcome) = connect(&server, &token("alice", &["student"])).await;
    join(&mut alice, "course:1").await;
    let csrf = welcome["csrf"].as_str().unwrap();
    let mut frame =
        send("1", "file.upload", &json!({"name": "../../etc/pass wd.png", "size": 10, "mime": "image/png"}));
    frame["csrf"] = json!(csrf);
    assert_eq!(request(&mut alice, frame).await["type"], "ack");
    // The broadcast copy carries the cleaned file name.
    let event = next_json(&mut alice).await;
    assert_eq!(event["data"]["name"], "pass wd.png");
}

#[tokio::test]
async fn a_replayed_quiz_answer_is_refused() {
    let server = TestServer::start(POLICY).await;
    let (mut alice, mut bob) = pair(&server, &["student"]).await;
    let now_ms = unix_now() * 1000;
    let mut frame =
        send("1", "quiz.answer", &json!({"sessionId": "s1", "questionId": "q1", "answer": 3, "timeSpent": 12.5}));
    frame["nonce"] = json!("n-1");
    frame["ts"] = json!(now_ms);
    assert_eq!(request(&mut alice, frame.clone()).await["type"], "ack");
    assert_eq!(next_json(&mut bob).await["event"], "quiz.answer");
    frame["id"] = json!("2");
    assert_eq!(request(&mut alice, frame.clone()).await["code"], "replay");
    frame["nonce"] = json!("n-2");
    frame["ts"] = json!(now_ms - 120_000);
    assert_eq!(request(&mut alice, frame).await["code"], "replay");
    assert_silent(&mut bob, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn csrf_tokens_rotate_and_the_old_one_expires_after_the_grace() {
    let server = TestServer::start("[csrf]\nrotate_every = \"1s\"\ngrace = \"500ms\"\n").await;
    let (mut alice, welcome) = connect(&server, &token("alice", &["student"])).await;
    let first = welcome["csrf"].as_str().unwrap().to_owned();
    let rotated = next_json(&mut alice).await;
    assert_eq!(rotated["type"], "csrf");
    assert_ne!(rotated["csrf"], json!(first));
}
