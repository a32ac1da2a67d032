//! The public `/readyz` is an unmetered store probe (issue 16, point 9):
//! it needs no credential, so a flood of it must not become a flood of
//! store queries. The store's answer is kept for a second.
//!
//! One test in this binary: the metrics recorder is one per process, and
//! the count of store calls is read from it.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::auth::{ADMIN_KEY, get, with_admin_key};
use common::*;

/// Store calls so far, of every operation, as `/metrics` counts them.
async fn store_calls(server: &TestServer) -> f64 {
    let (status, body) = get(server.admin.unwrap(), "/metrics", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    // Each operation's series shows from its first call on.
    body.lines()
        .filter(|l| l.starts_with("palisade_store_latency_seconds_count{"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.trim().parse::<f64>().expect("a number"))
        .sum()
}

#[tokio::test]
async fn a_flood_of_readyz_costs_the_store_one_query_a_second() {
    let server = TestServer::start(&with_admin_key()).await;
    let before = store_calls(&server).await;
    let started = Instant::now();
    const FLOOD: usize = 300;
    for _ in 0..FLOOD {
        let answer = http_get(server.addr, "/readyz").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let calls = store_calls(&server).await - before;
    // At most one probe a second, besides the store follower's four reads
    // a second (follow::POLL) and a few more for slack.
    let bound = (seconds + 1.0) * 5.0 + 10.0;
    // The first probe found no answer kept: the count is not vacuous.
    assert!(calls >= 1.0, "no store call counted for {FLOOD} probes");
    assert!(calls <= bound, "{calls} store calls for {FLOOD} probes in {seconds:.1} s");
}
