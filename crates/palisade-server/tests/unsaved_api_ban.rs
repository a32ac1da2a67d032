//! An API ban the store refuses must not hold: it used to go into force
//! before the save, so a failed save left a ban the operator was told had
//! failed in force until the next restart or reload silently dropped it.
//! Now the save comes first, and a refused one changes nothing.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{Call, call_at};
use common::*;
use serde_json::json;

const KEY: &str = common::auth::ADMIN_KEY;

#[tokio::test]
async fn a_ban_the_store_refuses_is_not_in_force() {
    let server = TestServer::start_lenient(&format!("[admin]\napi_keys = [\"{KEY}\"]\n")).await;
    let admin = server.admin.unwrap();
    let eve = token("eve", &["user"]);
    let (_ws, _) = connect(&server, &eve).await;

    // Another connection to the same database makes every ban write fail,
    // as a full disk or a read-only file would.
    let db = rusqlite::Connection::open(server.data_dir.join(palisade_store::DB_FILE)).unwrap();
    db.execute_batch("CREATE TRIGGER no_bans BEFORE INSERT ON bans BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    let ban = json!({"subject": "user:eve", "duration_secs": 3600, "reason": "spam"});
    let reply = call_at(admin, Call { bearer: Some(KEY), ..Call::post("/api/bans", ban.clone()) }).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json(), json!({"error": "internal", "message": "internal error"}), "generic");

    // Nothing took effect: eve still gets in, the list is empty, no ban
    // was recorded.
    connect(&server, &eve).await;
    let list = call_at(admin, Call { bearer: Some(KEY), ..Call::get("/api/bans") }).await.json();
    assert_eq!(list["items"], json!([]), "{list}");
    let audit = call_at(admin, Call { bearer: Some(KEY), ..Call::get("/api/audit?kind=ban") }).await.json();
    assert_eq!(audit["items"], json!([]), "{audit}");

    // Once the store takes writes again, the same call bans.
    db.execute_batch("DROP TRIGGER no_bans;").unwrap();
    let reply = call_at(admin, Call { bearer: Some(KEY), ..Call::post("/api/bans", ban) }).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(refused(&server, Dial { bearer: Some(&eve), ..Dial::default() }).await.0, 403);
}
