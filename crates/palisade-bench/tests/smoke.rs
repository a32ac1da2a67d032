//! Every scenario, briefly, against a real Palisade on an ephemeral port:
//! proves the generator works and its reports are well formed. No timing
//! is asserted; the numbers only have to exist and be plausible.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_bench::report::Report;
use palisade_bench::scenario::{connect, echo, fanout, idle, mixed};
use palisade_bench::target::Target;
use palisade_server::config::{Config, Source};
use palisade_server::server::Server;
use palisade_server::settings::{Profile, Settings};

struct Running {
    target: Target,
    stop: tokio::sync::oneshot::Sender<()>,
    dir: tempfile::TempDir,
}

const BENCH_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/palisade.toml");

async fn start() -> Running {
    start_with(Path::new(BENCH_CONFIG), 2).await
}

/// The bench config with the shipped abuse guard instead of its own
/// (which switches the guard off), but with one-second bans, as
/// scripts/soak.sh runs it with short ones.
async fn start_guarded() -> Running {
    let text = std::fs::read_to_string(BENCH_CONFIG).unwrap();
    let (head, tail) = text.split_once("\n[abuse]\n").unwrap();
    let rest = &tail[tail.find("\n[").unwrap()..];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guarded.toml");
    std::fs::write(&path, format!("{head}\n{rest}\n[abuse]\nban_first = \"1s\"\nban_max = \"1s\"\n")).unwrap();
    let running = start_with(&path, 64).await;
    // The server has read its config (it rereads it only on SIGHUP).
    drop(dir);
    running
}

async fn start_with(config_path: &Path, sources: u8) -> Running {
    let config = Config::load(Source::File(config_path), &std::collections::BTreeMap::new()).unwrap();
    launch(config, tempfile::tempdir().unwrap(), sources).await
}

