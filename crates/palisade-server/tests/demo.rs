//! The demo application (docs/OPERATIONS.md, "Demo"): served at `/demo/`
//! on the public listener of a `--dev` server only, under its own strict
//! policy, with the JavaScript client's build beside it; and, in Debian's
//! chromium driven by playwright-core (`tests/demo/run.mjs`), used by two
//! demo users who chat, answer the quiz and upload a file name, while the
//! attack panel fires each attack of the seeds and shows the server's
//! refusal, and the dev user `admin` finds each in the dashboard's security
//! events (the audit log, which the test reads through the API too).
//!
//! Without `node`, `/usr/bin/chromium` or playwright-core the browser test
//! fails under CI=true and reports itself skipped elsewhere. With
//! `DEMO_SCREENSHOTS` set to a folder, the script saves demo.png there.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside #[test] functions panic on setup failures by design.

mod common;
mod process;

use std::path::Path;
use std::time::Duration;

use common::auth::{ADMIN_KEY, audited};
use common::browser::{can_run, run_script};
use common::{TestServer, http_get};
use process::Running;

/// Longest the browser script may run; its own steps time out sooner.
const DEADLINE: Duration = Duration::from_secs(240);

/// A `palisade serve --dev` in `dir`, its data in `data/` (where the demo
/// users' passwords are written), its admin listener at `admin`.
fn dev_server(dir: &Path, admin: std::net::SocketAddr) -> Running {
    let config = format!("[server]\ndata_dir = \"data\"\n[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n");
    std::fs::write(dir.join("p.toml"), config).unwrap();
    let admin = admin.to_string();
    let args = ["serve", "--dev", "--config", "p.toml", "--listen", "127.0.0.1:0"];
    Running::start(dir, &args, &[("PALISADE_ADMIN__LISTEN", admin.as_str())])
}

/// A port free a moment ago, for the admin listener, whose address the
/// process does not print.
fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The seeded password of `user`, from `<data>/dev-passwords`.
fn password(dir: &Path, user: &str) -> String {
    let text = std::fs::read_to_string(dir.join("data/dev-passwords")).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{user} / "))).unwrap();
    line.split(" / ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_demo_is_served_in_dev_only_under_its_own_policy_with_the_client_build() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), free_port());
    let addr = server.addr;
    let page = http_get(addr, "/demo/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html; charset=utf-8"), "{page}");
    // http_get asks for host "x": the socket of that host is allowed.
    assert!(lower.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{page}");
    assert!(lower.contains("connect-src 'self' ws://x wss://x\r\n"), "{page}");
    assert!(!lower.contains("unsafe-") && !lower.contains("<script>") && !lower.contains("innerhtml"), "{page}");
    let client = http_get(addr, "/demo/palisade/client.js").await;
    let built = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/dist/client.js"));
    assert!(client.ends_with(&built.unwrap()), "the client's committed build, as it is");
    for file in ["app.js", "attacks.js", "raw.js", "dom.js", "foreign.js"] {
        let script = http_get(addr, &format!("/demo/{file}")).await;
        assert!(script.starts_with("HTTP/1.1 200") && !script.contains("innerHTML"), "{file}: {script}");
    }
    assert!(http_get(addr, "/demo/nope.js").await.starts_with("HTTP/1.1 404"));
    assert!(http_get(addr, "/demo/../ws").await.starts_with("HTTP/1.1 4"), "no way out of /demo/");
    let bare = http_get(addr, "/demo").await.to_ascii_lowercase();
    assert!(bare.starts_with("http/1.1 308") && bare.contains("location: /demo/"), "{bare}");

    // Production serves no demo.
    let production = TestServer::start("").await;
    assert!(http_get(production.addr, "/demo/").await.starts_with("HTTP/1.1 404"));
    assert!(http_get(production.addr, "/demo/palisade/index.js").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn two_demo_users_chat_and_every_attack_is_refused_in_chromium() {
    if !can_run("two_demo_users_chat_and_every_attack_is_refused_in_chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let server = dev_server(dir.path(), admin);
    let env = [
        ("DEMO_URL", format!("http://{}/demo/", server.addr)),
        ("ALICE_PASSWORD", password(dir.path(), "alice")),
        ("BOB_PASSWORD", password(dir.path(), "bob")),
        ("ADMIN_PASSWORD", password(dir.path(), "admin")),
        ("DASHBOARD_URL", format!("http://{admin}/ui/")),
    ];
    let (passed, output) =
        tokio::task::spawn_blocking(move || run_script("demo/run.mjs", &env, DEADLINE)).await.unwrap();
    assert!(passed, "the demo script failed:\n{output}");
    assert!(output.contains("demo: every step passed"), "{output}");

    // What the dashboard's security events show: each attack, recorded.
    for kind in ["schema", "oversize", "forbidden", "origin", "replay", "csrf", "rate_excess"] {
        let records = audited(admin, kind, 1).await;
        assert!(!records.is_empty(), "an audit record of kind {kind}");
    }
}
