#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers outside #[test] functions panic on setup failures by design.
//!
//! Geo rules (docs/OPERATIONS.md, "Geo rules") against a real server and a
//! real `.mmdb` this test builds with `mmdb-writer` (PyPI; installed by
//! scripts/test.sh): 127.0.80.0/24 is in FR, 127.0.81.0/24 in US, the rest
//! of 127/8 nowhere. Room rules' countries (docs/POLICY.md, "Country rules
//! for rooms") on the same database.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::auth::{ADMIN_KEY, Call, audited, call_at, with_admin_key};
use common::*;
use serde_json::json;

/// Writes a country database mapping each `(cidr, iso)`; `false` when the
/// Python package is missing outside CI (the test is then skipped).
fn build_mmdb(path: &Path, networks: &[(&str, &str)]) -> bool {
    let inserts: String = networks
        .iter()
        .map(|(net, iso)| format!("w.insert_network(IPSet(['{net}']), {{'country': {{'iso_code': '{iso}'}}}})\n"))
        .collect();
    let script = format!(
        "from netaddr import IPSet\nfrom mmdb_writer import MMDBWriter\n\
         w = MMDBWriter(ip_version=6, database_type='GeoIP2-Country', ipv4_compatible=True)\n\
         {inserts}w.to_db_file({:?})\n",
        path.display().to_string()
    );
    let ran = Command::new("python3").args(["-c", &script]).output();
    match ran {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(std::env::var("CI").as_deref() != Ok("true"), "mmdb-writer (pip) is needed under CI=true: {why}");
            eprintln!("threat_geo: skipped: cannot build a .mmdb with python3 and mmdb-writer: {why}");
            false
        }
    }
}

