//! The admin listener's credentials: `/metrics` only with an admin API key
//! or an admin-role token; failures 401 (a valid token without the role
//! 403), never logging what was presented, and scored like any
//! authentication failure until the address is banned. A production
//! server without a key serves health only, and says so.
//!
//! Its own test binary: these tests read the captured log, and a log
//! callsite another test thread reaches first may stay off for them.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{ADMIN_KEY, get, with_admin_key};
use common::log::Captured;
use common::*;

const KEY: &str = ADMIN_KEY;

#[tokio::test]
async fn metrics_needs_an_admin_credential_and_guessing_ends_in_a_ban() {
    let log = Captured::default();
    let _guard = log.install();
    // Low thresholds, so a few failures ban the address.
    let server =
        TestServer::start_layers(&[&with_admin_key(), "[abuse]\nrestrict_at = 5\ndisconnect_at = 5\nban_at = 5\n"])
            .await;
    let admin = server.admin.expect("the admin listener is on by default");
    let unauthorized = r#"{"error":"unauthorized","message":"authentication required"}"#;

    let (status, body) = get(admin, "/metrics", None).await;
    assert_eq!((status, body.as_str()), (401, unauthorized));
    let wrong = "wrong-key-that-must-never-be-logged-0123";
    let (status, body) = get(admin, "/metrics", Some(wrong)).await;
    assert_eq!((status, body.as_str()), (401, unauthorized), "a wrong key gets the same answer as none");
    let text = log.text();
    assert!(text.contains("admin request refused"), "the failures are logged: {text}");
    assert!(!text.contains(wrong), "the presented key is never logged: {text}");
    assert_eq!(server.stats.refused(palisade_core::refusal::Kind::AuthFailure), 2);

    // With the key, or a token whose roles include admin.operator_role.
    let (status, body) = get(admin, "/metrics", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("palisade_messages_in_total"), "{body}");
    let (status, _) = get(admin, "/metrics", Some(&token("root", &["admin"]))).await;
    assert_eq!(status, 200);
    // A token the server accepts, without the admin role: forbidden.
    let (status, _) = get(admin, "/metrics", Some(&token("bob", &["user"]))).await;
    assert_eq!(status, 403);

    // Scores so far: 2 + 2 (auth failures) + 2 (forbidden), a little decayed, past ban_at = 5.
    // The address is banned now: guesses get the ban's 403, and only an
    // operator's valid credential passes (an address ban must not lock
    // operators out: tests/forwarded_for_ban_dodge.rs).
    assert_eq!(get(admin, "/metrics", Some(wrong)).await.0, 403, "a banned address guesses no more");
    assert_eq!(get(admin, "/metrics", Some(&token("bob", &["user"]))).await.0, 403);
    let (status, _) = get(admin, "/metrics", Some(KEY)).await;
    assert_eq!(status, 200, "the operator's key");
    assert_eq!(server.stats.bans(), 1);
    // Health stays open to it: a load balancer behind a ban still probes.
    assert_eq!(get(admin, "/healthz", None).await.0, 200);
}

#[tokio::test]
async fn without_an_api_key_production_serves_health_only_and_says_why() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start("").await;
    let admin = server.admin.unwrap();
    assert_eq!(get(admin, "/healthz", None).await.0, 200);
    assert_eq!(get(admin, "/readyz", None).await.0, 200);
    // Not even an admin token opens it: there is no such route.
    assert_eq!(get(admin, "/metrics", Some(&token("root", &["admin"]))).await.0, 404);
    let text = log.text();
    assert!(text.contains("serves /healthz and /readyz only"), "{text}");
}
