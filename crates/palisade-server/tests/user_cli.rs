//! `palisade user add|list|remove` as an operator runs them: the real
//! binary on a data directory, the password piped on stdin (issue 9,
//! point 1).

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use palisade_core::auth::verify_password;
use palisade_core::store::UserStore as _;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Runs `palisade ARGS --data DIR/data` with `stdin` piped in.
fn palisade(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--data").arg(dir.join("data")).current_dir(dir).env_remove("PALISADE_CONFIG");
    common::child::output_with_stdin(&mut command, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn an_operator_adds_lists_and_removes_users() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let added = palisade(dir, &["user", "add", "alice", "--role", "student,user"], "correct horse battery\n");
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stdout).starts_with("added user alice with roles [student, user]"));

    // The database holds an argon2id hash of exactly that password.
    let store = palisade_store::Sqlite::open_in(&dir.join("data")).unwrap();
    let alice = store.user("alice").unwrap().unwrap();
    assert!(alice.password_hash.starts_with("$argon2id$"), "{alice:?}");
    assert!(verify_password("correct horse battery", &alice.password_hash));
    assert!(!verify_password("correct horse battery\n", &alice.password_hash));

    let listed = palisade(dir, &["user", "list"], "");
    assert_eq!(text(&listed.stdout), "alice  [student, user]\n");
    assert!(!text(&listed.stdout).contains("argon2"), "hashes are never printed");

    let changed = palisade(dir, &["user", "roles", "alice", "--role", "teacher"], "");
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert_eq!(text(&palisade(dir, &["user", "list"], "").stdout), "alice  [teacher]\n");

    for (args, stdin, why) in [
        (&["user", "add", "alice"][..], "another long password\n", "exists"),
        (&["user", "add", "bob", "--role", "wizard"], "another long password\n", "no role \"wizard\""),
        (&["user", "add", "bob"], "short\n", "at least 12 characters"),
        (&["user", "add", "bad id"], "another long password\n", "sub"),
        (&["user", "remove", "nobody"], "", "no user nobody"),
        (&["user", "roles", "nobody", "--role", "user"], "", "no user nobody"),
        (&["user", "roles", "alice", "--role", "wizard"], "", "no role \"wizard\""),
    ] {
        let out = palisade(dir, args, stdin);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(text(&out.stderr).contains(why), "{args:?}: {}", text(&out.stderr));
    }

    let removed = palisade(dir, &["user", "remove", "alice"], "");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert_eq!(text(&palisade(dir, &["user", "list"], "").stdout), "no users\n");
}
