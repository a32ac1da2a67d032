//! What the browser tests share (`tests/dashboard.rs`, `tests/demo.rs`):
//! whether node, Debian's chromium and playwright-core are there, and a
//! script of theirs run against a live server to completion or a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::child::run_until;

pub const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a browser test needs and does not find, if anything.
pub fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not installed".into());
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    if !repo().join("clients/js/node_modules/playwright-core").exists() {
        return Some("playwright-core is missing (npm ci in clients/js)".into());
    }
    None
}

/// Whether the browser test `name` can run: it fails under CI=true when
/// something is missing (scripts/test.sh installs it), and says it is
/// skipped elsewhere.
pub fn can_run(name: &str) -> bool {
    let Some(why) = missing() else { return true };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why} under CI (scripts/test.sh installs it)");
    eprintln!("SKIPPED {name}: {why}");
    false
}

/// Runs `tests/<script>` with `env` (and `CHROMIUM`) until it exits or
/// `deadline` passes: whether it passed, and what it printed.
pub fn run_script(script: &str, env: &[(&str, String)], deadline: Duration) -> (bool, String) {
    let mut node = Command::new("node");
    node.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script)).env("CHROMIUM", CHROMIUM);
    for (key, value) in env {
        node.env(key, value);
    }
    run_until(&mut node, deadline)
}
