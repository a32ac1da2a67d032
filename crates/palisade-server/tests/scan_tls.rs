//! `palisade scan`'s tls check against Palisade's TLS listener (the real
//! binary, a certificate the test makes for `localhost`): over
//! `wss://localhost` with the certificate trusted (`--ca-cert`), nothing is
//! found (TLS 1.0 and 1.1 refused, HSTS sent, plain text on the port
//! answered 426) and the WebSocket probes run over TLS; over
//! `wss://127.0.0.1`, a name the certificate does not hold, the
//! certificate is reported and the exit code is 1. On 8443, TLS only,
//! nothing is found on its plain twin 8080.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use process::{Running, run};
use serde_json::Value;

/// `palisade ARGS` in `dir`, off the runtime's threads: the JSON report and
/// the exit code.
async fn scan(dir: &std::path::Path, args: Vec<String>) -> (Value, Option<i32>) {
    let dir = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || run(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (report, out.status.code())
}

fn ids(report: &Value) -> Vec<&str> {
    report["findings"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect()
}

#[tokio::test]
async fn palisade_over_tls_passes_the_tls_check_and_a_name_its_certificate_lacks_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::tls::pair(dir, "c");
    let config = "[server]\ndata_dir = \"data\"\n[server.tls]\ncert = \"c.cert.pem\"\nkey = \"c.key.pem\"\n";
    std::fs::write(dir.join("p.toml"), config).unwrap();
    let server = Running::start(dir, &["serve", "--dev", "--config", "p.toml", "--listen", "127.0.0.1:0"], &[]);
    let token = run(dir, &["token", "--dev", "--config", "p.toml", "--sub", "scanner"]);
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let port = server.addr.port();

    let target = format!("wss://localhost:{port}/ws");
    let args = ["scan", &target, "--ca-cert", "c.cert.pem", "--token", &token, "--checks", "tls,origin"];
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--origin", "http://localhost:5173", "--format", "json"].map(str::to_owned));
    let (report, code) = scan(dir, args).await;
    assert_eq!(code, Some(0), "{report}");
    // The origin probes ran over TLS: the dev profile's port rule is found.
    assert_eq!(ids(&report), ["origin.absent-accepted", "origin.port-changed-accepted"], "{report}");
    // A free port has no plain twin to look for (the 8443 test below has).
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["skipped"][0]["check"], "tls.plaintext-port-accepted", "{report}");

    let target = format!("wss://127.0.0.1:{port}/ws");
    let args = ["scan", &target, "--ca-cert", "c.cert.pem", "--checks", "tls", "--format", "json"];
    let (report, code) = scan(dir, args.iter().map(|a| (*a).to_owned()).collect()).await;
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(ids(&report), ["tls.certificate-invalid"], "{report}");
    let evidence = report["findings"][0]["evidence"].as_str().unwrap();
    assert!(evidence.contains("127.0.0.1"), "{evidence}");
    drop(server);
}

/// A loopback address of the test's own, 127.x.y.z: the test needs fixed
/// ports (8443 and its plain twin 8080) that nothing else on the machine
/// holds there.
fn own_loopback() -> Ipv4Addr {
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let [a, b, c, _] = (clock ^ std::process::id()).to_be_bytes();
    Ipv4Addr::new(127, 100 + a % 100, b, 2 + c % 250)
}

#[tokio::test]
async fn palisade_on_8443_without_a_plain_listener_beside_it_has_nothing_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let host = own_loopback().to_string();
    let made = rcgen::generate_simple_self_signed(vec![host.clone()]).unwrap();
    std::fs::write(dir.join("c.cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("c.key.pem"), made.signing_key.serialize_pem()).unwrap();
    let config = "[server]\ndata_dir = \"data\"\n[server.tls]\ncert = \"c.cert.pem\"\nkey = \"c.key.pem\"\n";
    std::fs::write(dir.join("p.toml"), config).unwrap();
    let listen = format!("{host}:8443");
    let server = Running::start(dir, &["serve", "--dev", "--config", "p.toml", "--listen", &listen], &[]);
    let target = format!("wss://{host}:8443/ws");
    let args = ["scan", &target, "--ca-cert", "c.cert.pem", "--checks", "tls", "--format", "json"];
    let (report, code) = scan(dir, args.iter().map(|a| (*a).to_owned()).collect()).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(ids(&report), Vec::<&str>::new(), "{report}");
    // The twin was tried (not skipped): nothing listens on 8080 there.
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    drop(server);
}
