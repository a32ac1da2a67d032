//! The own issuer's endpoints end to end: login, refresh rotation and
//! reuse, logout, the session list, the session cap and device binding,
//! over real sockets, with the server's clock paused and advanced where a
//! lifetime is at stake (docs/PROTOCOL.md §11).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::auth::{Call, PASSWORD, add_user, call, login, refresh};
use common::*;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The next text frame, waiting up to `within` of virtual time.
async fn next_within(ws: &mut Ws, within: Duration) -> Value {
    loop {
        match tokio::time::timeout(within, ws.next()).await.expect("frame in time").expect("stream open").unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Login settings for these tests: a throttle no test here reaches.
const LENIENT_LOGIN: &str = "[login]\nfree_failures_per_user = 100\nlock_after_per_user = 200\n";

async fn server_with(extra: &str) -> TestServer {
    let server = TestServer::start_layers(&[NO_ABUSE_LIMITS, LENIENT_LOGIN, extra]).await;
    add_user(&server.data_dir, "alice", &["student"]);
    add_user(&server.data_dir, "bob", &[]);
    server
}

#[tokio::test]
async fn a_login_gives_a_working_pair_and_every_failure_looks_the_same() {
    let server = server_with("").await;
    let pair = login(&server, "alice").await;
    assert_eq!((pair["token_type"].as_str(), pair["expires_in"].as_u64()), (Some("Bearer"), Some(900)));
    assert_eq!(pair["refresh_expires_in"].as_u64(), Some(7 * 86_400));
    assert!(pair["session_id"].as_str().unwrap().starts_with("sid_"));
    let (_ws, welcome) = connect(&server, pair["access_token"].as_str().unwrap()).await;
    assert_eq!(welcome["user"]["id"], "alice");
    assert!(welcome["user"]["roles"].as_array().unwrap().contains(&json!("student")), "{welcome}");

    // An unknown user and a wrong password: the same status and bytes.
    let unknown = call(&server, Call::post("/auth/login", json!({"username": "mallory", "password": PASSWORD}))).await;
    let wrong =
        call(&server, Call::post("/auth/login", json!({"username": "alice", "password": "not the password"}))).await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(wrong.json()["error"], "invalid_credentials");
    assert_eq!(wrong.header("cache-control"), Some("no-store"));
    assert_eq!(server.stats.refused(palisade_core::refusal::Kind::LoginFailure), 2);

    // Not JSON, unknown fields, a huge body: one generic 400.
    for body in [json!({"username": "alice"}), json!({"username": "alice", "password": PASSWORD, "admin": true})] {
        assert_eq!(call(&server, Call::post("/auth/login", body)).await.status, 400);
    }
    let huge = json!({"username": "alice", "password": "x".repeat(10_000)});
    assert_eq!(call(&server, Call::post("/auth/login", huge)).await.status, 400);
    // A page of a foreign origin may not log anyone in.
    let foreign = Call {
        origin: Some("https://evil.example"),
        ..Call::post("/auth/login", json!({"username": "alice", "password": PASSWORD}))
    };
    assert_eq!(call(&server, foreign).await.status, 403);
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let server = server_with("").await;
    let pair = login(&server, "alice").await;
    let access = pair["access_token"].as_str().unwrap();
    let refresh_token = pair["refresh_token"].as_str().unwrap();
    let as_refresh = refresh(&server, access).await;
    assert_eq!((as_refresh.status, as_refresh.json()["error"].as_str()), (401, Some("invalid_refresh")));
    let (status, _) =
        dial(&server, Dial { bearer: Some(refresh_token), ..Dial::default() }).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 401);
    let sessions = call(&server, Call { bearer: Some(refresh_token), ..Call::get("/auth/sessions") }).await;
    assert_eq!(sessions.status, 401);
}

#[tokio::test(start_paused = true)]
async fn refresh_rotates_and_a_reused_token_ends_the_whole_session() {
    let server = server_with("").await;
    let first = login(&server, "alice").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let second = refresh(&server, &r1).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(second["session_id"], first["session_id"], "the same session");
    let (mut ws, _) = connect(&server, second["access_token"].as_str().unwrap()).await;

    // Within the reuse grace (two tabs racing): refused, nothing ends.
    assert_eq!(refresh(&server, &r1).await.status, 401);
    assert_silent(&mut ws, Duration::from_millis(500)).await;

    // After it: the old token is a stolen copy; the whole session ends, its
    // live socket closes with 4003 and its newest refresh token is dead.
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(refresh(&server, &r1).await.json()["error"], "invalid_refresh");
    assert_eq!(close_code(&mut ws).await, Some(4003));
    assert_eq!(refresh(&server, &r2).await.status, 401);
    let (status, _) = dial(&server, Dial { bearer: second["access_token"].as_str(), ..Dial::default() })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status, 401, "the session's access tokens are revoked");
    // Another session of the same user is untouched.
    let other = login(&server, "alice").await;
    assert_eq!(refresh(&server, other["refresh_token"].as_str().unwrap()).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_live_socket_outlives_its_first_token_through_refresh_and_a_week_ends_the_session() {
    // No pings or CSRF rotations in the way: the tokens are the only clocks.
    let server = server_with("[limits]\nheartbeat_interval = \"1h\"\n[csrf]\nrotate_every = \"30d\"\n").await;
    let pair = login(&server, "alice").await;
    let (mut ws, welcome) = connect(&server, pair["access_token"].as_str().unwrap()).await;
    let first_exp = welcome["expires_at"].as_u64().unwrap();
    // Fifteen minutes pass in an instant: the notice comes a minute early.
    let notice = next_within(&mut ws, Duration::from_secs(1200)).await;
    assert_eq!((notice["type"].as_str(), notice["expires_at"].as_u64()), (Some("expiring"), Some(first_exp)));
    let next = refresh(&server, pair["refresh_token"].as_str().unwrap()).await.json();
    let reply = request(&mut ws, json!({"type":"refresh","id":"r1","token":next["access_token"]})).await;
    assert_eq!(reply["type"], "ack", "{reply}");
    // Past the first token's `exp` and leeway, the socket is still open.
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    let reply = request(&mut ws, json!({"type":"join","id":"j1","room":"lobby"})).await;
    assert_eq!(reply["type"], "ack", "{reply}");
    // Unrefreshed, the second token runs out: 4001 after its notice.
    let notice = next_within(&mut ws, Duration::from_secs(1200)).await;
    assert_eq!(notice["type"], "expiring");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // A week after its last refresh the session is over.
    tokio::time::advance(Duration::from_secs(7 * 86_400)).await;
    assert_eq!(refresh(&server, next["refresh_token"].as_str().unwrap()).await.status, 401);
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_all_ends_every_one() {
    let server = server_with("").await;
    let phone = login(&server, "alice").await;
    let laptop = login(&server, "alice").await;
    let bob = login(&server, "bob").await;
    let token = |pair: &Value| pair["access_token"].as_str().unwrap().to_owned();
    let (mut phone_ws, _) = connect(&server, &token(&phone)).await;
    let (mut laptop_ws, _) = connect(&server, &token(&laptop)).await;
    let (mut bob_ws, _) = connect(&server, &token(&bob)).await;

    let listed =
        call(&server, Call { bearer: Some(&token(&phone)), user_agent: Some("phone"), ..Call::get("/auth/sessions") })
            .await;
    let sessions = listed.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "alice's, not bob's: {sessions:?}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).map(|s| s["id"].clone()).collect();
    assert_eq!(current, [phone["session_id"].clone()]);
    assert!(sessions.iter().all(|s| s["ip"] == "127.0.0.1" && s["created_at"].as_u64().is_some()));

    let out = call(&server, Call { bearer: Some(&token(&phone)), ..Call::post("/auth/logout", json!({})) }).await;
    assert_eq!((out.status, out.json()["ended"].as_u64()), (200, Some(1)));
    assert_eq!(close_code(&mut phone_ws).await, Some(4003));
    assert_eq!(refresh(&server, phone["refresh_token"].as_str().unwrap()).await.status, 401);
    assert_silent(&mut laptop_ws, Duration::from_millis(300)).await;

    let out = call(&server, Call { bearer: Some(&token(&laptop)), ..Call::post("/auth/logout-all", json!({})) }).await;
    assert_eq!((out.status, out.json()["ended"].as_u64()), (200, Some(1)));
    assert_eq!(close_code(&mut laptop_ws).await, Some(4003));
    assert_silent(&mut bob_ws, Duration::from_millis(300)).await;
    // A revoked token cannot log out again or list anything.
    let again = call(&server, Call { bearer: Some(&token(&laptop)), ..Call::get("/auth/sessions") }).await;
    assert_eq!(again.status, 401);
    // A token of no session (minted by `palisade token`) has nothing to end.
    let minted = common::token("carol", &[]);
    let none = call(&server, Call { bearer: Some(&minted), ..Call::post("/auth/logout", json!({})) }).await;
    assert_eq!((none.status, none.json()["error"].as_str()), (400, Some("no_session")));
}

#[tokio::test]
async fn at_the_session_cap_the_least_recently_active_session_gives_way() {
    let server = server_with("[login]\nmax_sessions_per_user = 2\n").await;
    let oldest = login(&server, "alice").await;
    let (mut ws, _) = connect(&server, oldest["access_token"].as_str().unwrap()).await;
    let _second = login(&server, "alice").await;
    let _third = login(&server, "alice").await;
    assert_eq!(close_code(&mut ws).await, Some(4003));
    assert_eq!(refresh(&server, oldest["refresh_token"].as_str().unwrap()).await.status, 401);

    let refusing = server_with("[login]\nmax_sessions_per_user = 1\nsession_cap = \"refuse\"\n").await;
    login(&refusing, "alice").await;
    let over = call(&refusing, Call::post("/auth/login", json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!((over.status, over.json()["error"].as_str()), (403, Some("session_limit")));
}

#[tokio::test]
async fn an_enforced_device_binding_refuses_the_session_elsewhere() {
    let server = server_with("[login]\ndevice_binding = \"enforce\"\n").await;
    let firefox = Call {
        user_agent: Some("Firefox/140"),
        ..Call::post("/auth/login", json!({"username": "alice", "password": PASSWORD}))
    };
    let pair = call(&server, firefox).await.json();
    let access = pair["access_token"].as_str().unwrap();
    let refresh_body = json!({"refresh_token": pair["refresh_token"]});

    // Another agent, or another /24: refused at the handshake and on refresh.
    let elsewhere = [(Some("curl/8"), [127, 0, 0, 1]), (Some("Firefox/140"), [127, 0, 9, 1])];
    for (agent, from) in elsewhere {
        let dialed =
            dial(&server, Dial { bearer: Some(access), user_agent: agent, from: Some(from), ..Dial::default() }).await;
        assert_eq!(dialed.map(|_| ()).unwrap_err().0, 401);
        let refused = call(
            &server,
            Call { user_agent: agent, from: Some(from), ..Call::post("/auth/refresh", refresh_body.clone()) },
        )
        .await;
        assert_eq!(refused.status, 401);
    }
    // The same device, from another address of its network: accepted, and
    // the refusals above did not use the refresh token up.
    let home =
        Dial { bearer: Some(access), user_agent: Some("Firefox/140"), from: Some([127, 0, 0, 7]), ..Dial::default() };
    assert!(dial(&server, home).await.is_ok());
    let ok = call(
        &server,
        Call {
            user_agent: Some("Firefox/140"),
            from: Some([127, 0, 0, 7]),
            ..Call::post("/auth/refresh", refresh_body)
        },
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test(start_paused = true)]
async fn failed_logins_back_off_for_the_name_from_that_address() {
    // The defaults: three free failures per name from one address, then
    // 1 s, 2 s, … (and a lock at ten: tests/login_lockout.rs).
    let server = TestServer::start_lenient("").await;
    add_user(&server.data_dir, "alice", &[]);
    let attempt = |password: &'static str, from: u8| Call {
        from: Some([127, 0, 1, from]),
        ..Call::post("/auth/login", json!({"username": "alice", "password": password}))
    };
    for _ in 0..3 {
        assert_eq!(call(&server, attempt("wrong password!", 1)).await.status, 401);
    }
    assert_eq!(call(&server, attempt("wrong password!", 1)).await.status, 401, "the fourth is refused on its merits");
    // Now a wait of 1 s from that address, even with the right password;
    // another address is not held up.
    let blocked = call(&server, attempt(PASSWORD, 1)).await;
    assert_eq!((blocked.status, blocked.header("retry-after")), (429, Some("1")));
    assert_eq!(call(&server, attempt(PASSWORD, 2)).await.status, 200);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(call(&server, attempt(PASSWORD, 1)).await.status, 200, "a success after the wait");
    // It cleared the name's count: three more free failures.
    for _ in 0..3 {
        assert_eq!(call(&server, attempt("wrong password!", 1)).await.status, 401);
    }
    assert_eq!(call(&server, attempt("wrong password!", 1)).await.status, 401);
    assert_eq!(call(&server, attempt(PASSWORD, 1)).await.status, 429);
}

#[tokio::test]
async fn a_role_change_takes_effect_at_the_next_refresh_and_shrinking_rights_leave_rooms() {
    use palisade_core::store::UserStore as _;
    let server = server_with("").await;
    let pair = login(&server, "alice").await;
    let (mut ws, _) = connect(&server, pair["access_token"].as_str().unwrap()).await;
    join(&mut ws, "course:rust").await;

    // An operator takes `student` away (as `palisade user roles alice` does).
    let store = palisade_store::Sqlite::open_in(&server.data_dir).unwrap();
    assert!(store.set_roles("alice", &[]).unwrap());
    // The live token still carries the old roles until it is refreshed …
    let next = refresh(&server, pair["refresh_token"].as_str().unwrap()).await.json();
    assert_eq!(next["roles"], json!([]));
    // … and the refresh frame with the new token leaves the room it may no
    // longer be in.
    send_json(&mut ws, json!({"type":"refresh","id":"r1","token":next["access_token"]})).await;
    let removed = next_json(&mut ws).await;
    assert_eq!(
        (removed["type"].as_str(), removed["room"].as_str()),
        (Some("removed"), Some("course:rust")),
        "{removed}"
    );
    assert_eq!(next_json(&mut ws).await["type"], "ack");
    let again = request(&mut ws, json!({"type":"join","id":"j2","room":"course:rust"})).await;
    assert_eq!(again["code"], "forbidden");
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_cannot_outrun_the_backoff() {
    // Three free addresses, then a wait no test outlives; four hashes at
    // once.
    let server = TestServer::start_lenient(
        "[login]\nfree_addresses_per_user = 3\nbackoff_base = \"1h\"\nbackoff_max = \"1h\"\n",
    )
    .await;
    add_user(&server.data_dir, "alice", &[]);
    let guesses = (0..30u8).map(|n| {
        let body = json!({"username": "alice", "password": format!("guess number {n}")});
        let server = &server;
        async move { call(server, Call { from: Some([127, 0, 2, n]), ..Call::post("/auth/login", body) }).await.status }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 30, "{statuses:?}");
    // At most the free failures plus one per hashing turn had their
    // password looked at; all 30 would be without the second check.
    assert!((4..=3 + 4).contains(&checked), "{statuses:?}");
}

#[tokio::test]
async fn one_address_looping_on_auth_endpoints_is_slowed_alone() {
    let server =
        TestServer::start_layers(&[NO_ABUSE_LIMITS, LENIENT_LOGIN, "[abuse]\nrequest_rate = \"5/min\"\n"]).await;
    add_user(&server.data_dir, "alice", &[]);
    let pair = login(&server, "alice").await;
    let access = pair["access_token"].as_str().unwrap();
    let list = |from: [u8; 4]| Call { bearer: Some(access), from: Some(from), ..Call::get("/auth/sessions") };
    // The login was one request; four more pass, then 429 with Retry-After.
    for _ in 0..4 {
        assert_eq!(call(&server, list([127, 0, 0, 1])).await.status, 200);
    }
    let slowed = call(&server, list([127, 0, 0, 1])).await;
    assert_eq!((slowed.status, slowed.header("retry-after")), (429, Some("12")), "{}", slowed.body);
    assert_eq!(call(&server, list([127, 0, 0, 2])).await.status, 200, "another address is not slowed");
    // The WebSocket handshake has a budget of its own.
    assert!(dial(&server, Dial { bearer: Some(access), ..Dial::default() }).await.is_ok());
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_are_refused_but_not_scored_as_an_attack() {
    let server = server_with("").await;
    let pair = login(&server, "alice").await;
    let token = pair["refresh_token"].as_str().unwrap();
    let first = refresh(&server, token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The other tab, a moment later, with the same token: within the grace.
    let second = refresh(&server, token).await;
    assert_eq!((second.status, second.json()["error"].as_str()), (401, Some("invalid_refresh")));
    assert_eq!(server.stats.refused(palisade_core::refusal::Kind::AuthFailure), 0, "not scored");
    // The session lives on with the winner's token.
    let next = first.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&server, &next).await.status, 200);
}
