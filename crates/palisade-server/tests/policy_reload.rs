//! An operator changes the policy of a running server: a valid change
//! applies to live connections, an invalid one changes nothing.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::json;

fn vote(id: &str) -> serde_json::Value {
    json!({"type":"send","id":id,"room":"lobby","event":"poll.vote","data":{"choice":2}})
}

fn append(path: &std::path::Path, toml: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(toml);
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_reload_applies_to_live_connections_and_a_bad_one_changes_nothing() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("alice", &[])).await;
    join(&mut ws, "lobby").await;
    assert_eq!(request(&mut ws, vote("1")).await["code"], "unknown_event");

    // The test server wrote its config as TOML; add an event to it.
    let original = std::fs::read_to_string(&server.config_path).unwrap();
    append(
        &server.config_path,
        "\n[events.\"poll.vote\"]\nschema = '{\"type\":\"object\",\"required\":[\"choice\"]}'\n",
    );
    server.reloader.reload(&BTreeMap::new()).unwrap();
    assert_eq!(request(&mut ws, vote("2")).await["type"], "ack");

    // A broken policy is refused as a whole; the previous one stays.
    std::fs::write(&server.config_path, format!("{original}\n[events.\"x\"]\npermission = \"NOT A PERMISSION\"\n"))
        .unwrap();
    let err = server.reloader.reload(&BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("events.\"x\".permission"), "{err}");
    assert_eq!(request(&mut ws, vote("3")).await["type"], "ack");
}
