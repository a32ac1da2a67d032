//! The tamper-evident audit log (issue 10, point 1), on the real process:
//! a refused handshake and a CLI ban become records; `palisade audit verify`
//! passes, names the record whose stored bytes were changed, and, given the
//! last checkpoint the server wrote, notices records cut off the end.
//! `audit.retention` removes the oldest records and what is kept still
//! verifies from its signed anchor, while a record removed past it is
//! caught. And
//! in process: a flood of refusals while the writer is stuck never waits on
//! it; the records it cannot take are counted as dropped.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::path::Path;
use std::time::Duration;

use common::*;
use process::{Running, SERVE_AUDITED, audit_verify as verify, run, start_audited};
use serde_json::{Value, json};

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn export(dir: &Path, kind: &str) -> Vec<Value> {
    cli(dir, &["audit", "export", "--data", "data", "--kind", kind, "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn records_verify_and_tampering_or_truncation_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start_audited(dir, "");

    // A refused handshake: a credential that is not a token.
    let refused = dial_at(server.addr, Dial { bearer: Some("not-a-token"), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(401));
    // A CLI ban, appended by the CLI process to the same chain.
    cli(dir, &["ban", "add", "127.0.31.1", "--for", "1h", "--data", "data", "--reason", "audit test"]);

    let deadline = tokio::time::Instant::now() + WAIT;
    let failure = loop {
        if let Some(record) = export(dir, "auth_failure").pop() {
            break record;
        }
        assert!(tokio::time::Instant::now() < deadline, "the refused handshake was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failure["ip"], "127.0.0.1");
    assert!(failure["detail"].as_str().unwrap().starts_with("auth:"), "{failure}");
    assert!(!failure.to_string().contains("not-a-token"), "a credential never goes into a record");
    let bans = export(dir, "ban");
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0]["ip"], "127.0.31.1");
    assert!(bans[0]["detail"].as_str().unwrap().contains("audit test"));
    assert!(cli(dir, &["audit", "tail", "--data", "data", "-n", "5"]).contains("ban ip=\"127.0.31.1\""));

    // More records, so there are some to cut off below: from other
    // addresses, since repeats from one are folded into one record.
    for i in 2..5 {
        let _ =
            dial_at(server.addr, Dial { bearer: Some("not-a-token"), from: Some([127, 0, 31, i]), ..Dial::default() })
                .await;
    }
    assert!(server.terminate().success());
    let checkpoints = std::fs::read_to_string(dir.join("checkpoints.log")).unwrap();
    let last = checkpoints.lines().last().expect("the server wrote checkpoints").to_owned();
    let head: u64 = last.split_whitespace().next().unwrap().trim_start_matches("seq=").parse().unwrap();
    assert!(head >= 5, "{checkpoints}");

    let (ok, out) = verify(dir, &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{head} records")), "{out}");
    let (ok, out) = verify(dir, &["--checkpoint", &last]);
    assert!(ok, "{out}");

    // A forged checkpoint is refused on its MAC alone.
    let forged = last.replacen(&format!("seq={head}"), &format!("seq={}", head - 1), 1);
    let (ok, out) = verify(dir, &["--checkpoint", &forged]);
    assert!(!ok && out.contains("not signed"), "{out}");

    // One byte of record 2's stored detail changed: verify names record 2.
    let db = rusqlite::Connection::open(dir.join("data/palisade.db")).unwrap();
    let detail: String = db.query_row("SELECT detail FROM audit WHERE seq = 2", [], |r| r.get(0)).unwrap();
    let mut bytes = detail.clone().into_bytes();
    bytes[0] ^= 0x01;
    let flipped = String::from_utf8(bytes).unwrap();
    db.execute("UPDATE audit SET detail = ?1 WHERE seq = 2", [&flipped]).unwrap();
    let (ok, out) = verify(dir, &[]);
    assert!(!ok && out.contains("seq=2") && out.contains("edited"), "{out}");
    db.execute("UPDATE audit SET detail = ?1 WHERE seq = 2", [&detail]).unwrap();
    assert!(verify(dir, &[]).0, "restored");

    // The last two records cut off: still a valid chain, but it no longer
    // reaches the last checkpoint.
    db.execute("DELETE FROM audit WHERE seq > ?1", [i64::try_from(head).unwrap() - 2]).unwrap();
    drop(db);
    let (ok, out) = verify(dir, &[]);
    assert!(ok, "a shorter chain is still a chain: {out}");
    let (ok, out) = verify(dir, &["--checkpoint", &last]);
    assert!(!ok && out.contains("removed"), "{out}");
}

#[tokio::test]
async fn retention_removes_the_oldest_records_and_what_is_kept_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start_audited(dir, "[audit.retention]\nmax_records = 3\n");
    for i in 1..=6 {
        let dial = Dial { bearer: Some("not-a-token"), from: Some([127, 0, 33, i]), ..Dial::default() };
        let _ = dial_at(server.addr, dial).await;
    }
    assert!(server.terminate().success());
    // Retention runs at start (and every minute): the next start prunes.
    let server = Running::start(dir, &SERVE_AUDITED, &[]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while export(dir, "retention").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.terminate().success());
    let db = rusqlite::Connection::open(dir.join("data/palisade.db")).unwrap();
    let first: i64 = db.query_row("SELECT min(seq) FROM audit", [], |r| r.get(0)).unwrap();
    assert_eq!(first, 4, "records 1 to 3 removed");
    let (ok, out) = verify(dir, &["--checkpoints", "checkpoints.log"]);
    assert!(ok && out.contains("removed by audit.retention"), "{out}");
    // Removing more from the start is not retention: nothing anchors it.
    db.execute("DELETE FROM audit WHERE seq = 4", []).unwrap();
    let (ok, out) = verify(dir, &[]);
    assert!(!ok && out.contains("removed from its start"), "{out}");
}

#[tokio::test]
async fn a_flood_while_the_writer_is_stuck_is_answered_and_its_excess_dropped() {
    let mut server = TestServer::start_lenient("[audit]\nqueue = 1\n").await;
    // Hold the database's write lock, so the writer's first append waits on
    // it and the queue stays full for the whole flood.
    let db = rusqlite::Connection::open(server.data_dir.join("palisade.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (mut ws, _) = connect(&server, &token("alice", &["user"])).await;
    const FLOOD: usize = 50;
    for i in 0..FLOOD {
        send_json(&mut ws, json!({"type":"join","id":format!("j{i}"),"room":"no-such-room"})).await;
    }
    // Every refusal is answered while the writer cannot write anything.
    for i in 0..FLOOD {
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["id"], format!("j{i}"));
    }
    assert!(server.stats.audit_dropped() > 0, "a full queue drops and counts");
    assert_eq!(server.stats.audit_written(), 0, "nothing could be written yet");

    db.execute_batch("COMMIT").unwrap();
    drop(ws);
    server.shutdown().await;
    // What the queue held was written after all.
    let db = rusqlite::Connection::open(server.data_dir.join("palisade.db")).unwrap();
    let stored: i64 = db.query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap();
    assert!(stored >= 1, "the queued records reached the store");
    assert_eq!(u64::try_from(stored).unwrap(), server.stats.audit_written());
    assert_eq!(server.stats.audit_failed(), 0);
    // And what was dropped is told in the chain itself.
    let detail: String = db.query_row("SELECT detail FROM audit WHERE kind = 'gap'", [], |r| r.get(0)).unwrap();
    let dropped = server.stats.audit_dropped();
    assert!(detail.starts_with(&format!("{dropped} records lost")), "{detail}");
}
