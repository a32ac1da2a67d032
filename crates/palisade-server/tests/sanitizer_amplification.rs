//! A message may not cost its recipients more than its limit: a chat
//! message that the sanitizers would multiply is refused to its sender, and
//! the room carries on as if it had never been sent.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// HTML's formatting elements, which the tree builder reopens in every new
/// block ("reconstruct the active formatting elements").
const FORMATTING: [&str; 14] =
    ["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"];

/// A `<p>`, 80 distinct formatting elements (distinct attributes, so none
/// is deduplicated), then `<p>x` up to 2,000 characters: under every limit
/// of the default `chat.message` as sent, hundreds of KB once cleaned.
fn amplifying_content() -> String {
    let mut out = String::from("<p>");
    for (i, tag) in FORMATTING.iter().cycle().take(80).enumerate() {
        out.push_str(&format!("<{tag} id={i}>"));
    }
    while out.len() + 4 <= 2000 {
        out.push_str("<p>x");
    }
    out
}

fn chat(id: &str, content: &str) -> Value {
    json!({"type":"send","id":id,"room":"lobby","event":"chat.message","data":{"content":content}})
}

/// Sends `chat` from `ws` and reads until both its ack and its own copy of
/// the event have arrived (in either order); returns the event.
async fn publish(ws: &mut Ws, id: &str, content: &str) -> Value {
    send_json(ws, chat(id, content)).await;
    let (mut acked, mut event) = (false, Value::Null);
    while !acked || event.is_null() {
        let frame = next_json(ws).await;
        match frame["type"].as_str() {
            Some("ack") if frame["id"] == id => acked = true,
            Some("event") => event = frame,
            _ => panic!("unexpected frame {frame}"),
        }
    }
    event
}

#[tokio::test]
async fn a_chat_message_that_amplifies_in_html_is_refused_and_the_room_stays_up() {
    let server = TestServer::start("").await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;

    let content = amplifying_content();
    assert!(content.len() <= 2000 && content.matches('<').count() < 512);
    let reply = request(&mut alice, chat("amp", &content)).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("too_large")), "{reply}");
    assert_eq!(reply["id"], "amp");
    assert_silent(&mut bob, Duration::from_millis(300)).await;

    // Both are still connected, and both can still send and receive.
    let own = publish(&mut alice, "after-1", "still here").await;
    assert_eq!(own["data"]["content"], "still here");
    let seen = next_json(&mut bob).await;
    assert_eq!((seen["type"].as_str(), &seen["data"]["content"]), (Some("event"), &json!("still here")), "{seen}");
    publish(&mut bob, "after-2", "me too").await;
    let seen = next_json(&mut alice).await;
    assert_eq!(seen["data"]["content"], "me too", "{seen}");
}

#[tokio::test]
async fn escaping_that_lengthens_a_message_past_its_limit_is_refused() {
    // No schema, so only the size limit stands between the copy and the room.
    let policy = r#"
[events."chat.message"]
permission = "chat:send"
max_bytes = 1000
sanitize = { "/content" = "text" }
"#;
    let server = TestServer::start(policy).await;
    let (mut alice, _) = connect(&server, &token("alice", &[])).await;
    let (mut bob, _) = connect(&server, &token("bob", &[])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    // 900 quotes are 914 bytes as sent and 5,414 once `'` is `&#x27;`.
    let reply = request(&mut alice, chat("quotes", &"'".repeat(900))).await;
    assert_eq!(reply["code"], "too_large", "{reply}");
    assert_silent(&mut bob, Duration::from_millis(300)).await;
    let own = publish(&mut alice, "fine", "it's fine").await;
    assert_eq!(own["data"]["content"], "it&#x27;s fine");
    assert_eq!(next_json(&mut bob).await["data"]["content"], "it&#x27;s fine");
}
