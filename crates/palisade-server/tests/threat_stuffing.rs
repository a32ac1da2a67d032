#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers outside #[test] functions panic on setup failures by design.
//!
//! Credential stuffing (docs/CONFIG.md, `threat.stuffing_*`) against a real
//! server: failed logins for many names from one address get it banned and
//! raise an alert; an address failing as often for fewer names does not.
//! One wrong password failing from many addresses gets them all banned and
//! raises an alert; an address failing with its own wrong password does not.
//! A `threat.allow` address taking part in either is named in the alert
//! and never banned for it.

mod common;

use common::auth::{ADMIN_KEY, Call, call, call_at, get, with_admin_key};
use common::*;
use serde_json::json;

async fn login_from(server: &TestServer, from: [u8; 4], name: &str) -> u16 {
    login_with(server, from, name, "a wrong password").await
}

async fn login_with(server: &TestServer, from: [u8; 4], name: &str, password: &str) -> u16 {
    let body = json!({"username": name, "password": password});
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

#[tokio::test]
async fn one_password_failing_from_many_addresses_scores_them_all_and_raises_an_alert() {
    const SPRAYED: &str = "Spring2026!";
    let config = format!("{}[threat]\nstuffing_addresses = 4\nstuffing_weight = 1000000\n", with_admin_key());
    let server = TestServer::start_lenient(&config).await;
    let sprayers = [[127, 0, 91, 1], [127, 0, 91, 2], [127, 0, 91, 3], [127, 0, 91, 4]];
    let (late, unrelated) = ([127, 0, 91, 9], [127, 0, 91, 20]);
    // An unrelated address fails as often, with its own wrong password.
    for _ in 0..3 {
        assert_ne!(login_with(&server, unrelated, "ann", "my own typo").await, 403);
    }
    for (from, name) in sprayers.iter().zip(["ann", "bob", "cy"]) {
        assert_eq!(login_with(&server, *from, name, SPRAYED).await, 401);
    }
    // The fourth address: the pattern, and every address in it is scored
    // past abuse.ban_at.
    login_with(&server, sprayers[3], "dee", SPRAYED).await;
    for from in sprayers {
        assert_eq!(login_with(&server, from, "zed", "anything").await, 403, "{from:?}");
    }
    // A later address with the same password within the window too.
    login_with(&server, late, "eve", SPRAYED).await;
    assert_eq!(login_with(&server, late, "eve", "anything").await, 403);
    assert_ne!(login_with(&server, unrelated, "ann", "my own typo").await, 403);
    let admin = server.admin.unwrap();
    let alerts = call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/alerts") }).await.body;
    assert!(alerts.contains("one password failed from 4 addresses") && alerts.contains("127.0.91.1"), "{alerts}");
    assert!(!alerts.contains("127.0.91.20") && !alerts.contains(SPRAYED), "{alerts}");
    assert_eq!(alerts.matches("one password failed").count(), 1, "one alert per pattern: {alerts}");
    let (_, metrics) = get(admin, "/metrics", Some(ADMIN_KEY)).await;
    assert!(metrics.contains("palisade_credential_stuffing_total{pattern=\"password\"}"), "{metrics}");
}

#[tokio::test]
async fn an_allowed_address_taking_part_in_stuffing_is_reported_but_not_banned() {
    const SPRAYED: &str = "Summer2026!";
    let config = format!(
        "{}[threat]\nallow = [\"127.0.92.1\"]\nstuffing_names = 4\nstuffing_addresses = 4\nstuffing_weight = 1000000\n",
        with_admin_key()
    );
    let server = TestServer::start_lenient(&config).await;
    let office = [127, 0, 92, 1];
    let sprayers = [office, [127, 0, 92, 2], [127, 0, 92, 3], [127, 0, 92, 4]];
    for (from, name) in sprayers.iter().zip(["ann", "bob", "cy", "dee"]) {
        assert_eq!(login_with(&server, *from, name, SPRAYED).await, 401);
    }
    // The pattern counts the allowed address, and scores every other one
    // past abuse.ban_at.
    for from in &sprayers[1..] {
        assert_eq!(login_with(&server, *from, "zed", "anything").await, 403, "{from:?}");
    }
    // The allowed address fails for its fourth distinct name: the names
    // pattern, reported, not scored.
    for name in ["zed", "eve", "fay"] {
        assert_eq!(login_from(&server, office, name).await, 401, "{name}");
    }
    // Not banned (401, or 429 once its own throttle backs off).
    assert_ne!(login_from(&server, office, "ann").await, 403);
    let alerts = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/alerts") }).await;
    let text = alerts.body;
    assert!(text.contains("one password failed from 4 addresses (127.0.92.1 (threat.allow, not scored), "), "{text}");
    assert!(text.contains("127.0.92.2"), "{text}");
    assert!(
        text.contains("credential stuffing from 127.0.92.1: failed logins for 4 names (threat.allow: not scored)"),
        "{text}"
    );
}
