//! `palisade scan` against Palisade itself: the real binary in the dev
//! and the production profiles, scanned by the real binary with tokens it
//! minted. Every check runs and nothing at or above medium is found (exit
//! 0); a connection held past its short-lived token's exp is closed. Also
//! the CLI's exit 2 for usage and connection errors, and `--dry-run`
//! sending nothing.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::path::Path;

use common::auth::{Call, call_at};
use process::{Running, run};
use serde_json::{Value, json};

/// `palisade ARGS` in `dir`, off the runtime's threads: stdout and the
/// exit code.
async fn palisade(dir: &Path, args: Vec<String>) -> (String, Option<i32>) {
    let dir = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || run(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code();
    assert!(code.is_some(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    if code == Some(2) {
        panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (stdout, code)
}

/// A token `palisade token ARGS` prints.
fn mint(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, &[&["token"], args].concat());
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A token for `sub` that expired an hour ago, signed with `secret` under
/// the key id `kid` (the scanner cannot mint one; `--expired-token` is how
/// it gets one).
fn expired(secret: &str, kid: &str, sub: &str) -> String {
    let now = common::unix_now();
    let claims = json!({"sub": sub, "iat": now - 7200, "exp": now - 3600, "iss": "palisade", "aud": "palisade"});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// [`expired`] with the dev key.
fn expired_in_dev(dir: &Path, sub: &str) -> String {
    let secret = std::fs::read_to_string(dir.join("palisade-data/dev-secret")).unwrap();
    expired(secret.trim_end(), "dev", sub)
}

/// [`expired`] with the first key of the production config `p.toml` in
/// `dir`.
fn expired_in_config(dir: &Path, sub: &str) -> String {
    let config: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("p.toml")).unwrap()).unwrap();
    let key = &config["auth"]["keys"][0];
    expired(key["secret"].as_str().unwrap(), key["id"].as_str().unwrap(), sub)
}

/// The scan's JSON report, asserting exit 0 and no finding at or above
/// medium: the ids found.
fn passed(stdout: &str, code: Option<i32>) -> (Value, Vec<String>) {
    assert_eq!(code, Some(0), "{stdout}");
    let report: Value = serde_json::from_str(stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| ["info", "low"].contains(&f["severity"].as_str().unwrap())),
        "a finding at or above medium: {stdout}"
    );
    let ids = findings.iter().filter_map(|f| f["id"].as_str().map(str::to_owned)).collect();
    (report, ids)
}

/// What a full scan of Palisade over ws:// with long-lived tokens skips,
/// and nothing else.
const SKIPPED: [&str; 4] = ["tls", "transport.compression-bomb-accepted", "csrf", "auth.connection-outlives-exp"];

#[tokio::test]
async fn palisade_in_the_dev_profile_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), &["serve", "--dev", "--listen", "127.0.0.1:0"], &[]);
    // A student may answer quizzes in course rooms (the replay check's
    // event); the intruder's token names only another room.
    let token = mint(dir.path(), &["--sub", "scanner", "--roles", "student"]);
    let token2 = mint(dir.path(), &["--sub", "intruder", "--rooms", "elsewhere"]);
    let old = expired_in_dev(dir.path(), "scanner");
    let target = format!("ws://{}/ws", server.addr);
    // The dev profile allows http://localhost on any port: the port
    // variant is accepted, and is only `low`.
    let args = [
        "scan",
        &target,
        "--token",
        &token,
        "--token2",
        &token2,
        "--expired-token",
        &old,
        "--origin",
        "http://localhost:5173",
        "--room",
        "lobby",
        "--replay-event",
        "course:101:quiz.answer",
        "--replay-data",
        r#"{"sessionId":"s1","questionId":"q1","answer":1}"#,
        "--format",
        "json",
    ];
    let (stdout, code) = palisade(dir.path(), args.iter().map(|a| (*a).to_owned()).collect()).await;
    let (report, ids) = passed(&stdout, code);
    assert_eq!(ids, ["origin.absent-accepted", "origin.port-changed-accepted"], "{stdout}");
    // Every check ran: nothing was skipped for want of a connection. TLS
    // is scan_tls.rs's (this target is ws://); the compression bomb has
    // nothing to inflate (Palisade offers no permessage-deflate); csrf is
    // the cookie scan's, below; the token lives 15 minutes, too long to
    // wait for its exp (the short-lived token's scan is below).
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().filter_map(|s| s["check"].as_str()).collect();
    assert_eq!(skipped, SKIPPED, "{stdout}");
    for secret in [&token, &token2, &old] {
        assert!(!stdout.contains(secret.as_str()), "a token is printed in full");
    }

    // A browser's cookie session (PROTOCOL.md §11.4) must send its CSRF
    // token on every send.
    let password = std::fs::read_to_string(dir.path().join("palisade-data/dev-passwords")).unwrap();
    let password = password.lines().find_map(|l| l.strip_prefix("alice / ")).unwrap().split_whitespace().next();
    let body = json!({"username": "alice", "password": password.unwrap(), "cookie": true});
    let login = Call { origin: Some("http://localhost:5173"), ..Call::post("/auth/login", body) };
    let reply = call_at(server.addr, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cookie = format!("palisade_session={}", reply.cookie("palisade_session").unwrap());
    let args = ["scan", &target, "--checks", "csrf", "--cookie", &cookie, "--origin", "http://localhost:5173"];
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--room", "lobby", "--format", "json"].map(str::to_owned));
    let (stdout, code) = palisade(dir.path(), args).await;
    let (report, ids) = passed(&stdout, code);
    assert_eq!(ids, Vec::<String>::new(), "{stdout}");
    assert_eq!(report["skipped"], json!([]), "{stdout}");
    assert!(!stdout.contains(&cookie), "the cookie is printed in full");
    drop(server);
}

