#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers outside #[test] functions panic on setup failures by design.
//!
//! Credential stuffing (docs/CONFIG.md, `threat.stuffing_*`) against a real
//! server: failed logins for many names from one address get it banned and
//! raise an alert; an address failing as often for fewer names does not.

mod common;

use common::auth::{ADMIN_KEY, Call, call, call_at, with_admin_key};
use common::*;
use serde_json::json;

async fn login_from(server: &TestServer, from: [u8; 4], name: &str) -> u16 {
    let body = json!({"username": name, "password": "a wrong password"});
    call(server, Call { from: Some(from), ..Call::post("/auth/login", body) }).await.status
}

#[tokio::test]
async fn many_names_failing_from_one_address_raise_its_score_and_an_alert() {
    let config = format!("{}[threat]\nstuffing_names = 4\nstuffing_weight = 1000000\n", with_admin_key());
    let server = TestServer::start_lenient(&config).await;
    let (stuffer, neighbour) = ([127, 0, 90, 1], [127, 0, 90, 2]);
    // The neighbour fails as often, for three names only.
    for name in ["ann", "bob", "cy", "ann", "bob", "cy"] {
        assert_eq!(login_from(&server, neighbour, name).await, 401);
    }
    for name in ["ann", "bob", "cy"] {
        assert_eq!(login_from(&server, stuffer, name).await, 401);
    }
    // The fourth name: counted, scored past abuse.ban_at, banned.
    login_from(&server, stuffer, "dee").await;
    assert_eq!(login_from(&server, stuffer, "eve").await, 403);
    // Not banned (401, or 429 once the name's own throttle backs off).
    assert_ne!(login_from(&server, neighbour, "ann").await, 403);
    let alerts = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/alerts") }).await;
    let text = alerts.body;
    assert!(text.contains("credential_stuffing") && text.contains("127.0.90.1"), "{text}");
    assert!(!text.contains("127.0.90.2"), "{text}");
}
