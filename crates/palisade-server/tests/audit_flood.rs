//! A banned address floods the audit log (issue 16, point 2): 100,000
//! pipelined requests, relayed by a trusted proxy for an address under an
//! operator's ban, are each refused, yet add only a few rows (repeats of
//! one refusal from one subject fold into one record and a count per
//! `audit.aggregate_interval`); and the 20 bans operators make through the
//! admin API during the flood are all in the log.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::auth::{ADMIN_KEY, Call, call_at, with_admin_key};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PROXY: [u8; 4] = [127, 0, 40, 1];
const BANNED: &str = "127.0.40.66";
const SOCKETS: usize = 4;
const PER_SOCKET: usize = 25_000;
/// Requests written per `write_all`.
const CHUNK: usize = 250;

/// Sends `n` pipelined `GET /auth/sessions` for [`BANNED`] through the proxy's
/// socket; returns how many were answered 403 and how many otherwise.
async fn pipeline(addr: SocketAddr, n: usize) -> (usize, usize) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((PROXY, 0))).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(addr)).await.unwrap().unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // Without a body: the server refuses before it would read one, and an
    // unread body not yet in its buffer would end the connection.
    let request = format!("GET /auth/sessions HTTP/1.1\r\nhost: x\r\nx-forwarded-for: {BANNED}\r\n\r\n");
    let chunk = request.repeat(CHUNK);
    let writer = tokio::spawn(async move {
        for _ in 0..n / CHUNK {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        wr
    });
    let (mut forbidden, mut other) = (0, 0);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while forbidden + other < n {
        let Ok(Ok(read)) = tokio::time::timeout(WAIT, rd.read(&mut buf)).await else { break };
        if read == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..read]);
        // Count whole status lines; keep a tail that may hold a cut one.
        let mut at = 0;
        while let Some(i) = find(&pending[at..], b"HTTP/1.1 ") {
            let start = at + i;
            let Some(code) = pending.get(start + 9..start + 12) else { break };
            if code == b"403" {
                forbidden += 1;
            } else {
                other += 1;
            }
            at = start + 12;
        }
        pending.drain(..at.max(pending.len().saturating_sub(11)));
    }
    drop(writer.await.unwrap());
    (forbidden, other)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn ban(admin: SocketAddr, subject: &str) -> u16 {
    let body = json!({"subject": subject, "duration_secs": 3600});
    call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/bans", body) }).await.status
}

fn count(db: &rusqlite::Connection, filter: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM audit WHERE {filter}"), [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_address_flooding_adds_a_few_rows_and_every_operator_ban_is_kept() {
    let proxy = "[server]\ntrusted_proxies = [\"127.0.40.1\"]\n[audit]\naggregate_interval = \"10s\"\n";
    let mut server = TestServer::start_layers(&[NO_ABUSE_LIMITS, &with_admin_key(), proxy]).await;
    let admin = server.admin.unwrap();
    assert_eq!(ban(admin, &format!("ip:{BANNED}")).await, 201);

    let floods: Vec<_> = (0..SOCKETS).map(|_| tokio::spawn(pipeline(server.addr, PER_SOCKET))).collect();
    // Operators at work during the flood.
    for i in 0..20 {
        assert_eq!(ban(admin, &format!("ip:127.0.41.{i}")).await, 201);
    }
    let mut forbidden = 0;
    for flood in floods {
        let (refused, other) = flood.await.unwrap();
        assert_eq!(other, 0, "every request of a banned address is refused");
        forbidden += refused;
    }
    assert_eq!(forbidden, SOCKETS * PER_SOCKET, "every request was answered");
    server.shutdown().await;

    let db = rusqlite::Connection::open(server.data_dir.join("palisade.db")).unwrap();
    assert_eq!(count(&db, "kind = 'ban' AND ip LIKE '127.0.41.%'"), 20, "no operator ban was pushed out");
    assert_eq!(count(&db, "kind = 'admin_action'"), 21);
    let flood = count(&db, &format!("kind = 'banned' AND ip = '{BANNED}'"));
    assert!((1..=12).contains(&flood), "{flood} rows for 100,000 refusals");
    let gaps = count(&db, "kind = 'gap'");
    let total = count(&db, "1");
    assert!(total <= 21 + 21 + flood + gaps && total <= 80, "{total} rows in all");
    // Each row is a refusal of its own or counts the repeats folded into it.
    let told: i64 = db
        .prepare(&format!("SELECT detail FROM audit WHERE kind = 'banned' AND ip = '{BANNED}'"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|detail| {
            let detail = detail.unwrap();
            detail.strip_prefix("repeated ").and_then(|d| d.split(' ').next()?.parse().ok()).unwrap_or(1)
        })
        .sum();
    let dropped = i64::try_from(server.stats.audit_dropped()).unwrap();
    assert!(told + dropped >= i64::try_from(SOCKETS * PER_SOCKET).unwrap(), "{told} told, {dropped} dropped");
    assert!(dropped == 0 || gaps > 0, "a drop leaves a gap record");
}
