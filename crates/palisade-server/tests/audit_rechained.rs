//! Someone who can write `palisade.db` but has no key deletes audit records
//! and recomputes the keyless chain while the server runs (issue 16,
//! point 3). The server must not go on signing the forged head: its next
//! append finds the record it signed last gone, records a `chain_break`,
//! stops signing and fails `/readyz`; and `palisade audit verify` with the
//! checkpoint file shows that the log no longer reaches what was signed.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::path::Path;
use std::time::Duration;

use common::*;
use palisade_core::audit::Entry;
use palisade_core::store::AuditStore as _;
use process::{Running, audit_verify as verify, start_audited};

fn checkpoints(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("checkpoints.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn last_seq(lines: &[String]) -> u64 {
    lines.last().and_then(|l| l.strip_prefix("seq=")?.split(' ').next()?.parse().ok()).unwrap_or(0)
}

/// A refused handshake from `127.0.32.last`: one record each (one subject
/// each, so none is folded into another).
async fn refusal(server: &Running, last: u8) {
    let dial = Dial { bearer: Some("not-a-token"), from: Some([127, 0, 32, last]), ..Dial::default() };
    assert_eq!(dial_at(server.addr, dial).await.err().map(|(status, _)| status), Some(401));
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_chain_rewritten_under_the_running_server_is_never_signed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start_audited(dir, "");
    for last in 1..=6 {
        refusal(&server, last).await;
    }
    until("the server signs the sixth record", || last_seq(&checkpoints(dir)) >= 6).await;
    let signed = checkpoints(dir);
    assert!(verify(dir, &["--checkpoints", "checkpoints.log"]).0, "honest so far");

    // The attack: records 2 and 3 deleted, the rest chained again from
    // seq 1 with the code anyone can read (no key is involved).
    let store = palisade_store::Sqlite::open(&dir.join("data/palisade.db")).unwrap();
    let kept: Vec<Entry> =
        store.range(1, 100).unwrap().into_iter().filter(|r| ![2, 3].contains(&r.seq)).map(|r| r.entry).collect();
    let db = rusqlite::Connection::open(dir.join("data/palisade.db")).unwrap();
    db.execute("DELETE FROM audit", []).unwrap();
    store.append(&kept).unwrap();
    assert!(verify(dir, &[]).0, "the forged chain is a valid chain on its own");

    // The server is made to write more.
    for last in 7..=9 {
        refusal(&server, last).await;
    }
    let line = server.line(|l| l.contains("the audit log was rewritten")).expect("an error line says so");
    assert!(line.contains("ERROR") && line.contains("seq=6"), "{line}");
    let ready = http_get(server.addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503") && ready.contains("audit_chain"), "{ready}");
    let breaks: i64 = db.query_row("SELECT count(*) FROM audit WHERE kind = 'chain_break'", [], |r| r.get(0)).unwrap();
    assert_eq!(breaks, 1, "the break is in the chain itself");
    assert!(server.terminate().success());

    // Nothing was signed after the attack, not even at shutdown…
    assert_eq!(checkpoints(dir), signed, "no checkpoint over the forged head");
    // …and the checkpoints signed before it no longer verify.
    let (ok, out) = verify(dir, &["--checkpoints", "checkpoints.log"]);
    assert!(!ok && out.contains("another hash"), "{out}");
    let (ok, out) = verify(dir, &["--checkpoint", signed.last().unwrap()]);
    assert!(!ok && out.contains("seq=6"), "{out}");
    // Restarted on the forged log, the server knows what it signed from
    // the checkpoint file: it does not sign the forgery either.
    let server = start_audited(dir, "");
    refusal(&server, 10).await;
    assert!(server.line(|l| l.contains("the audit log was rewritten")).is_some(), "caught after a restart too");
    assert!(server.terminate().success());
    assert_eq!(checkpoints(dir), signed);

    // A server that had signed the forged head would have written a seq
    // below one it signed before: that alone fails.
    std::fs::write(dir.join("backwards.log"), format!("{}\n{}\n", signed[signed.len() - 1], signed[0])).unwrap();
    let (ok, out) = verify(dir, &["--checkpoints", "backwards.log"]);
    assert!(!ok && out.contains("line 2") && out.contains("cut and rewritten"), "{out}");
}
