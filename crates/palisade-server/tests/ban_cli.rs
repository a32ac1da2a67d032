//! `palisade ban list|add|remove` as an operator runs them: the real binary
//! on a data directory, and what it prints. (That a running server honours
//! these bans is tested with the server.)

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Runs `palisade ARGS --data DATA` from `dir`.
fn palisade(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(dir.join("data"))
        .current_dir(dir)
        .env_remove("PALISADE_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = palisade(dir, args);
    assert!(out.status.success(), "{args:?}: {:?}\n{}", out.status, stderr(&out));
    stdout(&out)
}

/// The data lines of a `ban list` table, without the header.
fn rows(listing: &str) -> Vec<&str> {
    let mut lines = listing.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("SUBJECT") || header.starts_with("AT"), "{listing}");
    lines.collect()
}

#[test]
fn an_operator_bans_lists_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let added = ok(dir, &["ban", "add", "ip:127.0.0.9", "--for", "2h", "--reason", "scraping the room list"]);
    assert!(added.starts_with("banned ip:127.0.0.9 until 20"), "{added}");
    let added = ok(dir, &["ban", "add", "user:mallory", "--permanent"]);
    assert!(added.starts_with("banned user:mallory permanently"), "{added}");
    assert!(dir.join("data/palisade.db").is_file());

    let listing = ok(dir, &["ban", "list"]);
    let active = rows(&listing);
    assert_eq!(active.len(), 2, "{listing}");
    assert!(active[0].starts_with("ip:127.0.0.9 ") && active[0].contains("Z "), "until in RFC 3339 UTC: {listing}");
    assert!(active[0].contains("operator") && active[0].ends_with("\"scraping the room list\""), "{listing}");
    assert!(active[1].starts_with("user:mallory ") && active[1].contains("permanent"), "{listing}");

    assert_eq!(ok(dir, &["ban", "remove", "127.0.0.9"]), "lifted the ban on ip:127.0.0.9\n");
    let listing = ok(dir, &["ban", "list"]);
    let active = rows(&listing);
    assert_eq!(active.len(), 1, "{listing}");
    assert!(active[0].starts_with("user:mallory "), "{listing}");

    let listing = ok(dir, &["ban", "list", "--history"]);
    let history = rows(&listing);
    assert_eq!(history.len(), 3, "{listing}");
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            (fields.next().unwrap(), fields.next().unwrap())
        })
        .collect();
    assert_eq!(actions, [("lift", "ip:127.0.0.9"), ("ban", "user:mallory"), ("ban", "ip:127.0.0.9")], "newest first");
    assert_eq!(rows(&ok(dir, &["ban", "list", "--history", "--limit", "1"])).len(), 1);

    let out = palisade(dir, &["ban", "remove", "ip:127.0.0.9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no ban on ip:127.0.0.9"), "{}", stderr(&out));

    assert_eq!(ok(dir, &["ban", "remove", "user:mallory"]), "lifted the ban on user:mallory\n");
    assert_eq!(ok(dir, &["ban", "list"]), "no bans\n");
}

#[test]
fn bad_subjects_and_missing_lengths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (args, says) in [
        (&["ban", "add", "host:example.com", "--for", "1h"][..], "ip:ADDRESS (or a bare address) or user:ID"),
        (&["ban", "add", "user:", "--permanent"], "ip:ADDRESS (or a bare address) or user:ID"),
        (&["ban", "remove", "999.1.1.1"], "ip:ADDRESS (or a bare address) or user:ID"),
        (&["ban", "add", "ip:127.0.0.9"], "--for <DURATION>|--permanent"),
        (&["ban", "add", "ip:127.0.0.9", "--for", "1h", "--permanent"], "cannot be used with"),
        (&["ban", "add", "ip:127.0.0.9", "--for", "soon"], "--for"),
        (&["ban", "add", "ip:127.0.0.9", "--for", "0s"], "above zero"),
        (&["ban", "add", "ip:127.0.0.9", "--permanent", "--reason", &"x".repeat(201)], "at most 200 characters"),
        (&["ban", "add", "ip:127.0.0.9", "--permanent", "--reason", "a\nforged line"], "control characters"),
    ] {
        let out = palisade(dir, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // Nothing was banned, and listing a data directory without a database
    // says so instead of "no bans".
    let out = palisade(dir, &["ban", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
}
