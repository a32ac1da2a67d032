//! The security dashboard (docs/OPERATIONS.md, "Dashboard"): served at
//! `/ui/` by the admin listener with its own strict policy, and, in
//! Debian's chromium driven by playwright-core (`tests/dashboard/run.mjs`),
//! used by an operator and a viewer against live data: the operator kicks a
//! user (whose socket closes) and bans an address (whose handshake is then
//! refused), the viewer sees no button to act and the API refuses the same
//! requests; a Content-Security-Policy violation fails the run.
//!
//! Without `node`, `/usr/bin/chromium` or playwright-core (installed in
//! `clients/js` by scripts/test.sh) the browser test fails under CI=true
//! and reports itself skipped elsewhere. With `DASHBOARD_SCREENSHOTS` set
//! to a folder, the script saves a screenshot of each panel there.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside #[test] functions panic on setup failures by design.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::auth::{ADMIN_KEY, PASSWORD, add_user, audited};
use common::browser::{can_run, run_script};
use common::*;
use futures_util::StreamExt as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Longest the browser script may run; its own steps time out sooner.
const DEADLINE: Duration = Duration::from_secs(240);

const CONFIG: &str = r#"
[admin]
api_keys = ["admin-key-for-tests-0123456789abcdef"]

[roles.user]
permissions = ["chat:send"]
[rooms.lobby]
[rooms.other]
[events."chat.message"]
permission = "chat:send"
"#;

/// Runs the browser script against `admin` to completion, killed at
/// [`DEADLINE`]: whether it passed, and what it printed.
fn run_dashboard(admin: std::net::SocketAddr) -> (bool, String) {
    let env = [("DASHBOARD_URL", format!("http://{admin}/ui/")), ("DASHBOARD_PASSWORD", PASSWORD.to_owned())];
    run_script("dashboard/run.mjs", &env, DEADLINE)
}

/// Reads `ws` until the server closes it, answering pings meanwhile as a
/// live client does (an unread socket is closed as silent), for at most
/// [`DEADLINE`]: the close code.
async fn until_closed(mut ws: Ws) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// A chat message from the traffic generator.
fn chat(n: u32) -> serde_json::Value {
    json!({"type": "send", "id": format!("m{n}"), "room": "lobby", "event": "chat.message", "data": {"content": "hello"}})
}

#[tokio::test]
async fn an_operator_and_a_viewer_use_the_dashboard_in_chromium() {
    if !can_run("an_operator_and_a_viewer_use_the_dashboard_in_chromium") {
        return;
    }
    let server = TestServer::start_lenient(CONFIG).await;
    add_user(&server.data_dir, "ops", &["admin"]);
    add_user(&server.data_dir, "watcher", &["viewer"]);
    // carol is kicked from the dashboard, dave's address banned; erin
    // talks all along, so the overview has rates to show.
    let (mut carol, _) = connect_from(&server, [127, 0, 0, 77], &token("carol", &["user"])).await;
    join(&mut carol, "other").await;
    let carol = tokio::spawn(until_closed(carol));
    let (dave, _) = connect_from(&server, [127, 0, 0, 88], &token("dave", &["user"])).await;
    let dave = tokio::spawn(until_closed(dave));
    let (mut erin, _) = connect(&server, &token("erin", &["user"])).await;
    join(&mut erin, "lobby").await;
    // A forged token: a security event and a handshake refusal to show.
    let forged = Dial { bearer: Some("not-a-token"), from: Some([127, 0, 0, 66]), ..Dial::default() };
    assert_eq!(refused(&server, forged).await.0, 401);

    let stop = Arc::new(AtomicBool::new(false));
    let talking = Arc::clone(&stop);
    let traffic = tokio::spawn(async move {
        for n in 0..2_000 {
            if talking.load(Ordering::Relaxed) {
                break;
            }
            let reply = request(&mut erin, chat(n)).await;
            assert_eq!(reply["type"], "ack", "{reply}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        erin
    });
    let admin = server.admin.unwrap();
    let (passed, output) = tokio::task::spawn_blocking(move || run_dashboard(admin)).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let _erin = traffic.await.unwrap();
    assert!(passed, "the dashboard script failed:\n{output}");
    assert!(output.contains("dashboard: every step passed"), "{output}");

    // What the operator did took effect; what the viewer tried did not.
    assert_eq!(carol.await.unwrap(), Some(4003), "kicked from the dashboard");
    assert_eq!(dave.await.unwrap(), Some(4003), "banned from the dashboard");
    let dave_token = token("dave", &["user"]);
    let again = Dial { bearer: Some(&dave_token), from: Some([127, 0, 0, 88]), ..Dial::default() };
    assert_eq!(refused(&server, again).await.0, 403, "the banned address's handshake is refused");
    let refusals = audited(admin, "forbidden", 3).await;
    let viewer = refusals.iter().filter(|r| r["detail"].as_str().unwrap().contains("a viewer may not act")).count();
    assert_eq!(viewer, 3, "the viewer's ban, kick and reload were refused: {refusals:?}");
    let bans = common::auth::get(admin, "/api/bans", Some(ADMIN_KEY)).await.1;
    assert!(bans.contains("ip:127.0.0.88") && !bans.contains("ip:127.0.0.99"), "{bans}");
    assert!(!bans.contains("ip:127.0.0.123"), "the viewer's ban did not take: {bans}");
}

#[tokio::test]
async fn the_dashboard_is_served_without_a_credential_under_its_own_policy() {
    let server = TestServer::start(CONFIG).await;
    let admin = server.admin.unwrap();
    let page = http_get(admin, "/ui/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html; charset=utf-8"), "{page}");
    assert!(lower.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{page}");
    assert!(!lower.contains("unsafe-inline") && !lower.contains("<script>"), "no inline script: {page}");
    assert!(lower.contains("x-content-type-options: nosniff") && lower.contains("cache-control: no-store"));
    let script = http_get(admin, "/ui/app.js").await.to_ascii_lowercase();
    assert!(script.contains("content-type: text/javascript") && script.contains("default-src 'self'"), "{script}");
    assert!(http_get(admin, "/ui/nope.js").await.starts_with("HTTP/1.1 404"));
    assert!(http_get(admin, "/ui/../api/stats").await.starts_with("HTTP/1.1 4"), "no way out of /ui/");
    let bare = http_get(admin, "/ui").await.to_ascii_lowercase();
    assert!(bare.starts_with("http/1.1 308") && bare.contains("location: /ui/"), "{bare}");
    // The JSON routes keep the JSON policy.
    let api = http_get(admin, "/api/stats").await.to_ascii_lowercase();
    assert!(api.contains("content-security-policy: default-src 'none'"), "{api}");

    // A production server without an admin key serves health only: no
    // dashboard to log in to.
    let bare = TestServer::start("").await;
    assert!(http_get(bare.admin.unwrap(), "/ui/").await.starts_with("HTTP/1.1 404"));
}
