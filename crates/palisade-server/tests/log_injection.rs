//! A client tries to write the server's log: a key holding a newline to
//! forge a line, quotes to forge a field, a 64 KiB value to bloat it, and a
//! flood of refusals to drown it. What reaches the log is one escaped,
//! truncated field per refusal, at most `log.refusals_per_second` lines,
//! and a count of what was suppressed.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::log::Captured;
use common::*;
use serde_json::json;

const STRICT_EVENT: &str = r#"
[events."form.submit"]
schema = '{"type":"object","properties":{"name":{"type":"string","maxLength":8}},"additionalProperties":false}'
"#;

#[tokio::test]
async fn client_text_cannot_forge_or_bloat_a_log_line() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start_lenient(STRICT_EVENT).await;
    let (mut ws, _) = connect(&server, &token("mallory", &[])).await;
    join(&mut ws, "lobby").await;

    let forged_key = "x\n2026-12-01T00:00:00.000000Z  INFO palisade: FORGED user=\"admin\"";
    let send = |id: &str, data: serde_json::Value| json!({"type":"send","id":id,"room":"lobby","event":"form.submit","data":data});
    let reply = request(&mut ws, send("1", json!({ forged_key: "v" }))).await;
    assert_eq!(reply["code"], "invalid_payload", "{reply}");
    let huge = format!("\"\n{}", "A".repeat(64_000));
    let reply2 = request(&mut ws, send("2", json!({ "name": huge }))).await;
    assert!(reply2["code"] == "invalid_payload" || reply2["code"] == "too_large", "{reply2}");

    let text = log.text();
    for line in text.lines() {
        assert!(!line.starts_with("2026-12-01T00:00:00.000000Z"), "a forged line: {line}");
        assert!(line.len() < 2_000, "a line of {} bytes", line.len());
    }
    let refused = text.lines().find(|l| l.contains(reply["ref"].as_str().unwrap())).unwrap();
    assert!(refused.contains(r"x\u{a}2026-12-01"), "the newline is shown escaped: {refused}");
    assert!(refused.contains(r#"FORGED user=\"admin\""#), "the quotes are escaped: {refused}");
    if reply2["code"] == "invalid_payload" {
        let bloated = text.lines().find(|l| l.contains(reply2["ref"].as_str().unwrap())).unwrap();
        assert!(bloated.contains("bytes)"), "the long value is cut and says so: {bloated}");
    }
}

#[tokio::test]
async fn a_flood_of_refusals_writes_a_bounded_number_of_lines_and_counts_the_rest() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start_lenient("[log]\nrefusals_per_second = 5\n").await;
    let (mut ws, _) = connect(&server, &token("mallory", &[])).await;
    join(&mut ws, "lobby").await;

    const FLOOD: usize = 60;
    let refuse = |i: usize| json!({"type":"send","id":i.to_string(),"room":"lobby","event":"no.such","data":{}});
    for i in 0..FLOOD {
        assert_eq!(request(&mut ws, refuse(i)).await["code"], "unknown_event");
    }
    // A refusal in a later second is written, and reports the suppressed.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(request(&mut ws, refuse(FLOOD)).await["code"], "unknown_event");

    let text = log.text();
    let written = text.lines().filter(|l| l.contains("request refused")).count();
    let suppressed: usize = text
        .lines()
        .filter(|l| l.contains("refusal log lines suppressed"))
        .map(|l| l.split("suppressed=").nth(1).unwrap().split_whitespace().next().unwrap().parse::<usize>().unwrap())
        .sum();
    // Every refusal is either written or counted, never lost.
    assert_eq!(written + suppressed, FLOOD + 1, "{text}");
    assert!(suppressed > 0, "the budget held back part of the flood");
    assert!(written < FLOOD, "{written} lines written");
}
