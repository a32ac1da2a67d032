//! Admin roles and browser sessions (docs/PROTOCOL.md §1.7): a viewer
//! reads and may not act, and sees client addresses as networks; an admin
//! logs in from a browser into an HttpOnly SameSite=Strict cookie, and
//! every state-changing call on it needs the session's CSRF token and the
//! listener's own origin; a session ends at logout, and as soon as its user
//! is revoked, removed or loses the role.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{ADMIN_KEY, Call, PASSWORD, Reply, add_user, call_at, with_admin_key};
use common::*;
use palisade_core::store::UserStore as _;
use serde_json::{Value, json};

const VIEWER_KEY: &str = "viewer-key-for-tests-0123456789abcdef";
/// What the test client's requests name as their host (`host: x`), so the
/// listener's own origin.
const OWN_ORIGIN: &str = "http://x";

async fn start() -> TestServer {
    // Lenient: the refusals below would otherwise score the address to a ban.
    TestServer::start_lenient(&format!("[admin]\napi_keys = [\"{ADMIN_KEY}\"]\nviewer_api_keys = [\"{VIEWER_KEY}\"]\n"))
        .await
}

async fn admin_call(server: &TestServer, call: Call<'_>) -> Reply {
    call_at(server.admin.unwrap(), call).await
}

async fn with_bearer(server: &TestServer, method: &str, path: &str, body: Option<Value>, bearer: &str) -> Reply {
    admin_call(server, Call { method, path, body, bearer: Some(bearer), ..Call::default() }).await
}

/// Logs `user` in on the admin listener: the cookie header value and the
/// session's CSRF token.
async fn browser_login(server: &TestServer, user: &str) -> (String, String) {
    let login =
        Call { origin: Some(OWN_ORIGIN), ..Call::post("/api/login", json!({"username": user, "password": PASSWORD})) };
    let reply = admin_call(server, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let value = reply.cookie("palisade_admin").expect("the admin cookie");
    (format!("palisade_admin={value}"), reply.json()["csrf"].as_str().unwrap().to_owned())
}

/// The actions, each with a body that would succeed.
fn actions() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/api/disconnect", Some(json!({"user": "nobody"}))),
        ("POST", "/api/revoke", Some(json!({"user": "mallory"}))),
        ("POST", "/api/bans", Some(json!({"subject": "ip:127.0.0.9", "duration_secs": 60}))),
        ("DELETE", "/api/bans?subject=ip:127.0.0.9", None),
        ("DELETE", "/api/connections/n1-1", None),
        ("POST", "/api/reload", None),
        ("POST", "/api/publish", Some(json!({"room": "lobby", "event": "chat.message", "data": {"content": "x"}}))),
    ]
}

#[tokio::test]
async fn a_viewer_reads_but_may_not_act_and_sees_networks_not_hosts() {
    let server = start().await;
    let (_ws, _) = connect_from(&server, [127, 0, 0, 77], &token("carol", &["user"])).await;
    let viewer_token = token("watcher", &["viewer"]);
    for viewer in [VIEWER_KEY, viewer_token.as_str()] {
        for path in ["/api/connections?user=carol", "/api/stats", "/api/bans", "/api/audit", "/api/session", "/metrics"]
        {
            let reply = with_bearer(&server, "GET", path, None, viewer).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        }
        let seen = with_bearer(&server, "GET", "/api/connections?user=carol", None, viewer).await.json();
        assert_eq!(seen["items"][0]["ip"], "127.0.0.0/24", "a viewer sees the network: {seen}");
        for (method, path, body) in actions() {
            let reply = with_bearer(&server, method, path, body, viewer).await;
            assert_eq!(reply.status, 403, "a viewer's {method} {path}: {}", reply.body);
        }
    }
    let session = with_bearer(&server, "GET", "/api/session", None, VIEWER_KEY).await.json();
    assert_eq!((session["actor"].as_str(), session["role"].as_str()), (Some("viewer_api_key"), Some("viewer")));
    // The operator sees the host, and the viewers' refusals were audited.
    let seen = with_bearer(&server, "GET", "/api/connections?user=carol", None, ADMIN_KEY).await.json();
    assert_eq!(seen["items"][0]["ip"], "127.0.0.77");
    let refused = audit_details(&server, "forbidden", 14).await;
    assert_eq!(refused.iter().filter(|d| d.contains("a viewer may not act")).count(), 14, "{refused:?}");
    let banned = with_bearer(&server, "GET", "/api/bans", None, ADMIN_KEY).await.json();
    assert_eq!(banned["items"].as_array().unwrap().len(), 0, "no viewer's ban took effect: {banned}");
}

