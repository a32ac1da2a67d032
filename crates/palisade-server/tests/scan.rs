//! `palisade scan` against Palisade itself: the real binary in the dev
//! profile, scanned by the real binary with a token it minted. Every check
//! runs and nothing at or above medium is found (exit 0). Also the CLI's
//! exit 2 for usage and connection errors, and `--dry-run` sending nothing.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use process::{Running, run};
use serde_json::Value;

#[tokio::test]
async fn palisade_in_the_dev_profile_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), &["serve", "--dev", "--listen", "127.0.0.1:0"], &[]);
    let out = run(dir.path(), &["token", "--sub", "scanner"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let target = format!("ws://{}/ws", server.addr);
    // The dev profile allows http://localhost on any port: the port
    // variant is accepted, and is only `low`.
    let (dir_path, secret) = (dir.path().to_owned(), token.clone());
    let out = tokio::task::spawn_blocking(move || {
        let args = ["scan", &target, "--token", &secret, "--origin", "http://localhost:5173", "--format", "json"];
        run(&dir_path, &args)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let ids: Vec<&str> = findings.iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(
        findings.iter().all(|f| ["info", "low"].contains(&f["severity"].as_str().unwrap())),
        "a finding at or above medium: {stdout}"
    );
    assert_eq!(ids, ["origin.absent-accepted", "origin.port-changed-accepted"], "{stdout}");
    // Every check ran: nothing was skipped for want of a connection.
    assert_eq!(report["skipped"], serde_json::json!([]), "{stdout}");
    assert!(!stdout.contains(&token), "the token is printed in full");
    drop(server);
}

#[test]
fn usage_and_connection_errors_exit_2_and_a_dry_run_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["scan", "http://127.0.0.1:1/ws"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(dir.path(), &["scan", "ws://127.0.0.1:1/ws", "--checks", "csrf"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Nothing listens there: a dry run still lists every probe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let out = run(dir.path(), &["scan", &target, "--dry-run", "--origin", "https://app.example.com"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    for id in ["origin.suffix-accepted", "handshake.alg-none-accepted", "exposure.metrics-public"] {
        assert!(plan.contains(id), "{id} not in the plan:\n{plan}");
    }
    let out = run(dir.path(), &["scan", &target]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{out:?}");
}
