//! An operator's access token used where it should no longer count (issue
//! 16, points 7 and 9): off its device (a stolen copy) under
//! `login.device_binding = "enforce"`, and after its user was demoted or
//! removed. The admin API must refuse it as `/auth/*` and the handshake do,
//! at once, not at the token's expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{ADMIN_KEY, Call, PASSWORD, Reply, add_user, call, call_at, with_admin_key};
use common::*;
use palisade_core::store::UserStore as _;
use serde_json::{Value, json};

/// Logs `user` in on `/auth/login` with `agent` from 127.0.0.1: the access
/// token.
async fn access_token(server: &TestServer, user: &str, agent: &str) -> String {
    let body = json!({"username": user, "password": PASSWORD});
    let reply = call(server, Call { user_agent: Some(agent), ..Call::post("/auth/login", body) }).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// `POST /api/bans` on `subject` with `bearer`, from `from` with `agent`.
async fn ban(server: &TestServer, bearer: &str, subject: &str, agent: &str, from: [u8; 4]) -> Reply {
    let body = json!({"subject": subject, "duration_secs": 60});
    let call =
        Call { bearer: Some(bearer), user_agent: Some(agent), from: Some(from), ..Call::post("/api/bans", body) };
    call_at(server.admin.unwrap(), call).await
}

async fn banned_subjects(server: &TestServer) -> Vec<Value> {
    let reply = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/bans") }).await;
    reply.json()["items"].as_array().unwrap().iter().map(|b| b["subject"].clone()).collect()
}

async fn refusal_details(server: &TestServer, n: usize) -> Vec<String> {
    let records = common::auth::audited(server.admin.unwrap(), "auth_failure", n).await;
    records.iter().map(|r| r["detail"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_stolen_operator_token_is_refused_off_its_device_on_the_admin_api() {
    let server =
        TestServer::start_lenient(&format!("{}[login]\ndevice_binding = \"enforce\"\n", with_admin_key())).await;
    add_user(&server.data_dir, "ops", &["admin"]);
    let token = access_token(&server, "ops", "Firefox/140").await;

    // Another agent, or another /24: the ban is refused, as a refresh or a
    // handshake would be.
    assert_eq!(ban(&server, &token, "ip:127.0.0.50", "curl/8", [127, 0, 0, 1]).await.status, 401);
    assert_eq!(ban(&server, &token, "ip:127.0.0.50", "Firefox/140", [127, 0, 9, 1]).await.status, 401);
    // The operator's own device, from another address of its network.
    let own = ban(&server, &token, "ip:127.0.0.51", "Firefox/140", [127, 0, 0, 7]).await;
    assert_eq!(own.status, 201, "{}", own.body);

    assert_eq!(banned_subjects(&server).await, [json!("ip:127.0.0.51")]);
    let details = refusal_details(&server, 2).await;
    let off_device = details.iter().filter(|d| d.as_str() == "admin: token used from another device").count();
    assert_eq!(off_device, 2, "{details:?}");
}

#[tokio::test]
async fn a_demoted_or_removed_operators_token_loses_its_rights_at_once() {
    let server = TestServer::start_lenient(&with_admin_key()).await;
    for user in ["demoted", "removed", "kept"] {
        add_user(&server.data_dir, user, &["admin"]);
    }
    let mut tokens = Vec::new();
    for user in ["demoted", "removed", "kept"] {
        tokens.push(access_token(&server, user, "Firefox/140").await);
    }
    for token in &tokens {
        assert_eq!(ban(&server, token, "ip:127.0.0.60", "Firefox/140", [127, 0, 0, 1]).await.status, 201);
    }
    // An operator takes the role away and removes a user, as `palisade user
    // roles` and `palisade user remove` do; the tokens have 15 minutes left.
    let store = palisade_store::Sqlite::open_in(&server.data_dir).unwrap();
    assert!(store.set_roles("demoted", &["viewer".to_owned()]).unwrap());
    assert!(store.remove_user("removed", palisade_core::Timestamp::from_secs(unix_now())).unwrap().is_some());
    for (token, expected) in tokens.iter().zip([401, 401, 201]) {
        assert_eq!(ban(&server, token, "ip:127.0.0.61", "Firefox/140", [127, 0, 0, 1]).await.status, expected);
    }
    // Not even a viewer's reads: the token claimed an operator.
    for (token, expected) in tokens.iter().zip([401, 401, 200]) {
        let call = Call { bearer: Some(token), user_agent: Some("Firefox/140"), ..Call::get("/api/stats") };
        assert_eq!(call_at(server.admin.unwrap(), call).await.status, expected);
    }
    let details = refusal_details(&server, 4).await;
    let lost = details.iter().filter(|d| d.as_str() == "admin: the token's user was removed or lost the role").count();
    // Removing a user also revokes its tokens, and the server follows the
    // store within a poll: the removed user's calls may be refused for
    // either reason, depending on which comes first. The demoted user's
    // are refused for the role.
    let revoked = details.iter().filter(|d| d.as_str() == "admin: token revoked").count();
    assert!(lost >= 2 && lost + revoked == 4, "{details:?}");
}
