//! The admin API (docs/PROTOCOL.md §1.7): every endpoint refuses a missing
//! credential (401) and a user's token (403), works with the API key and
//! is audited; disconnecting a user closes all their sockets with 4003;
//! publishing reaches the room's members sanitized and is refused on a
//! schema failure, and the rooms view shows the last seq they got; list pages are disjoint; the OpenAPI document names
//! only routes that exist.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::auth::{Call, Reply, call_at};
use common::*;
use serde_json::{Value, json};

const KEY: &str = common::auth::ADMIN_KEY;

async fn start() -> TestServer {
    // Lenient: the 403s below would otherwise score the address to a ban.
    TestServer::start_lenient(&format!("[admin]\napi_keys = [\"{KEY}\"]\nmax_page_size = 50\n")).await
}

/// An admin call with `bearer` (the key when `None` is not wanted, see
/// [`admin`]).
async fn api(server: &TestServer, method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> Reply {
    call_at(server.admin.unwrap(), Call { method, path, body, bearer, ..Call::default() }).await
}

/// A call with the API key.
async fn admin(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> Reply {
    api(server, method, path, body, Some(KEY)).await
}

/// The audit records of `kind`, once at least `n` are written.
async fn audited(server: &TestServer, kind: &str, n: usize) -> Vec<Value> {
    common::auth::audited(server.admin.unwrap(), kind, n).await
}

#[tokio::test]
async fn every_endpoint_needs_an_admin_credential_works_with_one_and_actions_are_audited() {
    let server = start().await;
    let (_ws, _) = connect(&server, &token("carol", &["user"])).await;
    let carol = admin(&server, "GET", "/api/connections?user=carol", None).await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let calls: Vec<(&str, String, Option<Value>, u16, bool)> = vec![
        ("GET", "/api/openapi.json".into(), None, 200, false),
        ("GET", "/api/connections".into(), None, 200, false),
        ("DELETE", format!("/api/connections/{carol}"), None, 200, true),
        ("POST", "/api/disconnect".into(), Some(json!({"user": "nobody"})), 200, true),
        ("POST", "/api/revoke".into(), Some(json!({"user": "mallory", "reason": "left"})), 200, true),
        ("GET", "/api/bans".into(), None, 200, false),
        ("POST", "/api/bans".into(), Some(json!({"subject": "ip:127.0.0.9", "duration_secs": 60})), 201, true),
        ("DELETE", "/api/bans?subject=ip:127.0.0.9".into(), None, 200, true),
        ("GET", "/api/audit".into(), None, 200, false),
        ("GET", "/api/stats".into(), None, 200, false),
        ("POST", "/api/reload".into(), None, 200, true),
        (
            "POST",
            "/api/publish".into(),
            Some(json!({"room": "lobby", "event": "chat.message", "data": {"content": "x"}})),
            200,
            true,
        ),
    ];
    let user = token("bob", &["user"]);
    let mut actions = 0;
    for (method, path, body, status, action) in calls {
        let none = api(&server, method, &path, body.clone(), None).await;
        assert_eq!(none.status, 401, "{method} {path} without a credential: {}", none.body);
        let forbidden = api(&server, method, &path, body.clone(), Some(&user)).await;
        assert_eq!(forbidden.status, 403, "{method} {path} with a user's token: {}", forbidden.body);
        let done = admin(&server, method, &path, body).await;
        assert_eq!(done.status, status, "{method} {path} with the key: {}", done.body);
        assert!(done.header("content-type").unwrap().starts_with("application/json"), "{method} {path}");
        actions += usize::from(action);
    }
    // An admin-role token works too, and is named as the actor.
    let root = token("root", &["admin"]);
    let reply = api(&server, "POST", "/api/disconnect", Some(json!({"ip": "127.0.0.8"})), Some(&root)).await;
    assert_eq!((reply.status, reply.json()["closed"].as_u64()), (200, Some(0)));
    actions += 1;

    let records = audited(&server, "admin_action", actions).await;
    assert_eq!(records.len(), actions, "one admin_action record per action: {records:?}");
    let details: Vec<&str> = records.iter().map(|r| r["detail"].as_str().unwrap()).collect();
    assert!(details.iter().any(|d| d.contains("banned ip:127.0.0.9") && d.contains("(by api_key)")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("(by user:root)")), "{details:?}");
    assert!(details.iter().all(|d| !d.contains(KEY)), "no credential in a record");
    // The CLI's records too: the ban, its lift, the revocation.
    for kind in ["ban", "unban", "revocation", "config_reload"] {
        assert_eq!(audited(&server, kind, 1).await.len(), 1, "{kind}");
    }
    let stats = admin(&server, "GET", "/api/stats", None).await.json();
    assert!(stats["refused"]["forbidden"].as_u64().unwrap() >= 12, "{stats}");
    assert!(stats["connections_open"].is_u64(), "{stats}");
}

#[tokio::test]
async fn bad_input_is_a_generic_400() {
    let server = start().await;
    let generic = json!({"error": "bad_request", "message": "invalid request"});
    for (method, path, body) in [
        ("POST", "/api/disconnect", Some(json!({"user": "a", "ip": "127.0.0.1"}))),
        ("POST", "/api/disconnect", Some(json!({}))),
        ("POST", "/api/bans", Some(json!({"subject": "nonsense", "permanent": true}))),
        ("POST", "/api/bans", Some(json!({"subject": "user:x", "permanent": true, "duration_secs": 5}))),
        ("POST", "/api/revoke", Some(json!({"token": "a", "user": "b"}))),
        ("POST", "/api/publish", Some(json!({"room": "lobby"}))),
        ("GET", "/api/connections?limit=0", None),
        ("GET", "/api/connections?cursor=abc", None),
        ("GET", "/api/audit?kind=nonsense", None),
        ("DELETE", "/api/connections/abc", None),
    ] {
        let reply = admin(&server, method, path, body).await;
        assert_eq!((reply.status, reply.json()), (400, generic.clone()), "{method} {path}");
    }
    // A body that is not declared JSON.
    let reply = call_at(
        server.admin.unwrap(),
        Call { method: "POST", path: "/api/disconnect", bearer: Some(KEY), ..Call::default() },
    )
    .await;
    assert_eq!((reply.status, reply.json()), (400, generic.clone()));
    assert_eq!(admin(&server, "DELETE", "/api/connections/n1-999999", None).await.status, 404);
    assert_eq!(admin(&server, "DELETE", "/api/connections/n2-0", None).await.status, 404, "another node's");
    assert_eq!(admin(&server, "DELETE", "/api/bans?subject=user:nobody", None).await.status, 404);
}

#[tokio::test]
async fn disconnecting_a_user_closes_all_their_sockets_with_4003() {
    let server = start().await;
    let alice = token("alice", &["user"]);
    let (mut a1, _) = connect_from(&server, [127, 0, 0, 1], &alice).await;
    let (mut a2, _) = connect_from(&server, [127, 0, 0, 2], &alice).await;
    let (mut b, _) = connect(&server, &token("bob", &["user"])).await;
    let reply = admin(&server, "POST", "/api/disconnect", Some(json!({"user": "alice"}))).await;
    assert_eq!((reply.status, reply.json()), (200, json!({"closed": 2})));
    assert_eq!(close_code(&mut a1).await, Some(4003));
    assert_eq!(close_code(&mut a2).await, Some(4003));
    // Bob is untouched, until his connection is closed by id.
    join(&mut b, "lobby").await;
    let list = admin(&server, "GET", "/api/connections?room=lobby", None).await.json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!((items[0]["user"].as_str(), items[0]["ip"].as_str()), (Some("bob"), Some("127.0.0.1")));
    assert_eq!(items[0]["rooms"], json!(["lobby"]));
    assert!(items[0]["connected_at"].as_u64().unwrap() > 1_700_000_000_000);
    let id = items[0]["id"].as_str().unwrap();
    assert_eq!(
        (id.strip_prefix("n1-").map(|n| n.parse::<u64>().is_ok()), items[0]["node"].as_str()),
        (Some(true), Some("n1"))
    );
    let reply = admin(&server, "DELETE", &format!("/api/connections/{id}"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(close_code(&mut b).await, Some(4003));
}

#[tokio::test]
async fn a_ban_through_the_api_closes_live_sockets_refuses_handshakes_and_lifts() {
    let server = start().await;
    let eve = token("eve", &["user"]);
    let (mut ws, _) = connect(&server, &eve).await;
    let ban = json!({"subject": "user:eve", "duration_secs": 3600, "reason": "spam"});
    let reply = admin(&server, "POST", "/api/bans", Some(ban)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    assert_eq!(
        (body["subject"].as_str(), body["source"].as_str(), body["closed"].as_u64()),
        (Some("user:eve"), Some("operator"), Some(1))
    );
    assert_eq!(close_code(&mut ws).await, Some(4003));
    assert_eq!(refused(&server, Dial { bearer: Some(&eve), ..Dial::default() }).await.0, 403);
    let list = admin(&server, "GET", "/api/bans", None).await.json();
    assert_eq!(list["items"][0]["subject"], "user:eve", "{list}");
    // It is in the store, as `palisade ban add` would leave it.
    let store = palisade_store::Sqlite::open_in(&server.data_dir).unwrap();
    let stored = palisade_core::store::BanStore::bans(
        &store,
        palisade_core::Timestamp::from_millis(0),
        std::time::Duration::ZERO,
    )
    .unwrap();
    assert!(stored.iter().any(|b| b.subject.to_string() == "user:eve"));
    let reply = admin(&server, "DELETE", "/api/bans?subject=user:eve", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    connect(&server, &eve).await;
}

#[tokio::test]
async fn publish_reaches_room_members_sanitized_and_is_refused_on_schema_failure() {
    let server = start().await;
    let (mut ws, _) = connect(&server, &token("alice", &["user"])).await;
    join(&mut ws, "lobby").await;
    let event =
        json!({"room": "lobby", "event": "chat.message", "data": {"content": "hi <script>alert(1)</script>there"}});
    let reply = admin(&server, "POST", "/api/publish", Some(event)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seq = reply.json()["seq"].as_u64().unwrap();
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["type"], "event", "{frame}");
    assert_eq!(
        (frame["room"].as_str(), frame["event"].as_str(), frame["seq"].as_u64()),
        (Some("lobby"), Some("chat.message"), Some(seq))
    );
    assert_eq!(frame["from"], json!({"id": "backend", "name": "backend"}));
    let content = frame["data"]["content"].as_str().unwrap();
    assert!(content.starts_with("hi") && !content.contains("script") && !content.contains("alert"), "{content}");

    let bad = json!({"room": "lobby", "event": "chat.message", "data": {"content": 5}});
    let reply = admin(&server, "POST", "/api/publish", Some(bad)).await;
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!((body["error"].as_str(), body["path"].as_str()), (Some("invalid_payload"), Some("/content")), "{body}");
    let unknown = json!({"room": "lobby", "event": "no.such", "data": {}});
    assert_eq!(admin(&server, "POST", "/api/publish", Some(unknown)).await.json()["error"], "unknown_event");
    // A room nobody is in still takes the event, with its own seq.
    let empty = json!({"room": "course:101", "event": "chat.message", "data": {"content": "x"}});
    let reply = admin(&server, "POST", "/api/publish", Some(empty)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["seq"].as_u64().is_some());
    // Nothing refused reached the member: the next frame is the next event.
    let ok = json!({"room": "lobby", "event": "chat.message", "data": {"content": "second"}});
    assert_eq!(admin(&server, "POST", "/api/publish", Some(ok)).await.json()["seq"].as_u64(), Some(seq + 1));
    assert_eq!(next_json(&mut ws).await["data"]["content"], "second");
    // The rooms view: lobby's member and the last seq it got, from which
    // the dashboard derives the room's rate; course:101 has no member here.
    let rooms = admin(&server, "GET", "/api/rooms", None).await.json();
    assert_eq!(rooms["items"], json!([{"name": "lobby", "members": 1, "seq": seq + 1}]), "{rooms}");
}

#[tokio::test]
async fn list_pages_are_disjoint_and_cover_everything() {
    let server = start().await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(connect(&server, &token(&format!("user{i}"), &["user"])).await);
    }
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let path = format!(
            "/api/connections?limit=2{}",
            if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") }
        );
        let page = admin(&server, "GET", &path, None).await.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        pages += 1;
        for item in items {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "pages overlap: {page}");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (5, 3));
    // A limit above admin.max_page_size is capped to it.
    let page = admin(&server, "GET", "/api/audit?limit=100000", None).await;
    assert_eq!(page.status, 200);
    // Audit pages: disjoint seqs.
    for i in 0..4 {
        let r = admin(&server, "POST", "/api/disconnect", Some(json!({"user": format!("ghost{i}")}))).await;
        assert_eq!(r.status, 200);
    }
    let all = audited(&server, "admin_action", 4).await;
    assert_eq!(all.len(), 4);
    let first = admin(&server, "GET", "/api/audit?kind=admin_action&limit=3", None).await.json();
    let next = first["next_cursor"].as_str().unwrap().to_owned();
    let second =
        admin(&server, "GET", &format!("/api/audit?kind=admin_action&limit=3&cursor={next}"), None).await.json();
    let seqs: Vec<u64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, all.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>());
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn every_documented_operation_exists_behind_the_credential() {
    let server = start().await;
    let doc = admin(&server, "GET", "/api/openapi.json", None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1");
        for method in item.as_object().unwrap().keys() {
            // An unrouted path would be 404: a route_layer guards only routes.
            let reply = api(&server, &method.to_uppercase(), &concrete, None, None).await;
            // Login is the one operation open to anyone: it is routed, and
            // refuses a request without a body as bad input.
            let expected = if path == "/api/login" { 400 } else { 401 };
            assert_eq!(reply.status, expected, "{method} {path}: {}", reply.body);
            operations += 1;
        }
    }
    assert_eq!(operations, 19);
}

/// Values a generated case puts in a body field, of every JSON type.
fn field_values() -> Vec<Value> {
    vec![
        json!(""),
        json!("a"),
        json!("user:gen"),
        json!("127.0.0.2"),
        json!("x".repeat(300)),
        json!(0),
        json!(1),
        json!(-1),
        json!(9_007_199_254_740_993_u64),
        json!(1.5),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
    ]
}

/// Values a generated case puts in a query or path parameter.
const PARAM_VALUES: [&str; 9] = ["", "a", "0", "1", "-1", "99999999999999999999", "%00", "ip:127.0.0.2", "user:gen"];

/// A generated-case run over the OpenAPI document (in the spirit of
/// schemathesis, without leaving cargo): every operation gets cases built
/// from its parameters and body properties (each parameter and property
/// alone with values of every type, an empty body, none), and every answer
/// must be a status the document lists for it, with a JSON body. A 500 or
/// an undocumented status fails.
#[tokio::test]
async fn generated_cases_get_only_documented_answers() {
    let server = start().await;
    let doc = admin(&server, "GET", "/api/openapi.json", None).await.json();
    let mut cases = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params: Vec<(String, String)> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["in"].as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let mut requests: Vec<(String, Option<Value>)> = Vec::new();
            let base = path.replace("{id}", "1");
            let body_variants: Vec<Option<Value>> = if body_schema.is_null() {
                vec![None]
            } else {
                let mut variants = vec![Some(json!({}))];
                for property in body_schema["properties"].as_object().unwrap().keys() {
                    for value in field_values() {
                        variants.push(Some(json!({ property: value })));
                    }
                }
                variants.push(Some(json!([])));
                variants.push(Some(json!("not an object")));
                variants
            };
            for body in &body_variants {
                requests.push((base.clone(), body.clone()));
            }
            for (name, place) in &params {
                for value in PARAM_VALUES {
                    let url = if place == "path" {
                        path.replace(&format!("{{{name}}}"), value)
                    } else {
                        format!("{base}?{name}={value}")
                    };
                    requests.push((url, body_variants[0].clone()));
                }
            }
            for (url, body) in requests {
                let method_upper = method.to_uppercase();
                let reply = admin(&server, &method_upper, &url, body.clone()).await;
                let documented = op["responses"].get(reply.status.to_string()).is_some();
                assert!(documented, "{method} {url} {body:?}: undocumented {} {}", reply.status, reply.body);
                assert!(reply.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{url}");
                serde_json::from_str::<Value>(&reply.body).unwrap_or_else(|e| panic!("{url}: {e}: {}", reply.body));
                cases += 1;
            }
        }
    }
    assert!(cases > 200, "{cases} cases");
    // The server still serves after all of it.
    assert_eq!(admin(&server, "GET", "/api/stats", None).await.status, 200);
}

#[tokio::test]
async fn a_revocation_through_the_api_closes_the_live_connection_at_once() {
    let server = start().await;
    let claims = json!({"sub": "dave", "name": "dave", "roles": ["user"], "exp": unix_now() + 600,
                        "iss": "palisade", "aud": "palisade", "jti": "jti-revoked-by-api"});
    let jwt = sign(&claims, SECRET);
    let (mut ws, _) = connect(&server, &jwt).await;
    let reply = admin(&server, "POST", "/api/revoke", Some(json!({"token": "jti-revoked-by-api"}))).await;
    assert_eq!((reply.status, reply.json()), (200, json!({"status": "revoked"})));
    assert_eq!(close_code(&mut ws).await, Some(4003));
    assert_eq!(refused(&server, Dial { bearer: Some(&jwt), ..Dial::default() }).await.0, 401);
    let reply = admin(&server, "POST", "/api/revoke", Some(json!({"session": "sid_unknown"}))).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (404, Some("not_found")));
    let records = audited(&server, "revocation", 1).await;
    assert_eq!(records[0]["detail"], "api: revoked token:jti-revoked-by-api", "{records:?}");
}
