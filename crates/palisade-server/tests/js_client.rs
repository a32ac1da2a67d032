//! The JavaScript client (`clients/js`, `@palisade/client`) against this
//! build's `palisade` binary: its `node --test` suites start the binary
//! themselves on loopback (reconnects, refresh, CSRF, recover, the queue)
//! and drive Debian's chromium through playwright-core.
//!
//! Without `node` and `npm` the test fails under CI=true (scripts/test.sh
//! is where they come from) and reports itself skipped elsewhere; so does
//! the browser suite without `/usr/bin/chromium`. `npm ci` runs first when
//! `clients/js/node_modules` is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::child::run_until;

/// Longest the whole `node --test` run may take.
const DEADLINE: Duration = Duration::from_secs(300);

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js")
}

/// `node`'s major version, if it runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches('v').split('.').next()?.parse().ok()
}

fn npm_present() -> bool {
    Command::new("npm").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn report(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_javascript_client_passes_its_suites_against_this_server() {
    let (Some(major), true) = (node_major(), npm_present()) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "node and npm are missing under CI (scripts/test.sh)");
        eprintln!(
            "SKIPPED the_javascript_client_passes_its_suites_against_this_server: node or npm is not installed \
             (clients/js needs Node >= 20)"
        );
        return;
    };
    assert!(major >= 20, "clients/js needs Node >= 20, found {major}");
    let dir = client_dir();
    if !dir.join("node_modules").exists() {
        let output = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "npm ci failed:\n{}", report(&output));
    }
    let mut node = Command::new("node");
    // Node 20 has the global WebSocket only behind this flag.
    if major < 22 {
        node.arg("--experimental-websocket");
    }
    // The suites by name: Node 20 would also run every other file under
    // test/ (the helpers) as a test file.
    let mut suites: Vec<String> = std::fs::read_dir(dir.join("test"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    suites.sort();
    node.arg("--test").args(&suites).current_dir(&dir).env("PALISADE_BIN", env!("CARGO_BIN_EXE_palisade"));
    let (passed, output) = run_until(&mut node, DEADLINE);
    assert!(passed, "the clients/js suites failed:\n{output}");
    assert!(output.contains("# pass "), "node --test ran: {output}");
    // A suite that skipped (a missing chromium outside CI) says so here.
    for line in output.lines().filter(|l| l.contains("# SKIP")) {
        eprintln!("clients/js: {}", line.trim());
    }
}
