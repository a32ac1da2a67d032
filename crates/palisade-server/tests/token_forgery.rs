//! An attacker without a valid token tries to open a socket.

mod common;
mod raw;

use base64::Engine as _;
use common::*;
use serde_json::json;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn a_valid_token_gets_a_welcome_with_its_identity() {
    let server = TestServer::start("").await;
    let (_ws, welcome) = connect(&server, &token("u1", &["student"])).await;
    assert_eq!(welcome["user"], json!({"id":"u1","name":"u1-name","roles":["student"]}));
    assert!(welcome["session"].as_str().unwrap().starts_with("s_"));
    assert_eq!(welcome["max_message_bytes"], 65536);
    assert!(welcome["csrf"].as_str().is_some_and(|c| c.len() >= 16));
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401() {
    let server = TestServer::start("").await;
    let now = unix_now();
    let good = token("u1", &[]);
    let payload = good.split('.').nth(1).unwrap().to_owned();
    let cases = [
        ("missing", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        ("expired", Some(sign(&json!({"sub":"u1","exp":now - 3600,"iss":"palisade","aud":"palisade"}), SECRET))),
        (
            "wrong key",
            Some(sign(
                &json!({"sub":"u1","exp":now + 600,"iss":"palisade","aud":"palisade"}),
                "another-secret-another-secret-another!",
            )),
        ),
        ("alg none", Some(format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#)))),
        ("wrong aud", Some(sign(&json!({"sub":"u1","exp":now + 600,"iss":"palisade","aud":"other"}), SECRET))),
        ("wrong iss", Some(sign(&json!({"sub":"u1","exp":now + 600,"iss":"evil","aud":"palisade"}), SECRET))),
        ("no exp", Some(sign(&json!({"sub":"u1","iss":"palisade","aud":"palisade"}), SECRET))),
        (
            "alg confusion",
            Some(format!("{}.{}", b64(r#"{"alg":"HS512","kid":"k1"}"#), good.split_once('.').unwrap().1)),
        ),
    ];
    let mut bodies = std::collections::HashSet::new();
    for (what, token) in cases {
        let refused = dial(&server, Dial { bearer: token.as_deref(), ..Dial::default() }).await;
        let (status, body) = refused.err().unwrap_or_else(|| panic!("{what}: upgraded"));
        assert_eq!(status, 401, "{what}");
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "bodies differ: {bodies:?}");
    let body: serde_json::Value = serde_json::from_str(bodies.iter().next().unwrap()).unwrap();
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn browsers_pass_the_token_as_a_subprotocol_and_get_only_palisade_v1_back() {
    let server = TestServer::start("").await;
    let protocols = format!("palisade.v1, palisade.bearer.{}", token("u1", &[]));
    let (mut ws, resp) =
        dial(&server, Dial { protocols: Some(&protocols), origin: Some("https://app.example.com"), ..Dial::default() })
            .await
            .expect("accepted");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "palisade.v1");
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
}

#[tokio::test]
async fn two_credentials_at_once_are_refused() {
    let server = TestServer::start("").await;
    let t = token("u1", &[]);
    let protocols = format!("palisade.v1, palisade.bearer.{t}");
    let refused = dial(&server, Dial { bearer: Some(&t), protocols: Some(&protocols), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401));
}

#[tokio::test]
async fn query_tokens_work_only_when_enabled() {
    let t = token("u1", &[]);
    let off = TestServer::start("").await;
    let path = format!("/ws?access_token={t}");
    let refused = dial(&off, Dial { path: Some(&path), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401));

    let on = TestServer::start("[auth]\nallow_query_token = true\n").await;
    let (mut ws, _) = dial(&on, Dial { path: Some(&path), ..Dial::default() }).await.expect("accepted");
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
}

#[tokio::test]
async fn plain_http_to_the_socket_endpoint_is_a_clear_400() {
    let server = TestServer::start("").await;
    let body = http_get(server.addr, "/ws").await;
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(body.contains("expected a WebSocket upgrade"));
    let health = http_get(server.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = http_get(server.addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200") && ready.contains("ready"), "{ready}");
    let post = http_request(server.addr, "POST", "/healthz").await;
    assert!(post.starts_with("HTTP/1.1 405") && post.contains("method_not_allowed"), "{post}");
    let missing = http_get(server.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

/// A token signed with the right key whose identity claims are `sub`/`name`.
fn token_as(sub: &str, name: &str) -> String {
    sign(&json!({"sub": sub, "name": name, "exp": unix_now() + 600, "iss": "palisade", "aud": "palisade"}), SECRET)
}

#[tokio::test]
async fn a_signed_token_whose_name_is_markup_or_a_bidi_override_is_refused_at_the_handshake() {
    let server = TestServer::start("").await;
    let Err((status, reference)) = dial(&server, Dial::default()).await else { panic!("no credential upgraded") };
    assert_eq!(status, 401);
    let cases = [
        ("markup name", token_as("u1", "<img src=x onerror=alert(1)>")),
        ("right-to-left override", token_as("u1", "admin\u{202E}gpj.exe")),
        ("bidi isolate", token_as("u1", "a\u{2067}b")),
        ("zero-width space", token_as("u1", "ad\u{200B}min")),
        ("markup sub", token_as("<script>", "ok")),
        ("non-ASCII sub", token_as("u\u{202E}1", "ok")),
    ];
    for (what, t) in cases {
        let refused = dial(&server, Dial { bearer: Some(&t), ..Dial::default() }).await;
        let (status, body) = refused.err().unwrap_or_else(|| panic!("{what}: upgraded"));
        assert_eq!((status, &body), (401, &reference), "{what}: same 401 as every auth failure");
    }
    // Names in any script, and the subjects external issuers use, still work.
    let (_ws, welcome) = connect(&server, &token_as("auth0|abc123", "José Müller 李雷")).await;
    assert_eq!(welcome["user"]["name"], "José Müller 李雷");
}

#[tokio::test]
async fn a_refresh_to_a_markup_name_is_refused_and_the_old_identity_stays() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token_as("u1", "Alice")).await;
    let bad = token_as("u1", "<b>Alice</b>");
    let reply = request(&mut ws, json!({"type":"refresh","id":"r1","token": bad})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")), "{reply}");
    let good = token_as("u1", "Alice B.");
    assert_eq!(request(&mut ws, json!({"type":"refresh","id":"r2","token": good})).await["type"], "ack");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let server = TestServer::start("").await;
    let auth = format!("Bearer {}", token("u1", &[]));
    // Even the same valid token twice: the server must not pick one.
    let (_, head) = raw::upgrade(server.addr, &[("authorization", &auth), ("authorization", &auth)]).await;
    assert_eq!(raw::status(&head), 401, "{head}");
    let (_, head) = raw::upgrade(server.addr, &[("authorization", &auth), ("authorization", "Bearer junk")]).await;
    assert_eq!(raw::status(&head), 401, "{head}");
    let (_, head) = raw::upgrade(server.addr, &[("authorization", &auth)]).await;
    assert_eq!(raw::status(&head), 101, "one header is fine: {head}");
}

#[tokio::test]
async fn two_bearer_subprotocols_are_refused() {
    let server = TestServer::start("").await;
    let t = token("u1", &[]);
    for protocols in [
        format!("palisade.v1, palisade.bearer.{t}, palisade.bearer.{t}"),
        format!("palisade.bearer.{t}, palisade.bearer.x"),
    ] {
        let refused = dial(&server, Dial { protocols: Some(&protocols), ..Dial::default() }).await;
        assert_eq!(refused.err().map(|e| e.0), Some(401), "{protocols}");
    }
    // Split over two header lines, they are still two.
    let first = format!("palisade.v1, palisade.bearer.{t}");
    let second = format!("palisade.bearer.{t}");
    let (_, head) =
        raw::upgrade(server.addr, &[("sec-websocket-protocol", &first), ("sec-websocket-protocol", &second)]).await;
    assert_eq!(raw::status(&head), 401, "{head}");
}
