//! One odd byte in `X-Forwarded-For` behind a trusted proxy: the client
//! must still be the client (its ban holds, its abuse is its own), never
//! the proxy, and an operator whose address is banned still reaches the
//! admin API with a valid credential (issue 16, point 4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{ADMIN_KEY, Call, call, call_at, with_admin_key};
use common::*;
use palisade_core::refusal::Kind;
use serde_json::{Value, json};

/// 127.0.0.1 is the trusted proxy; five or six authentication failures
/// (weight 2) ban an address.
async fn server() -> TestServer {
    let proxy = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let ban_fast = "[abuse]\nrestrict_at = 10\ndisconnect_at = 10\nban_at = 10\n";
    TestServer::start_layers(&[NO_ABUSE_LIMITS, proxy, ban_fast, &with_admin_key()]).await
}

/// `GET /auth/sessions` with a token that does not verify, through the
/// proxy with `forwarded`: 401 for a client in good standing (one
/// `auth_failure`), 403 for a banned one.
async fn knock(server: &TestServer, forwarded: &[u8]) -> u16 {
    let call_ = Call { bearer: Some("not-a-token"), forwarded_for: Some(forwarded), ..Call::get("/auth/sessions") };
    call(server, call_).await.status
}

/// Knocks with a bad token through the proxy until the client is banned:
/// five or six failures, as the score decays a little or not at all.
async fn abuse_until_banned(server: &TestServer, forwarded: &[u8]) {
    for failures in 0..10 {
        match knock(server, forwarded).await {
            401 => {}
            403 => return assert!(failures >= 5, "banned after {failures} failures"),
            other => panic!("{other}"),
        }
    }
    panic!("not banned after 10 failures");
}

async fn admin(server: &TestServer, from: [u8; 4], bearer: Option<&str>, method: &str, path: &str) -> (u16, Value) {
    let body = (method == "POST").then(|| json!({"subject": "ip:127.0.0.77", "duration_secs": 600}));
    let call_ = Call { method, path, body, bearer, from: Some(from), ..Call::default() };
    let reply = call_at(server.admin.unwrap(), call_).await;
    let json = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply.status, json)
}

async fn banned_subjects(server: &TestServer) -> Vec<String> {
    let (status, list) = admin(server, [127, 0, 0, 1], Some(ADMIN_KEY), "GET", "/api/bans").await;
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().iter().map(|b| b["subject"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_non_ascii_byte_in_x_forwarded_for_neither_dodges_a_ban_nor_bans_the_proxy() {
    let server = server().await;
    let (status, body) = admin(&server, [127, 0, 0, 1], Some(ADMIN_KEY), "POST", "/api/bans").await;
    assert_eq!(status, 201, "{body}");

    // The banned client writes garbage; the proxy appends its address.
    // Read as text, the whole header was "" and the client the proxy.
    assert_eq!(knock(&server, b"\xff\xfe, 127.0.0.77").await, 403, "the ban holds");
    assert_eq!(knock(&server, b"caf\xc3\xa9, 127.0.0.77").await, 403);
    assert_eq!(knock(&server, b"127.0.0.77").await, 403);

    // Another client's abuse, with garbage left of its address, bans that
    // client; a hop nobody can read bans the unknown client; the proxy
    // stays in good standing.
    abuse_until_banned(&server, b"\x80, 127.0.0.78").await;
    abuse_until_banned(&server, b"127.0.0.79 \xff").await;
    let bans = banned_subjects(&server).await;
    for subject in ["ip:127.0.0.77", "ip:127.0.0.78", "ip:100::/64"] {
        assert!(bans.contains(&subject.to_owned()), "{subject} in {bans:?}");
    }
    assert!(!bans.iter().any(|s| s == "ip:127.0.0.1"), "the proxy is not banned: {bans:?}");
    assert_eq!(knock(&server, b"\x80, 127.0.0.78").await, 403);
    assert_eq!(knock(&server, b"\xff").await, 403, "the unknown client is banned");
    // The proxy's own requests, and other clients behind it, still pass.
    assert_eq!(knock(&server, b"127.0.0.80").await, 401);
    let direct = call(&server, Call { bearer: Some("not-a-token"), ..Call::get("/auth/sessions") }).await;
    assert_eq!(direct.status, 401, "{}", direct.body);
    assert!(server.stats.refused(Kind::Banned) >= 4);
}

#[tokio::test]
async fn an_operator_with_a_valid_credential_is_never_locked_out_by_an_address_ban() {
    let server = server().await;
    let (status, body) = admin(&server, [127, 0, 0, 1], Some(ADMIN_KEY), "POST", "/api/bans").await;
    assert_eq!(status, 201, "{body}");
    let banned = [127, 0, 0, 77];
    // Without a credential, or with a wrong one, the ban answers (and the
    // guess is not scored on top).
    assert_eq!(admin(&server, banned, None, "GET", "/api/bans").await.0, 403);
    assert_eq!(admin(&server, banned, Some("wrong-key"), "GET", "/api/bans").await.0, 403);
    let operator = token("ops", &["admin"]);
    assert_eq!(admin(&server, banned, Some(&operator), "GET", "/api/bans").await.0, 200, "an operator token");
    // With the operator key: reads, and lifts its own address's ban.
    let (status, list) = admin(&server, banned, Some(ADMIN_KEY), "GET", "/api/bans").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["subject"], "ip:127.0.0.77");
    let (status, body) = admin(&server, banned, Some(ADMIN_KEY), "DELETE", "/api/bans?subject=ip:127.0.0.77").await;
    assert_eq!(status, 200, "{body}");
    assert!(banned_subjects(&server).await.is_empty());
    assert_eq!(server.stats.refused(Kind::Banned), 2, "the two requests without a valid credential");
    assert_eq!(server.stats.refused(Kind::AuthFailure), 0, "the wrong key was answered as banned, not scored");
}