#[tokio::test]
async fn palisade_in_the_production_profile_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    // The one origin the application is served from; nothing else.
    let config = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    // `[origins] allow`, not another section's (`[threat] allow` is a list
    // of addresses).
    let (head, origins) = config.split_at(config.find("\n[origins]\n").expect("palisade init writes [origins]"));
    assert!(origins.contains("\nallow = []\n"), "palisade init's origins changed");
    let config =
        format!("{head}{}", origins.replacen("\nallow = []\n", "\nallow = [\"https://app.example.com\"]\n", 1));
    std::fs::write(dir.path().join("p.toml"), config).unwrap();
    let server = Running::start(dir.path(), &["serve", "--config", "p.toml", "--listen", "127.0.0.1:0"], &[]);
    let token = mint(dir.path(), &["--config", "p.toml", "--sub", "scanner", "--roles", "student"]);
    let token2 = mint(dir.path(), &["--config", "p.toml", "--sub", "intruder", "--rooms", "elsewhere"]);
    let old = expired_in_config(dir.path(), "scanner");
    let target = format!("ws://{}/ws", server.addr);
    let args = [
        "scan",
        &target,
        "--token",
        &token,
        "--token2",
        &token2,
        "--expired-token",
        &old,
        "--origin",
        "https://app.example.com",
        "--room",
        "lobby",
        "--replay-event",
        "course:101:quiz.answer",
        "--replay-data",
        r#"{"sessionId":"s1","questionId":"q1","answer":1}"#,
        "--format",
        "json",
    ];
    let (stdout, code) = palisade(dir.path(), args.iter().map(|a| (*a).to_owned()).collect()).await;
    let (report, ids) = passed(&stdout, code);
    // Only the exact origin: not even its other port.
    assert_eq!(ids, ["origin.absent-accepted"], "{stdout}");
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().filter_map(|s| s["check"].as_str()).collect();
    assert_eq!(skipped, SKIPPED, "{stdout}");
    for secret in [&token, &token2, &old] {
        assert!(!stdout.contains(secret.as_str()), "a token is printed in full");
    }
    drop(server);
}

#[tokio::test]
async fn palisade_closes_a_connection_when_its_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    // A 1 s leeway: the connection is closed (4001) 1 s past exp, well
    // within the 35 s the scan waits.
    std::fs::write(dir.path().join("p.toml"), "[auth]\nleeway = \"1s\"\n").unwrap();
    let server = Running::start(dir.path(), &["serve", "--dev", "--config", "p.toml", "--listen", "127.0.0.1:0"], &[]);
    // Each probe gets a fresh token living 5 s, as an operator's
    // --token-cmd would mint it.
    let mint = format!("'{}' token --dev --config p.toml --sub scanner --ttl 5s", process::BIN);
    let target = format!("ws://{}/ws", server.addr);
    let args = ["scan", &target, "--token-cmd", &mint, "--checks", "auth", "--format", "json"];
    let (stdout, code) = palisade(dir.path(), args.iter().map(|a| (*a).to_owned()).collect()).await;
    let (report, ids) = passed(&stdout, code);
    assert_eq!(ids, Vec::<String>::new(), "{stdout}");
    // The expiry probe ran (it is not skipped) and the connection was
    // closed in time; only the refreshes that need more options are not.
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().filter_map(|s| s["check"].as_str()).collect();
    assert_eq!(skipped, ["auth.refresh-other-identity-accepted", "auth.refresh-expired-accepted"], "{stdout}");
    drop(server);
}

#[test]
fn usage_and_connection_errors_exit_2_and_a_dry_run_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["scan", "http://127.0.0.1:1/ws"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(dir.path(), &["scan", "ws://127.0.0.1:1/ws", "--checks", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Nothing listens there: a dry run still lists every probe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let args = ["scan", &target, "--dry-run", "--origin", "https://app.example.com", "--room", "lobby"];
    let out = run(dir.path(), &[&args[..], &["--replay-event", "course:1:quiz.answer", "--token2", "t2"]].concat());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    for id in [
        "origin.suffix-accepted",
        "handshake.alg-none-accepted",
        "handshake.slowloris-held",
        "exposure.metrics-public",
        "message.xss-reflected",
        "transport.compression-bomb-accepted",
        "authz.join-accepted",
        "replay.duplicate-accepted",
        "auth.connection-outlives-exp",
        "limits.connection-flood-unlimited",
    ] {
        assert!(plan.contains(id), "{id} not in the plan:\n{plan}");
    }
    let out = run(dir.path(), &["scan", &target]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{out:?}");
}