/// Serves `config` with its data in `dir`: wss:// when it has a
/// certificate (the target then still has to be told to trust it).
async fn launch(mut config: Config, dir: tempfile::TempDir, sources: u8) -> Running {
    config.server.data_dir = dir.path().join("data");
    let scheme = if config.server.tls.cert.is_empty() { "ws" } else { "wss" };
    let settings = Settings::new(config, Profile::Dev).unwrap();
    // Boxed: binding is a large future, and every test awaits this one.
    let server = Box::pin(Server::bind(settings)).await.unwrap();
    let url = format!("{scheme}://{}/ws", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let secret = std::fs::read_to_string(dir.path().join("data/dev-secret")).unwrap();
    let target = Target::new(&url, secret.trim_end(), None, sources).unwrap();
    Running { target, stop, dir }
}

fn positive(report: &Report, value: &str) -> f64 {
    let v = *report.values.get(value).unwrap_or_else(|| panic!("{}: no `{value}` in {report:?}", report.scenario));
    assert!(v > 0.0, "{}: `{value}` is {v}", report.scenario);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_reports() {
    let server = start().await;
    let t = &server.target;
    let secs = Duration::from_secs;

    let r = connect::run(t, connect::Params { total: 20, concurrency: 4, duration: secs(20) }).await.unwrap();
    assert_eq!(positive(&r, "handshakes"), 20.0);
    assert_eq!(r.latency["handshake"].count, 20);

    let p = idle::Params {
        connections: 30,
        concurrency: 8,
        hold: Duration::ZERO,
        server_pid: Some(std::process::id()),
        rooms: 0,
    };
    let r = idle::run(t, p).await.unwrap();
    assert_eq!(positive(&r, "opened"), 30.0);
    positive(&r, "server_rss_after_kib");

    let r = echo::run(t, echo::Params { connections: 4, duration: Duration::from_millis(500) }).await.unwrap();
    positive(&r, "acks_per_sec");
    assert_eq!(r.values["errors"], 0.0);

    let p = fanout::Params {
        subscribers: 5,
        publishers: 1,
        rate: 20,
        duration: Duration::from_millis(600),
        subscribers_on: Vec::new(),
    };
    let r = fanout::run(t, p).await.unwrap();
    positive(&r, "delivered_per_sec");
    assert!(r.values["delivery_ratio"] > 0.5, "{r:?}");

    let p = mixed::Params { honest: 4, rate: 20, hostile: 8, hostile_rate: 10, duration: Duration::from_millis(800) };
    let r = mixed::run(t, p).await.unwrap();
    positive(&r, "honest_delivered_per_sec");
    positive(&r, "hostile_attacks");
    positive(&r, "hostile_refused");
    // With the guard off, nothing refuses a storm.
    positive(&r, "storm_accepted");

    let _ = server.stop.send(());
}

/// Against the shipped guard (with one-second bans): the reconnect storm
/// is refused with 429, then banned (403); the ban cycler is banned, waits
/// its ban out, and is banned again; the honest clients, on other
/// addresses, keep chatting throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_storms_and_cycles_bans_against_the_guard() {
    let server = start_guarded().await;
    let p = mixed::Params { honest: 4, rate: 5, hostile: 8, hostile_rate: 10, duration: Duration::from_secs(6) };
    let r = mixed::run(&server.target, p).await.unwrap();
    positive(&r, "honest_delivered_per_sec");
    positive(&r, "storm_accepted");
    positive(&r, "refused_storm_http_429");
    positive(&r, "refused_storm_http_403");
    assert!(r.values["bans_provoked"] >= 2.0, "the ban cycler came back and was banned again: {r:?}");
    assert!(r.latency.get("ban_length").is_some_and(|s| s.count >= 1), "a ban was waited out: {r:?}");
    positive(&r, "refused_forged_token_http_401");
    // The honest messages reached the honest clients: no ban fell on
    // their addresses (a banned one is closed at once, 4003).
    let published = positive(&r, "honest_published");
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let received = r.latency["honest_publish_to_receive"].count as f64;
    assert!(received >= 0.9 * published * 4.0, "{received} of {} delivered: {r:?}", published * 4.0);
    let _ = server.stop.send(());
}

/// A self-signed certificate for 127.0.0.1 in `dir`: the paths of the
/// certificate (what a client trusts) and of its key.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.cert.pem")), dir.join(format!("{name}.key.pem")));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// `idle` over wss://, trusting the server's own certificate only; a
/// target that trusts another certificate opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_runs_over_wss_trusting_the_servers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let mut config = Config::load(Source::File(Path::new(BENCH_CONFIG)), &std::collections::BTreeMap::new()).unwrap();
    config.server.tls.cert = cert.display().to_string();
    config.server.tls.key = key.display().to_string();
    let server = launch(config, dir, 2).await;
    assert!(server.target.url.starts_with("wss://"), "{}", server.target.url);
    let p = |connections| idle::Params {
        connections,
        concurrency: 4,
        hold: Duration::ZERO,
        server_pid: Some(std::process::id()),
        rooms: 2,
    };

    let trusting = server.target.clone().trusting(&cert).unwrap();
    let r = idle::run(&trusting, p(10)).await.unwrap();
    assert_eq!(positive(&r, "opened"), 10.0, "{r:?}");
    assert_eq!(r.values["failed"], 0.0, "{r:?}");
    positive(&r, "server_rss_after_kib");

    let (other, _) = certificate(server.dir.path(), "other");
    let stranger = server.target.clone().trusting(&other).unwrap();
    let r = idle::run(&stranger, p(3)).await.unwrap();
    assert_eq!(r.values["opened"], 0.0, "{r:?}");
    assert_eq!(r.values["failed"], 3.0, "{r:?}");
    let _ = server.stop.send(());
}

#[test]
fn the_bench_config_runs_the_shipped_chat_message_without_its_rate() {
    let read = |path: &str| -> toml::Table {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
        toml::from_str(&text).unwrap()
    };
    let chat = |t: &toml::Table| t["events"]["chat.message"].as_table().unwrap().clone();
    let mut shipped = chat(&read("../palisade-server/src/config/palisade.toml"));
    assert!(shipped.remove("rate").is_some(), "the template's chat.message has a rate");
    assert_eq!(chat(&read("../../bench/palisade.toml")), shipped);
}

#[tokio::test]
async fn the_binary_writes_a_json_report_and_refuses_remote_targets() {
    let server = start().await;
    let secret_file: PathBuf = server.dir.path().join("data/dev-secret");
    let json = server.dir.path().join("echo.json");
    let bin = env!("CARGO_BIN_EXE_palisade-bench");
    let out = tokio::process::Command::new(bin)
        .args(["--url", &server.target.url, "--secret-file"])
        .arg(&secret_file)
        .arg("--json")
        .arg(&json)
        .args(["echo", "--connections", "2", "--seconds", "1"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acks_per_sec"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["scenario"], "echo");
    assert!(report["values"]["acks_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["latency"]["send_to_ack"]["p99_us"].as_u64().is_some());

    let out = tokio::process::Command::new(bin).args(["--url", "ws://10.1.2.3:80/ws", "echo"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = tokio::process::Command::new(bin).args(["--url", "wss://127.0.0.1:1/ws", "echo"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --ca"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = server.stop.send(());
}
