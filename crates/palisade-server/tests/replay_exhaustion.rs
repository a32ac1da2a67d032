//! An attacker tries to exhaust the replay-nonce store so that everyone's
//! replay-protected events are refused: with frames it has no right to
//! send, with frames to a room it is not in, and with its own accepted
//! messages (issue 7, finding 3). Each attack may lock out only the
//! attacker.

mod common;

use common::*;
use serde_json::{Value, json};

/// A store small enough to fill in a few hundred frames, and the quiz
/// event without its `rate`, which would refuse the floods below before the
/// store is reached (a limit of its own, tested elsewhere).
const SMALL_STORE: &str = r#"
[replay]
max_nonces = 64
max_nonces_per_user = 8

[events."quiz.answer"]
permission = "quiz:answer"
replay = true
"#;

/// Far more frames than the store holds.
const FLOOD: usize = 400;

fn now_ms() -> u64 {
    unix_now() * 1000
}

fn answer(id: &str, room: &str, nonce: &str, ts: u64) -> Value {
    json!({"type":"send","id":id,"room":room,"event":"quiz.answer",
           "data":{"sessionId":"s1","questionId":"q1","answer":3},"nonce":nonce,"ts":ts})
}

/// Sends `count` quiz answers with fresh nonces and a `ts` near the future
/// edge of the window (remembered longest), and returns each reply's `type`
/// or error `code`.
async fn flood(ws: &mut Ws, who: &str, room: &str, count: usize) -> Vec<String> {
    let ts = now_ms() + 25_000;
    let mut replies = Vec::with_capacity(count);
    for i in 0..count {
        let reply = request(ws, answer(&format!("{who}-{i}"), room, &format!("{who}-nonce-{i}"), ts)).await;
        let what = if reply["type"] == "error" { &reply["code"] } else { &reply["type"] };
        replies.push(what.as_str().unwrap_or_default().to_owned());
    }
    replies
}

/// An honest student's answer is acked, and its replay refused.
async fn assert_honest_answer_acked_once(server: &TestServer, who: &str) {
    let (mut ws, _) = connect(server, &token(who, &["student"])).await;
    join(&mut ws, "course:2").await;
    let frame = answer("h-1", "course:2", &format!("{who}-answer"), now_ms());
    let reply = request(&mut ws, frame.clone()).await;
    assert_eq!(reply["type"], "ack", "{who}'s answer was refused: {reply}");
    let mut again = frame;
    again["id"] = json!("h-2");
    assert_eq!(request(&mut ws, again).await["code"], "replay");
}

#[tokio::test]
async fn refused_quiz_answers_do_not_exhaust_the_nonce_store() {
    let server = TestServer::start_lenient(SMALL_STORE).await;
    // No `quiz:answer` permission: every frame passes the replay step's
    // checks on nonce and ts, then is refused by authorization.
    let (mut outsider, _) = connect(&server, &token("mallory", &["user"])).await;
    join(&mut outsider, "lobby").await;
    let forbidden = flood(&mut outsider, "mallory", "lobby", FLOOD).await;
    // Allowed to answer, but not a member of the room.
    let (mut stranger, _) = connect(&server, &token("trudy", &["student"])).await;
    let not_member = flood(&mut stranger, "trudy", "course:1", FLOOD).await;
    assert_honest_answer_acked_once(&server, "alice").await;
    assert!(forbidden.iter().all(|r| r == "forbidden"), "{forbidden:?}");
    assert!(not_member.iter().all(|r| r == "not_member"), "{not_member:?}");
}

#[tokio::test]
async fn a_user_flooding_its_own_nonce_quota_locks_out_only_itself() {
    let server = TestServer::start_lenient(SMALL_STORE).await;
    let (mut attacker, _) = connect(&server, &token("mallory", &["student"])).await;
    join(&mut attacker, "course:1").await;
    let replies = flood(&mut attacker, "mallory", "course:1", 20).await;
    let acked = replies.iter().filter(|r| *r == "ack").count();
    assert_eq!(acked, 8, "{replies:?}");
    assert!(replies[8..].iter().all(|r| r == "replay"), "{replies:?}");
    assert_honest_answer_acked_once(&server, "alice").await;
    assert_honest_answer_acked_once(&server, "bob").await;
}

#[tokio::test]
async fn filling_the_global_cap_takes_max_nonces_over_the_quota_users() {
    let server = TestServer::start_lenient(SMALL_STORE).await;
    // 64 / 8 = 8 users with valid tokens, each at its quota.
    for i in 0..8 {
        let who = format!("sybil{i}");
        let (mut ws, _) = connect(&server, &token(&who, &["student"])).await;
        join(&mut ws, "course:1").await;
        let replies = flood(&mut ws, &who, "course:1", 8).await;
        assert!(replies.iter().all(|r| r == "ack"), "{who}: {replies:?}");
    }
    // Full: the store fails closed rather than forgetting anyone's nonces.
    let (mut late, _) = connect(&server, &token("late", &["student"])).await;
    join(&mut late, "course:1").await;
    assert_eq!(flood(&mut late, "late", "course:1", 1).await, ["replay"]);
}
