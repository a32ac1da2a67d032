//! Browser sessions in cookies (docs/PROTOCOL.md §11.4): HttpOnly,
//! SameSite=Strict and Secure cookies, a WebSocket handshake that takes the
//! cookie only with an allowed Origin, the CSRF token on every `send`, and
//! refresh and logout driven by the cookies alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{Call, PASSWORD, add_user, call};
use common::*;
use serde_json::json;

const APP: &str = "https://app.example.com";

#[tokio::test]
async fn a_cookie_session_from_login_to_logout() {
    let server = TestServer::start_lenient("").await;
    add_user(&server.data_dir, "alice", &["student"]);
    let login = Call {
        origin: Some(APP),
        ..Call::post("/auth/login", json!({"username": "alice", "password": PASSWORD, "cookie": true}))
    };
    let reply = call(&server, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "no token a script could read: {body}"
    );
    assert_eq!(body["cookie"], true);
    let cookies = reply.set_cookies();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
    }
    assert!(cookies.iter().any(|c| c.starts_with("palisade_session=") && c.contains("Path=/;")));
    assert!(cookies.iter().any(|c| c.starts_with("palisade_refresh=") && c.contains("Path=/auth;")));
    let session = format!("palisade_session={}", reply.cookie("palisade_session").unwrap());
    let refresh = format!("palisade_refresh={}", reply.cookie("palisade_refresh").unwrap());

    // The handshake takes the cookie from an allowed origin, and never
    // without an Origin: a page elsewhere cannot ride on it.
    for origin in [None, Some("https://evil.example")] {
        let dialed = dial(&server, Dial { cookie: Some(&session), origin, ..Dial::default() }).await;
        assert_eq!(dialed.map(|_| ()).unwrap_err().0, 403, "{origin:?}");
    }
    let (mut ws, _) =
        dial(&server, Dial { cookie: Some(&session), origin: Some(APP), ..Dial::default() }).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["user"]["id"], "alice");
    let csrf = welcome["csrf"].as_str().unwrap().to_owned();
    join(&mut ws, "lobby").await;
    // chat.message asks for no CSRF token; on a cookie session every send does.
    let send = |id: &str, csrf: Option<&str>| {
        let mut frame = json!({"type":"send","id":id,"room":"lobby","event":"chat.message","data":{"content":"hi"}});
        if let Some(csrf) = csrf {
            frame["csrf"] = json!(csrf);
        }
        frame
    };
    assert_eq!(request(&mut ws, send("m1", None)).await["code"], "csrf_failed");
    assert_eq!(request(&mut ws, send("m2", Some(&csrf))).await["type"], "ack");

    // Refresh by cookie: only from an allowed origin; new cookies, no body tokens.
    let no_origin = call(&server, Call { cookie: Some(&refresh), ..Call::post("/auth/refresh", json!({})) }).await;
    assert_eq!(no_origin.status, 403);
    let renewed = call(
        &server,
        Call {
            cookie: Some(&refresh),
            origin: Some(APP),
            ..Call { body: None, ..Call::post("/auth/refresh", json!({})) }
        },
    )
    .await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(renewed.json().get("access_token").is_none());
    let next_session = format!("palisade_session={}", renewed.cookie("palisade_session").unwrap());

    // Logout by cookie clears both cookies and closes the session's socket.
    let out =
        call(&server, Call { cookie: Some(&next_session), origin: Some(APP), ..Call::post("/auth/logout", json!({})) })
            .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.set_cookies().iter().all(|c| c.contains("Max-Age=0")), "{:?}", out.set_cookies());
    assert_eq!(close_code(&mut ws).await, Some(4003));
    // A cookie-borne logout from a foreign page is refused before anything.
    let forged = call(
        &server,
        Call {
            cookie: Some(&next_session),
            origin: Some("https://evil.example"),
            ..Call::post("/auth/logout-all", json!({}))
        },
    )
    .await;
    assert_eq!(forged.status, 403);
}