#[tokio::test]
async fn a_viewer_sees_networks_inside_audit_details_too() {
    let server = start().await;
    let ban = json!({"subject": "ip:127.0.0.99", "duration_secs": 600, "reason": "test"});
    let reply = admin_call(&server, Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/bans", ban) }).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let operator = audit_details(&server, "admin_action", 2).await;
    assert!(operator.iter().any(|d| d.contains("banned ip:127.0.0.99")), "the operator sees the host: {operator:?}");

    let viewer_token = token("watcher", &["viewer"]);
    for viewer in [VIEWER_KEY, viewer_token.as_str()] {
        let seen = with_bearer(&server, "GET", "/api/audit?kind=admin_action", None, viewer).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert!(!seen.body.contains("127.0.0.99"), "no whole address anywhere: {}", seen.body);
        let details: Vec<String> =
            seen.json()["items"].as_array().unwrap().iter().map(|r| r["detail"].as_str().unwrap().to_owned()).collect();
        assert!(details.iter().any(|d| d.contains("banned ip:127.0.0.0/24")), "{details:?}");
    }
}

/// The details of the audit records of `kind`, once at least `n` are
/// written.
async fn audit_details(server: &TestServer, kind: &str, n: usize) -> Vec<String> {
    let records = common::auth::audited(server.admin.unwrap(), kind, n).await;
    records.iter().map(|r| r["detail"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_browser_session_lives_in_an_httponly_cookie_and_every_write_needs_its_csrf_token() {
    let server = start().await;
    add_user(&server.data_dir, "ops", &["admin"]);
    let login =
        Call { origin: Some(OWN_ORIGIN), ..Call::post("/api/login", json!({"username": "ops", "password": PASSWORD})) };
    let reply = admin_call(&server, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let cookies = reply.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    for attribute in ["palisade_admin=", "HttpOnly", "SameSite=Strict", "Secure", "Path=/;", "Max-Age=1800"] {
        assert!(cookies[0].contains(attribute), "{} lacks {attribute}", cookies[0]);
    }
    let body = reply.json();
    assert_eq!((body["actor"].as_str(), body["role"].as_str()), (Some("user:ops"), Some("operator")));
    let cookie_value = reply.cookie("palisade_admin").unwrap();
    assert!(!reply.body.contains(&cookie_value), "the credential is in the cookie only: {body}");
    let cookie = format!("palisade_admin={cookie_value}");
    let csrf = body["csrf"].as_str().unwrap();

    let call = |method, path, body, csrf, origin| Call {
        method,
        path,
        body,
        cookie: Some(cookie.as_str()),
        csrf,
        origin,
        ..Call::default()
    };
    // Reads need no CSRF token; a reloaded page gets it back.
    let read = admin_call(&server, call("GET", "/api/connections", None, None, None)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let session = admin_call(&server, call("GET", "/api/session", None, None, Some(OWN_ORIGIN))).await.json();
    assert_eq!(session["csrf"], csrf);
    // A write without the token, with a wrong one, or from another page is
    // refused; with it, done.
    let disconnect = || Some(json!({"user": "nobody"}));
    for (token, origin) in [
        (None, None),
        (Some("wrong"), None),
        (Some(&cookie_value[..]), None),
        (Some(csrf), Some("http://evil.example")),
    ] {
        let refused = admin_call(&server, call("POST", "/api/disconnect", disconnect(), token, origin)).await;
        assert_eq!(refused.status, 403, "{token:?} {origin:?}: {}", refused.body);
    }
    let read_elsewhere = admin_call(&server, call("GET", "/api/stats", None, None, Some("http://evil.example"))).await;
    assert_eq!(read_elsewhere.status, 403, "a cookie-borne read from another page: {}", read_elsewhere.body);
    let done = admin_call(&server, call("POST", "/api/disconnect", disconnect(), Some(csrf), Some(OWN_ORIGIN))).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let details = audit_details(&server, "admin_action", 2).await;
    assert!(details.iter().any(|d| d.contains("admin login as operator")), "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("disconnected user:nobody") && d.contains("(by user:ops)")),
        "{details:?}"
    );
    let csrf_refusals = audit_details(&server, "csrf", 3).await;
    assert_eq!(csrf_refusals.len(), 3, "{csrf_refusals:?}");

    // Logout needs the token too, deletes the cookie, and ends the session.
    let logout = admin_call(&server, call("POST", "/api/logout", None, Some(csrf), None)).await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert_eq!(logout.cookie("palisade_admin").as_deref(), Some(""));
    assert!(logout.set_cookies()[0].contains("Max-Age=0"));
    let after = admin_call(&server, call("GET", "/api/connections", None, None, None)).await;
    assert_eq!(after.status, 401, "{}", after.body);
}

#[tokio::test]
async fn only_an_admins_password_opens_a_session_and_failures_look_alike() {
    let server = start().await;
    add_user(&server.data_dir, "alice", &["student"]);
    add_user(&server.data_dir, "watcher", &["viewer"]);
    let attempt = |user: &'static str, password: &'static str, origin: Option<&'static str>| Call {
        origin,
        from: Some([127, 0, 3, 1]),
        ..Call::post("/api/login", json!({"username": user, "password": password}))
    };
    let unknown = admin_call(&server, attempt("nobody", PASSWORD, None)).await;
    let wrong = admin_call(&server, attempt("watcher", "not the password", None)).await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert_eq!(unknown.body, wrong.body, "one body for an unknown name and a wrong password");
    assert!(unknown.set_cookies().is_empty() && wrong.set_cookies().is_empty());
    let student = admin_call(&server, attempt("alice", PASSWORD, None)).await;
    assert_eq!(student.status, 403, "a user without an admin role: {}", student.body);
    assert!(student.set_cookies().is_empty());
    let elsewhere = admin_call(&server, attempt("watcher", PASSWORD, Some("http://evil.example"))).await;
    assert_eq!(elsewhere.status, 403, "a login from another page: {}", elsewhere.body);

    // A viewer's session reads and may not act, CSRF token or not.
    let (cookie, csrf) = browser_login(&server, "watcher").await;
    let session = admin_call(&server, Call { cookie: Some(&cookie), ..Call::get("/api/session") }).await.json();
    assert_eq!(session["role"], "viewer");
    let act =
        Call { cookie: Some(&cookie), csrf: Some(&csrf), ..Call::post("/api/disconnect", json!({"user": "nobody"})) };
    assert_eq!(admin_call(&server, act).await.status, 403);
}

#[tokio::test]
async fn a_session_ends_when_its_user_is_revoked_removed_or_demoted() {
    let server = start().await;
    for user in ["revoked", "removed", "demoted", "kept"] {
        add_user(&server.data_dir, user, &["admin"]);
    }
    let mut sessions = Vec::new();
    for user in ["revoked", "removed", "demoted", "kept"] {
        sessions.push(browser_login(&server, user).await);
    }
    let alive = |cookie: String| {
        let server = &server;
        async move { admin_call(server, Call { cookie: Some(&cookie), ..Call::get("/api/stats") }).await.status }
    };
    for (cookie, _) in &sessions {
        assert_eq!(alive(cookie.clone()).await, 200);
    }
    let revoke = with_bearer(&server, "POST", "/api/revoke", Some(json!({"user": "revoked"})), ADMIN_KEY).await;
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    let store = palisade_store::Sqlite::open_in(&server.data_dir).unwrap();
    assert!(store.remove_user("removed", palisade_core::Timestamp::from_secs(unix_now())).unwrap().is_some());
    assert!(store.set_roles("demoted", &["viewer".to_owned()]).unwrap());

    for (i, expected) in [401, 401, 401, 200].into_iter().enumerate() {
        assert_eq!(alive(sessions[i].0.clone()).await, expected, "session {i}");
    }
    // Ended for good: the demoted user's old cookie stays refused.
    assert_eq!(alive(sessions[2].0.clone()).await, 401);
    let session = admin_call(&server, Call { cookie: Some(&sessions[3].0), ..Call::get("/api/session") }).await;
    let sid = session.json()["session"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("asid_"), "{sid}");
    // A session is revoked by its id like a login session.
    let revoke = with_bearer(&server, "POST", "/api/revoke", Some(json!({"session": sid})), ADMIN_KEY).await;
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    assert_eq!(alive(sessions[3].0.clone()).await, 401);
}

#[tokio::test]
async fn a_viewer_logging_in_again_and_again_never_evicts_an_operators_session() {
    let caps = "[admin]\nmax_sessions = 4\nmax_sessions_per_user = 2\n";
    let server = TestServer::start_layers(&[NO_ABUSE_LIMITS, &with_admin_key(), caps]).await;
    add_user(&server.data_dir, "ops", &["admin"]);
    add_user(&server.data_dir, "watcher", &["viewer"]);
    let (ops, _) = browser_login(&server, "ops").await;
    let mut watcher = Vec::new();
    for _ in 0..6 {
        watcher.push(browser_login(&server, "watcher").await.0);
    }
    let status = |cookie: String| {
        let server = &server;
        async move { admin_call(server, Call { cookie: Some(&cookie), ..Call::get("/api/stats") }).await.status }
    };
    assert_eq!(status(ops).await, 200, "the operator's session is still there");
    assert_eq!(status(watcher[5].clone()).await, 200);
    assert_eq!(status(watcher[4].clone()).await, 200);
    assert_eq!(status(watcher[3].clone()).await, 401, "the viewer's own older sessions gave way");
}
