//! A config error must not print the config file: the TOML parser's own
//! message quotes the line at fault, and serde's quotes a wrong-typed
//! value, so a typo next to a signing key used to put the key in the
//! start-up error and, on a refused reload, in the server's log. The error
//! names the file, line, column and key instead.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::collections::BTreeMap;

use common::log::Captured;
use common::*;
use process::run;

const LEAKED: &str = "hunter2-signing-secret-hunter2-signing!!";

/// A key whose secret line has lost its closing quote, so the parser stops
/// on the secret itself.
fn broken_key() -> String {
    format!("\n[[auth.keys]]\nid = \"k2\"\nalgorithm = \"HS256\"\nsecret = \"{LEAKED}\n\n[origins]\nallow = []\n")
}

#[test]
fn a_start_up_error_names_the_place_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), format!("[server]\nallow_plaintext = true\n{}", broken_key())).unwrap();
    let out = run(dir.path(), &["serve", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(LEAKED), "{stderr}");
    assert!(!stderr.contains("hunter2"), "not even a part of it: {stderr}");
    // The parser stops at the end of the line the string never closed on.
    assert!(stderr.contains("bad.toml is not valid TOML at line 7, column 51"), "{stderr}");
    assert!(stderr.contains("auth.keys[0].secret"), "{stderr}");

    // A secret where the wrong type goes: serde would quote it whole.
    std::fs::write(dir.path().join("typed.toml"), format!("[admin]\n\napi_keys = \"{LEAKED}\"\n")).unwrap();
    let out = run(dir.path(), &["serve", "--config", "typed.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("admin.api_keys"), "{stderr}");
    assert!(stderr.contains("line 3, column 1"), "{stderr}");
}

#[tokio::test]
async fn a_refused_reload_logs_the_place_never_the_secret() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start("").await;
    let original = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(&server.config_path, format!("{original}{}", broken_key())).unwrap();

    let err = server.reloader.reload(&BTreeMap::new()).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("line") && err.contains("column") && err.contains("auth.keys[1].secret"), "{err}");
    let text = log.text();
    assert!(text.contains("policy reload failed"), "{text}");
    assert!(text.contains("auth.keys[1].secret"), "the log names the key: {text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains(SECRET), "nor the file's other secrets: {text}");
}