async fn status_from(server: &TestServer, from: [u8; 4]) -> u16 {
    let t = token("alice", &["user"]);
    match dial(server, Dial { bearer: Some(&t), from: Some(from), ..Dial::default() }).await {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

/// A server with the FR/US database and `rules` under `[geo]` (the
/// database's key added); `None` when the database cannot be built here.
async fn geo_server(rules: &str) -> Option<(TestServer, tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("countries.mmdb");
    if !build_mmdb(&db, &[("127.0.80.0/24", "FR"), ("127.0.81.0/24", "US")]) {
        return None;
    }
    let config = format!("{}[geo]\ndatabase = {:?}\n{rules}", with_admin_key(), db.display().to_string());
    Some((TestServer::start_lenient(&config).await, dir, db))
}

const FR: [u8; 4] = [127, 0, 80, 1];
const US: [u8; 4] = [127, 0, 81, 1];
const NOWHERE: [u8; 4] = [127, 0, 82, 1];

#[tokio::test]
async fn allow_countries_serve_only_those_unknown_deny_refuses_the_rest_and_threat_allow_wins() {
    let rules = "allow_countries = [\"fr\"]\nunknown = \"deny\"\n[threat]\nallow = [\"127.0.82.9\"]\n";
    let Some((server, _dir, _)) = geo_server(rules).await else { return };
    assert_eq!(status_from(&server, FR).await, 101);
    assert_eq!(status_from(&server, US).await, 403);
    assert_eq!(status_from(&server, NOWHERE).await, 403);
    assert_eq!(status_from(&server, [127, 0, 82, 9]).await, 101);
    let records = serde_json::Value::Array(audited(server.admin.unwrap(), "banned", 2).await).to_string();
    assert!(records.contains("country US not in geo.allow_countries"), "{records}");
    assert!(records.contains("country unknown"), "{records}");
    let reply = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/threat") }).await;
    let view = reply.json();
    assert_eq!(view["geo"]["loaded"], true, "{view}");
    assert_eq!(view["geo"]["refused"], 2, "{view}");
}

#[tokio::test]
async fn deny_countries_refuse_those_and_a_changed_database_applies() {
    let rules = "deny_countries = [\"US\"]\nrefresh = \"100ms\"\n";
    let Some((server, dir, db)) = geo_server(rules).await else { return };
    assert_eq!(status_from(&server, FR).await, 101);
    assert_eq!(status_from(&server, US).await, 403);
    assert_eq!(status_from(&server, NOWHERE).await, 101);
    // The database moves FR's network to US: refused within a refresh.
    let next = dir.path().join("next.mmdb");
    assert!(build_mmdb(&next, &[("127.0.80.0/23", "US")]));
    std::fs::rename(&next, &db).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while status_from(&server, FR).await != 403 {
        assert!(tokio::time::Instant::now() < deadline, "the new database was not read");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn room_countries_refuse_a_join_with_forbidden_audited_with_the_country() {
    let rules = "unknown = \"allow\"\n[threat]\nallow = [\"127.0.81.9\"]\n\
                 [rooms.lobby]\n[rooms.\"fr:*\"]\nallow_countries = [\"FR\"]\n\
                 [rooms.\"club:*\"]\nowners = \"create\"\ndeny_countries = [\"us\"]\n";
    let Some((server, _dir, _)) = geo_server(rules).await else { return };
    let t = token("alice", &[]);
    let (mut us, _) = connect_from(&server, US, &t).await;
    for (kind, room) in [("join", "fr:1"), ("create", "club:1")] {
        let reply = request(&mut us, json!({"type":kind,"id":"x","room":room})).await;
        assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")), "{reply}");
        assert_eq!(reply["message"], "not allowed", "the generic message, not the country: {reply}");
    }
    let reply = request(&mut us, json!({"type":"recover","id":"r","room":"fr:1","since":0})).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    // Rooms without countries stay open to every country.
    join(&mut us, "lobby").await;
    let records = serde_json::Value::Array(audited(server.admin.unwrap(), "forbidden", 3).await).to_string();
    assert!(records.contains("room countries refuse country US"), "{records}");
    // Allowed, unknown (geo.unknown = allow) and threat.allow are served.
    let (mut fr, _) = connect_from(&server, FR, &t).await;
    join(&mut fr, "fr:1").await;
    let reply = request(&mut fr, json!({"type":"create","id":"c","room":"club:1"})).await;
    assert_eq!(reply["type"], "ack", "{reply}");
    let (mut nowhere, _) = connect_from(&server, NOWHERE, &t).await;
    join(&mut nowhere, "fr:1").await;
    let (mut office, _) = connect_from(&server, [127, 0, 81, 9], &t).await;
    join(&mut office, "fr:1").await;
}

#[tokio::test]
async fn a_reload_applies_new_country_lists_and_an_invalid_one_keeps_them() {
    let Some((server, dir, db)) = geo_server("deny_countries = [\"US\"]\n").await else { return };
    assert_eq!(status_from(&server, US).await, 403);
    assert_eq!(status_from(&server, FR).await, 101);
    let rewrite = |key: &str, value: toml::Value| {
        let path = &server.config_path;
        let mut tree: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let geo = tree.get_mut("geo").and_then(|g| g.as_table_mut()).unwrap();
        geo.insert(key.into(), value);
        std::fs::write(path, toml::to_string(&tree).unwrap()).unwrap();
        server.reloader.reload(&std::collections::BTreeMap::new())
    };
    let deny = |code: &str| toml::Value::Array(vec![toml::Value::String(code.into())]);
    rewrite("deny_countries", deny("FR")).unwrap();
    assert_eq!(status_from(&server, FR).await, 403);
    assert_eq!(status_from(&server, US).await, 101);
    let err = rewrite("deny_countries", deny("France")).unwrap_err().to_string();
    assert!(err.contains("geo.deny_countries"), "{err}");
    assert_eq!(status_from(&server, FR).await, 403, "the rules in force stay");
    assert_eq!(status_from(&server, US).await, 101);
    // Another database file: FR's network is in DE there.
    rewrite("deny_countries", deny("FR")).unwrap();
    let other = dir.path().join("other.mmdb");
    assert!(build_mmdb(&other, &[("127.0.80.0/24", "DE")]));
    assert_ne!(other, db);
    rewrite("database", toml::Value::String(other.display().to_string())).unwrap();
    assert_eq!(status_from(&server, FR).await, 101);
}
