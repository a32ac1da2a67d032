#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers outside #[test] functions panic on setup failures by design.
//!
//! Blocklist feeds (docs/OPERATIONS.md, "Threat feeds") against a real
//! server: feeds served by a local HTTP server this test starts (a good
//! one whose list the test changes, a slow one, an oversize one, a broken
//! one) and a feed file; listed addresses dialing from 127.x get 403.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse as _;
use common::auth::{ADMIN_KEY, Call, audited, call, call_at, with_admin_key};
use common::*;
use http::StatusCode;
use serde_json::Value;

/// What `/feed` answers: a status and a body the test changes.
type Answer = Arc<Mutex<(u16, String)>>;

struct Feeds {
    url: String,
    answer: Answer,
}

impl Feeds {
    async fn start(body: &str) -> Self {
        let answer: Answer = Arc::new(Mutex::new((200, body.to_owned())));
        let app = axum::Router::new()
            .route(
                "/feed",
                axum::routing::get(|State(a): State<Answer>| async move {
                    let (status, body) = a.lock().unwrap().clone();
                    (StatusCode::from_u16(status).unwrap(), body).into_response()
                }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "127.0.30.1\n"
                }),
            )
            .route("/big", axum::routing::get(|| async { "127.0.30.2\n".repeat(10_000) }))
            .route("/broken", axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }))
            .with_state(Arc::clone(&answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, answer }
    }

    fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }
}

fn admin(server: &TestServer) -> SocketAddr {
    server.admin.unwrap()
}

