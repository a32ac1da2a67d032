//! Locking an operator out by failing logins in their name (issue 16,
//! point 6): failures from one address lock the name for that address
//! only, on the listener they were made on; the owner logs in from
//! elsewhere, on the public and the admin listener, however long the
//! attack goes on. The server's clock is paused and stepped through the
//! waits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::auth::{Call, PASSWORD, add_user, call_at, with_admin_key};
use common::*;
use palisade_core::refusal::Kind;
use serde_json::json;

const ATTACKER: [u8; 4] = [127, 0, 3, 66];
const ALICE: [u8; 4] = [127, 0, 4, 1];

/// A login as alice at `path` on `addr` from `from`.
async fn attempt(addr: SocketAddr, path: &str, password: &str, from: [u8; 4]) -> (u16, Option<u64>) {
    let body = json!({"username": "alice", "password": password});
    // The admin listener's login wants its own origin (`host: x`); the
    // public one an allowed origin, or none.
    let origin = (path == "/api/login").then_some("http://x");
    let call = Call { from: Some(from), origin, ..Call::post(path, body) };
    let reply = call_at(addr, call).await;
    (reply.status, reply.header("retry-after").map(|s| s.parse().unwrap()))
}

/// The attacker fails as fast as the throttle lets it, stepping the clock
/// through every wait, until the name is locked for it; alice logs in from
/// her own address between the attacker's attempts all along.
async fn attack_until_locked(addr: SocketAddr, path: &str) -> u32 {
    let mut failures = 0;
    for _ in 0..40 {
        match attempt(addr, path, "wrong password!", ATTACKER).await {
            (401, _) => failures += 1,
            (429, Some(wait)) if wait >= 900 => return failures,
            (429, Some(wait)) => tokio::time::advance(Duration::from_secs(wait)).await,
            other => panic!("{other:?}"),
        }
        if failures % 4 == 0 {
            assert_eq!(attempt(addr, path, PASSWORD, ALICE).await.0, 200, "alice, after {failures} failures");
        }
    }
    panic!("never locked after {failures} failures");
}

#[tokio::test(start_paused = true)]
async fn an_address_failing_logins_for_a_name_cannot_lock_its_owner_out() {
    let server = TestServer::start_lenient(&with_admin_key()).await;
    add_user(&server.data_dir, "alice", &["admin"]);
    let admin = server.admin.unwrap();

    assert_eq!(attack_until_locked(server.addr, "/auth/login").await, 10);
    // Locked for the attacker, even with the right password …
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ATTACKER).await, (429, Some(900)));
    // … and not for alice, from her address, on either listener.
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ALICE).await.0, 200);
    assert_eq!(attempt(admin, "/api/login", PASSWORD, ALICE).await.0, 200);
    // The admin listener keeps its own counts: the attacker's password is
    // looked at there, and the attack on it locks only itself too.
    assert_eq!(attempt(admin, "/api/login", "wrong password!", ATTACKER).await.0, 401);
    assert_eq!(attack_until_locked(admin, "/api/login").await, 9);
    assert_eq!(attempt(admin, "/api/login", PASSWORD, ALICE).await.0, 200);
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ALICE).await.0, 200);

    // Fifteen minutes on, the lock renews with more failures, and alice
    // still does not notice.
    tokio::time::advance(Duration::from_secs(900)).await;
    assert_eq!(attack_until_locked(server.addr, "/auth/login").await, 10);
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ALICE).await.0, 200);
    // What the server recorded: every failure, and the throttle's refusals,
    // all against the attacker's address.
    assert_eq!(server.stats.refused(Kind::LoginFailure), 30);
    assert!(server.stats.refused(Kind::RateExcess) >= 3);
    let refused = common::auth::audited(admin, "login_failure", 1).await;
    assert!(!refused.is_empty() && refused.iter().all(|r| r["ip"] == "127.0.3.66"), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn guessing_one_name_from_many_addresses_slows_it_down_but_never_locks_it() {
    let server = TestServer::start_lenient("[login]\nfree_addresses_per_user = 3\n").await;
    add_user(&server.data_dir, "alice", &[]);
    for n in 0..3 {
        assert_eq!(attempt(server.addr, "/auth/login", "wrong password!", [127, 0, 5, n]).await.0, 401);
    }
    assert_eq!(attempt(server.addr, "/auth/login", "wrong password!", [127, 0, 5, 3]).await.0, 401);
    // A fourth address: now every attempt at the name waits, briefly.
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ALICE).await, (429, Some(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(attempt(server.addr, "/auth/login", PASSWORD, ALICE).await.0, 200);
}
