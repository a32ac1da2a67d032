//! A document looser than the server: schemathesis (`--checks all`) found
//! request shapes the OpenAPI document allowed and the admin API rightly
//! refused (empty strings, "exactly one of" rules, unbounded numbers). Here
//! schemathesis runs against a real admin listener with the document the
//! listener serves: every request the document allows must be accepted,
//! every one it forbids refused, every answer documented, never a 5xx.
//!
//! The guard is in dry run, so the fuzzer's failed credentials and its rate
//! do not ban it; the bans and revocations it makes stay in this test's own
//! server and data directory. It talks to loopback only.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::auth::{ADMIN_KEY, Call, call_at};
use common::log::Captured;
use common::*;
use serde_json::Value;

/// The program scripts/test.sh installs (pip, pinned there).
const SCHEMATHESIS: &str = "schemathesis";
/// Cases per operation and phase: about a minute on a loaded 2-core machine.
const MAX_EXAMPLES: &str = "25";
/// Longest the whole run may take before the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(420);

/// Which rooms, events and payloads `POST /api/publish` accepts is the
/// policy's, a config file's, not the document's: there a well-formed
/// request may be refused with 400 (the document says so). Every other
/// operation keeps schemathesis's defaults.
const CONFIG: &str = r#"
[[operations]]
include-operation-id = "publish"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "429"]
"#;

fn installed() -> bool {
    Command::new(SCHEMATHESIS).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Runs schemathesis against the admin listener at `admin` in `dir`; its
/// success and its output. Killed at [`RUN_DEADLINE`].
fn schemathesis(dir: &Path, admin: std::net::SocketAddr) -> (bool, String) {
    std::fs::write(dir.join("schemathesis.toml"), CONFIG).unwrap();
    let output = dir.join("schemathesis.out");
    let base = format!("http://{admin}");
    let mut command = Command::new(SCHEMATHESIS);
    command
        .args(["--no-color", "--config-file", "schemathesis.toml", "run"])
        .arg(format!("{base}/api/openapi.json"))
        .args(["--url", &base, "--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "30", "--header", &format!("Authorization: Bearer {ADMIN_KEY}")])
        // Hypothesis keeps its database in the working directory: the
        // test's own, not the repository.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::from(std::fs::File::create(dir.join("schemathesis.err")).unwrap()));
    // Loopback only: no proxy may carry a request elsewhere.
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(proxy);
    }
    command.env("NO_PROXY", "*").env("no_proxy", "*");
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = std::fs::read_to_string(&output).unwrap_or_default();
    text.push_str(&std::fs::read_to_string(dir.join("schemathesis.err")).unwrap_or_default());
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("{text}\nkilled after {RUN_DEADLINE:?}")),
    }
}

#[tokio::test]
async fn schemathesis_finds_no_request_the_document_and_the_admin_api_disagree_on() {
    if !installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "schemathesis is missing under CI (scripts/test.sh installs it)"
        );
        eprintln!(
            "SKIPPED schemathesis_finds_no_request_the_document_and_the_admin_api_disagree_on: the schemathesis \
             command is not installed (scripts/test.sh installs it with pip)"
        );
        return;
    }
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start(&format!("[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n[abuse]\ndry_run = true\n")).await;
    let admin = server.admin.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let (passed, output) = tokio::task::spawn_blocking(move || schemathesis(&path, admin)).await.unwrap();
    assert!(passed, "schemathesis found failures:\n{output}");
    assert!(output.contains(" passed"), "schemathesis ran cases: {output}");

    // What the server recorded: the fuzzer's actions were audited, nothing
    // failed inside, and it still serves.
    let actions = common::auth::audited(admin, "admin_action", 1).await;
    assert!(!actions.is_empty(), "the fuzzer's actions are audited");
    let text = log.text();
    assert!(!text.contains("admin API request failed"), "no internal error: {text}");
    assert!(!text.contains("panicked"), "{text}");
    let stats = call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/stats") }).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
}

/// The audit kinds `GET /api/audit?kind=` accepts are exactly the ones the
/// document lists (a new kind must be added to the document).
#[test]
fn the_documents_audit_kinds_are_the_servers() {
    let doc: Value = serde_json::from_str(include_str!("../src/admin/openapi.json")).unwrap();
    let parameters = doc["paths"]["/api/audit"]["get"]["parameters"].as_array().unwrap();
    let kind = parameters.iter().find(|p| p["name"] == "kind").unwrap();
    let documented: Vec<&str> =
        kind["schema"]["enum"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    let served: Vec<&str> = palisade_core::audit::Kind::names().collect();
    assert_eq!(documented, served);
}
