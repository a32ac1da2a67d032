//! `--log-format json`: one JSON object per line on stderr, and the `ref` a
//! client got in its `error` frame is a field of the line that says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use common::*;
use process::Running;
use serde_json::{Value, json};

#[tokio::test]
async fn a_refusal_is_one_json_line_carrying_the_ref_the_client_got() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let serve = ["serve", "--dev", "--data", "data", "--listen", "127.0.0.1:0", "--log-format", "json"];
    let server = Running::start(dir, &serve, &[]);
    let token = process::run(dir, &["token", "--data", "data", "--sub", "alice"]);
    let token = String::from_utf8(token.stdout).unwrap();
    let (mut ws, _) = dial_at(server.addr, Dial { bearer: Some(token.trim()), ..Dial::default() }).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    let reply = request(&mut ws, json!({"type":"send","id":"1","room":"lobby","event":"no.such","data":{}})).await;
    let reference = reply["ref"].as_str().unwrap().to_owned();

    let line = server.line(|l| l.contains(&reference)).expect("a log line with the client's ref");
    let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(parsed["level"], "WARN", "{parsed}");
    assert_eq!(parsed["fields"]["reference"], reference.as_str(), "{parsed}");
    assert_eq!(parsed["fields"]["kind"], "unknown_event", "{parsed}");
    assert!(parsed["fields"]["message"].is_string(), "{parsed}");
    assert!(!line.contains(token.trim()), "never the token");
    assert!(server.terminate().success());
}
