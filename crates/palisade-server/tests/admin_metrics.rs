//! The admin listener: `/healthz` and `/readyz` on it and on the public
//! listener, `/metrics` (Prometheus text) only on it, and counters that
//! move with what the server does. Its credentials are `admin_auth.rs`.
//!
//! The metrics recorder is one per process and these tests run side by
//! side in one, so counter assertions compare two scrapes of the one test
//! that causes those events (no other test here opens a WebSocket), and
//! the gauges are set from the scraped server's own state.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::auth::{ADMIN_KEY, add_user, get, login, with_admin_key};
use common::*;
use futures_util::SinkExt as _;
use palisade_server::config::{Config, Source};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = ADMIN_KEY;

/// One scrape, parsed by a Prometheus text parser.
async fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let (status, body) = get(server.admin.unwrap(), "/metrics", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text")
}

/// The value of `name` with `labels` (every label given must match; the
/// series must exist).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is not a number: {other:?}"),
    }
}

/// The sum of every series of `name`.
fn total(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn counters_move_after_matching_events() {
    let server = TestServer::start_lenient(&with_admin_key()).await;
    let before = scrape(&server).await;
    assert_eq!(value(&before, "palisade_connections_current", &[]), 0.0);

    // A refused Origin.
    let dialed = dial(
        &server,
        Dial { bearer: Some(&token("alice", &[])), origin: Some("https://evil.example"), ..Dial::default() },
    )
    .await;
    assert_eq!(dialed.err().map(|(status, _)| status), Some(403));
    // A connection, a message, an error frame.
    let (mut ws, _) = connect(&server, &token("alice", &[])).await;
    join(&mut ws, "lobby").await;
    let reply =
        request(&mut ws, json!({"type":"send","id":"s1","room":"nowhere","event":"chat.message","data":{"text":"hi"}}))
            .await;
    assert_eq!(reply["type"], "error", "{reply}");
    let code = reply["code"].as_str().unwrap().to_owned();
    let open = scrape(&server).await;
    assert_eq!(value(&open, "palisade_connections_current", &[]), 1.0);

    ws.send(Message::Close(None)).await.unwrap();
    // The server answers the close; the connection ends.
    let _ = close_code(&mut ws).await;
    // The server counts the close once its task has ended.
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let after = scrape(&server).await;
        if total(&after, "palisade_connections_closed_total") > total(&before, "palisade_connections_closed_total")
            || tokio::time::Instant::now() > deadline
        {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    let delta = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(delta("palisade_handshakes_refused_total", &[("kind", "origin")]), 1.0);
    assert_eq!(delta("palisade_handshakes_refused_total", &[("kind", "auth_failure")]), 0.0);
    assert_eq!(delta("palisade_connections_opened_total", &[]), 1.0);
    assert_eq!(delta("palisade_connections_closed_total", &[("code", "peer")]), 1.0);
    assert_eq!(delta("palisade_messages_in_total", &[]), 2.0, "the join and the send");
    // welcome, ack, error
    assert_eq!(delta("palisade_messages_out_total", &[]), 3.0);
    assert_eq!(delta("palisade_rejections_total", &[("code", &code)]), 1.0);
    assert_eq!(value(&after, "palisade_connections_current", &[]), 0.0);
    assert_eq!(value(&after, "palisade_bans_active", &[]), 0.0);
    // The pipeline histogram saw both messages.
    let count = |s: &prometheus_parse::Scrape| {
        s.samples.iter().find(|x| x.metric == "palisade_pipeline_latency_seconds_count").map_or(0.0, |x| {
            match x.value {
                prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            }
        })
    };
    assert_eq!(count(&after) - count(&before), 2.0);
}

#[tokio::test]
async fn store_calls_are_timed_by_operation_logins_included() {
    let server = TestServer::start(&with_admin_key()).await;
    add_user(&server.data_dir, "alice", &["student"]);
    login(&server, "alice").await;
    let (status, body) = get(server.admin.unwrap(), "/metrics", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    // Each measured before the login was answered.
    for op in ["auth_login", "auth_open_session"] {
        let series = format!("palisade_store_latency_seconds_count{{op=\"{op}\"}} ");
        assert!(body.lines().any(|l| l.starts_with(&series)), "no {series}in:\n{body}");
    }
}

#[tokio::test]
async fn readyz_and_healthz_answer_on_both_listeners_metrics_only_on_the_admin_one() {
    let server = TestServer::start(&with_admin_key()).await;
    let admin = server.admin.unwrap();
    for addr in [admin, server.addr] {
        assert_eq!(get(addr, "/readyz", None).await, (200, r#"{"status":"ready"}"#.to_owned()));
        assert_eq!(get(addr, "/healthz", None).await.0, 200);
    }
    assert_eq!(get(server.addr, "/metrics", Some(KEY)).await.0, 404);
    assert_eq!(get(admin, "/ws", None).await.0, 404, "the admin listener serves no WebSocket");
}

#[tokio::test]
async fn the_admin_listener_can_be_turned_off() {
    let server = TestServer::start("[admin]\nenabled = false\n").await;
    assert_eq!(server.admin, None);
}

#[test]
fn a_config_that_puts_the_admin_listener_on_the_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "[server]\nlisten = \"0.0.0.0:9000\"\n[admin]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let err = Config::load(Source::File(&path), &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("admin.listen"), "{err}");
    // The same through the environment.
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let env = BTreeMap::from([("PALISADE_ADMIN__LISTEN".to_owned(), "127.0.0.1:9000".to_owned())]);
    let err = Config::load(Source::File(&path), &env).unwrap_err();
    assert!(err.to_string().contains("admin.listen"), "{err}");
}