async fn threat(server: &TestServer) -> Value {
    let reply = call_at(admin(server), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/threat") }).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Polls `/api/threat` until `done` holds of it (bounded by `WAIT`).
async fn until(server: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = threat(server).await;
        if done(&view) {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {view}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn feed<'v>(view: &'v Value, name: &str) -> &'v Value {
    view["feeds"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()
}

/// The handshake's status from `from` with a good token (101 on success).
async fn status_from(server: &TestServer, from: [u8; 4]) -> u16 {
    let t = token("alice", &["user"]);
    match dial(server, Dial { bearer: Some(&t), from: Some(from), ..Dial::default() }).await {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

/// Polls the handshake from `from` until it answers `want` (bounded).
async fn until_status(server: &TestServer, from: [u8; 4], want: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = status_from(server, from).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{from:?}: want {want}, got {got}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn feed_toml(name: &str, source: &str, extra: &str) -> String {
    format!("[[threat.feeds]]\nname = \"{name}\"\nsource = \"{source}\"\n{extra}\n")
}

/// Writes `lines` to `<dir>/<name>.txt`: the feed's TOML, and the file.
fn file_feed(dir: &tempfile::TempDir, name: &str, lines: &str, extra: &str) -> (String, std::path::PathBuf) {
    let file = dir.path().join(format!("{name}.txt"));
    std::fs::write(&file, lines).unwrap();
    (feed_toml(name, &file.display().to_string(), extra), file)
}

#[tokio::test]
async fn listed_addresses_are_refused_audited_with_the_feed_and_others_served() {
    let http = Feeds::start("# test feed\n127.0.10.1\n127.0.11.0/24 ; SBL1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let (local, _) = file_feed(&dir, "local", "127.0.12.7\nnot an address\n", "");
    let config = format!("{}{}{local}", with_admin_key(), feed_toml("remote", &format!("{}/feed", http.url), ""));
    let server = TestServer::start_lenient(&config).await;
    let view =
        until(&server, "both feeds loaded", |v| feed(v, "remote")["entries"] == 2 && feed(v, "local")["entries"] == 1)
            .await;
    assert_eq!(feed(&view, "local")["malformed"], 1, "{view}");
    for listed in [[127, 0, 10, 1], [127, 0, 11, 200], [127, 0, 12, 7]] {
        let t = token("alice", &["user"]);
        let (status, body) = dial(&server, Dial { bearer: Some(&t), from: Some(listed), ..Dial::default() })
            .await
            .map(|_| ())
            .expect_err("a listed address is refused");
        assert_eq!(status, 403, "{listed:?}");
        // The generic body of a ban: nothing says which list.
        assert!(!body.contains("remote") && !body.contains("local"), "{body}");
    }
    assert_eq!(status_from(&server, [127, 0, 10, 2]).await, 101);
    assert_eq!(status_from(&server, [127, 0, 12, 8]).await, 101);
    let records = audited(admin(&server), "banned", 3).await;
    let text = Value::Array(records).to_string();
    assert!(text.contains("threat feed remote") && text.contains("threat feed local"), "{text}");
    let view = threat(&server).await;
    assert_eq!(feed(&view, "remote")["hits"], 2, "{view}");
    // /readyz shows the feeds and stays ready.
    let (status, body) = common::auth::get(admin(&server), "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"remote\""), "{body}");
}

#[tokio::test]
async fn a_feed_change_applies_within_its_refresh_and_a_failed_fetch_keeps_the_old_list() {
    let http = Feeds::start("127.0.20.1\n").await;
    let config =
        format!("{}{}", with_admin_key(), feed_toml("rotating", &format!("{}/feed", http.url), "refresh = \"100ms\""));
    let server = TestServer::start_lenient(&config).await;
    until_status(&server, [127, 0, 20, 1], 403).await;
    assert_eq!(status_from(&server, [127, 0, 20, 2]).await, 101);
    http.set(200, "127.0.20.2\n");
    until_status(&server, [127, 0, 20, 2], 403).await;
    assert_eq!(status_from(&server, [127, 0, 20, 1]).await, 101);
    // A broken answer, then one that reads as no address at all: both
    // fail, and the last good list stays.
    http.set(500, "");
    let failed = threat(&server).await;
    let before = feed(&failed, "rotating")["failures"].as_u64().unwrap();
    until(&server, "a failed fetch counted", |v| feed(v, "rotating")["failures"].as_u64() > Some(before)).await;
    http.set(200, "<html>maintenance</html>\n");
    let view = until(&server, "a malformed fetch counted", |v| {
        feed(v, "rotating")["last_error"].as_str().is_some_and(|e| e.contains("no line reads"))
    })
    .await;
    assert_eq!(feed(&view, "rotating")["entries"], 1, "{view}");
    assert_eq!(status_from(&server, [127, 0, 20, 2]).await, 403);
    let (status, body) = common::auth::get(admin(&server), "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("no line reads"), "{body}");
}

#[tokio::test]
async fn slow_oversize_and_broken_feeds_fail_alone_and_never_block_a_handshake() {
    let http = Feeds::start("").await;
    let config = format!(
        "{}[threat]\ntimeout = \"300ms\"\nmax_bytes = 4096\n{}{}{}",
        with_admin_key(),
        feed_toml("slow", &format!("{}/slow", http.url), ""),
        feed_toml("big", &format!("{}/big", http.url), ""),
        feed_toml("broken", &format!("{}/broken", http.url), ""),
    );
    let server = TestServer::start_lenient(&config).await;
    // Served while the slow feed is still being fetched.
    assert_eq!(status_from(&server, [127, 0, 30, 1]).await, 101);
    let view = until(&server, "three failures", |v| {
        ["slow", "big", "broken"].iter().all(|n| feed(v, n)["failures"].as_u64() >= Some(1))
    })
    .await;
    let error = |n: &str| feed(&view, n)["last_error"].as_str().unwrap().to_owned();
    assert!(error("slow").contains("threat.timeout"), "{view}");
    assert!(error("big").contains("threat.max_bytes"), "{view}");
    assert!(error("broken").contains("500"), "{view}");
    assert_eq!(status_from(&server, [127, 0, 30, 1]).await, 101);
    assert_eq!(status_from(&server, [127, 0, 30, 2]).await, 101);
}

#[tokio::test]
async fn threat_allow_wins_over_a_deny_feed() {
    let dir = tempfile::tempdir().unwrap();
    let (drop, file) = file_feed(&dir, "drop", "127.0.50.0/24\n", "refresh = \"100ms\"");
    let config = format!("{}[threat]\nallow = [\"127.0.50.9\"]\n{drop}", with_admin_key());
    let server = TestServer::start_lenient(&config).await;
    until_status(&server, [127, 0, 50, 1], 403).await;
    assert_eq!(status_from(&server, [127, 0, 50, 9]).await, 101);
    // The file is re-read when it changes.
    std::fs::write(&file, "127.0.51.1\n").unwrap();
    until_status(&server, [127, 0, 51, 1], 403).await;
    assert_eq!(status_from(&server, [127, 0, 50, 1]).await, 101);
}

/// Handshakes with a bad token from `from` until one is refused 403 (the
/// address banned), at most `max`: how many it took.
async fn failures_to_ban(server: &TestServer, from: [u8; 4], max: usize) -> Option<usize> {
    for n in 1..=max {
        let (status, _) = dial(server, Dial { bearer: Some("not-a-token"), from: Some(from), ..Dial::default() })
            .await
            .map(|_| ())
            .expect_err("a bad token is refused");
        if status == 403 {
            return Some(n);
        }
    }
    None
}

#[tokio::test]
async fn a_score_feed_escalates_faster_than_an_unlisted_address() {
    let dir = tempfile::tempdir().unwrap();
    let (reputation, _) = file_feed(&dir, "reputation", "127.0.40.1\n", "action = \"score\"\nweight = 16");
    // auth_failure weighs 2: an unlisted address is banned at its 10th
    // failure, a listed one (16 on its first request) at its 2nd.
    let config =
        format!("{}[abuse]\nrestrict_at = 20\ndisconnect_at = 20\nban_at = 20\n{reputation}", with_admin_key());
    let server = TestServer::start_layers(&[NO_ABUSE_LIMITS, &config]).await;
    until(&server, "loaded", |v| feed(v, "reputation")["entries"] == 1).await;
    let listed = failures_to_ban(&server, [127, 0, 40, 1], 15).await;
    let unlisted = failures_to_ban(&server, [127, 0, 40, 2], 15).await;
    assert!(listed.is_some(), "the listed address was never banned");
    assert!(unlisted.is_none_or(|u| u > listed.unwrap_or(0) + 2), "listed {listed:?}, unlisted {unlisted:?}");
    assert_eq!(feed(&threat(&server).await, "reputation")["hits"].as_u64().map(|h| h >= 1), Some(true));
}

async fn login_status(server: &TestServer, from: [u8; 4]) -> u16 {
    let body = serde_json::json!({"username": "nobody", "password": "wrong password"});
    call(server, Call { from: Some(from), ..Call::post("/auth/login", body) }).await.status
}

#[tokio::test]
async fn auth_endpoints_refuse_listed_addresses_and_dry_run_only_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (feeds, _) = file_feed(&dir, "drop", "127.0.60.1\n", "");
    let server = TestServer::start_lenient(&format!("{}{feeds}", with_admin_key())).await;
    until(&server, "loaded", |v| feed(v, "drop")["entries"] == 1).await;
    assert_eq!(login_status(&server, [127, 0, 60, 1]).await, 403);
    assert_ne!(login_status(&server, [127, 0, 60, 2]).await, 403);

    let dry = format!("{}[abuse]\ndry_run = true\n{feeds}", with_admin_key());
    let server = TestServer::start_layers(&[NO_ABUSE_LIMITS, &dry]).await;
    until(&server, "loaded", |v| feed(v, "drop")["entries"] == 1).await;
    assert_eq!(status_from(&server, [127, 0, 60, 1]).await, 101);
    assert_ne!(login_status(&server, [127, 0, 60, 1]).await, 403);
    let view = threat(&server).await;
    assert_eq!(view["dry_run"], true, "{view}");
    assert_eq!(feed(&view, "drop")["hits"], 2, "{view}");
}

#[tokio::test]
async fn threat_check_prints_what_applies_to_an_address() {
    let http = Feeds::start("127.0.70.0/24\n").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rep.txt"), "127.0.70.1\n").unwrap();
    let config = format!(
        "{BASE}\n[threat]\nallow = [\"127.0.71.0/24\"]\n{}{}",
        feed_toml("remote", &format!("{}/feed", http.url), ""),
        feed_toml("rep", "rep.txt", "action = \"score\"\nweight = 5"),
    )
    .replace("[server]\n", &format!("[server]\ndata_dir = \"{}\"\n", dir.path().join("data").display()));
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, config).unwrap();
    let check = |address: &'static str| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
                .args(["threat", "check", address, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let listed = check("127.0.70.1").await.unwrap();
    assert!(listed.contains("feed remote (deny): lists it as 127.0.70.0/24"), "{listed}");
    assert!(listed.contains("feed rep (score 5): lists it as 127.0.70.1/32"), "{listed}");
    assert!(listed.contains("verdict: refused (403) by feed remote"), "{listed}");
    assert!(listed.contains("ban: none"), "{listed}");
    let allowed = check("127.0.71.1").await.unwrap();
    assert!(allowed.contains("threat.allow: 127.0.71.0/24"), "{allowed}");
    assert!(allowed.contains("verdict: no feed applies") || allowed.contains("verdict: allowed"), "{allowed}");
}

/// Rewrites the running server's config file through `edit`, then reloads
/// it as SIGHUP or `POST /api/reload` would.
fn reload_with(server: &TestServer, edit: impl FnOnce(&mut toml::Table)) -> Result<(), String> {
    let mut tree: toml::Table = toml::from_str(&std::fs::read_to_string(&server.config_path).unwrap()).unwrap();
    edit(&mut tree);
    std::fs::write(&server.config_path, toml::to_string(&tree).unwrap()).unwrap();
    server.reloader.reload(&std::collections::BTreeMap::new()).map_err(|e| e.to_string())
}

fn set_feeds(tree: &mut toml::Table, feeds: &str) {
    let threat = tree.get_mut("threat").and_then(|t| t.as_table_mut()).unwrap();
    let parsed: toml::Table = toml::from_str(feeds).unwrap();
    threat.insert("feeds".into(), parsed["threat"]["feeds"].clone());
}

#[tokio::test]
async fn a_reload_adds_removes_and_retunes_feeds_and_an_invalid_one_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = file_feed(&dir, "old", "127.0.50.1\n", "");
    let (new, _) = file_feed(&dir, "new", "127.0.50.2\n", "");
    let server = TestServer::start_lenient(&format!("{}{old}", with_admin_key())).await;
    until(&server, "old loaded", |v| feed(v, "old")["entries"] == 1).await;
    assert_eq!(status_from(&server, [127, 0, 50, 1]).await, 403);
    assert_eq!(status_from(&server, [127, 0, 50, 2]).await, 101);
    // "old" removed, "new" added: each applies without a restart.
    reload_with(&server, |t| set_feeds(t, &new)).unwrap();
    until_status(&server, [127, 0, 50, 2], 403).await;
    assert_eq!(status_from(&server, [127, 0, 50, 1]).await, 101);
    let view = threat(&server).await;
    assert_eq!(view["feeds"].as_array().map(Vec::len), Some(1), "{view}");
    // The same feed turned into a `score` feed keeps its list and applies
    // at once: the address is served, and scored.
    let hits = feed(&view, "new")["hits"].as_u64().unwrap();
    let retuned = new.replace("source", "action = \"score\"\nweight = 3\nsource");
    reload_with(&server, |t| set_feeds(t, &retuned)).unwrap();
    let view = threat(&server).await;
    assert_eq!(
        (feed(&view, "new")["action"].as_str(), feed(&view, "new")["entries"].as_u64()),
        (Some("score"), Some(1))
    );
    assert_eq!(feed(&view, "new")["hits"], hits, "its counters are kept: {view}");
    // A `score` feed's hits count its weight added (once), not requests.
    for _ in 0..3 {
        assert_eq!(status_from(&server, [127, 0, 50, 2]).await, 101);
    }
    assert_eq!(feed(&threat(&server).await, "new")["hits"], hits + 1);
    // An invalid feed list is refused whole; the feeds in force stay.
    let broken = new.replace("source", "action = \"explode\"\nsource");
    let err = reload_with(&server, |t| set_feeds(t, &broken)).unwrap_err();
    assert!(err.contains("threat.feeds.new.action"), "{err}");
    assert_eq!(feed(&threat(&server).await, "new")["action"], "score");
}
