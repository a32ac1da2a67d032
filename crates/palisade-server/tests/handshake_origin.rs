//! A cross-site page tries to open a socket with the user's credentials
//! (cross-site WebSocket hijacking).

mod common;

use common::*;

#[tokio::test]
async fn allowed_origins_upgrade() {
    let server = TestServer::start("").await;
    let t = token("u1", &[]);
    for origin in ["https://app.example.com", "https://chat.example.org"] {
        let (mut ws, _) = dial(&server, Dial { bearer: Some(&t), origin: Some(origin), ..Dial::default() })
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e:?}"));
        assert_eq!(next_json(&mut ws).await["type"], "welcome");
    }
}

#[tokio::test]
async fn foreign_origins_get_403_before_the_token_is_looked_at() {
    let server = TestServer::start("").await;
    let t = token("u1", &[]);
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.io",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://a.b.example.org",
        "https://example.org",
    ] {
        let refused = dial(&server, Dial { bearer: Some(&t), origin: Some(origin), ..Dial::default() }).await;
        let (status, body) = refused.err().unwrap_or_else(|| panic!("{origin} upgraded"));
        assert_eq!(status, 403, "{origin}");
        assert!(body.contains("origin not allowed"), "{body}");
    }
    // Even with a garbage token, a foreign origin learns only "403".
    let refused =
        dial(&server, Dial { bearer: Some("junk"), origin: Some("https://evil.example"), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|e| e.0), Some(403));
}

#[tokio::test]
async fn an_empty_allowlist_refuses_every_origin_but_not_headerless_clients() {
    let server = TestServer::start("[origins]\nallow = []\n").await;
    let t = token("u1", &[]);
    let refused =
        dial(&server, Dial { bearer: Some(&t), origin: Some("https://app.example.com"), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|e| e.0), Some(403));
    let (_ws, welcome) = connect(&server, &t).await;
    assert_eq!(welcome["user"]["id"], "u1");
}
