//! The `palisade` binary as an operator uses it: init, token, serve, and
//! what happens when the config is wrong.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::process::Command;
use std::time::Duration;

use common::*;
use process::{Running, run};
use serde_json::json;

async fn connect_to(addr: std::net::SocketAddr, token: &str) -> (Ws, serde_json::Value) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let welcome = next_json(&mut ws).await;
    (ws, welcome)
}

#[test]
fn an_unknown_config_key_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[limits]\nmax_mesage_bytes = 10\n").unwrap();
    let out = run(dir.path(), &["serve", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_mesage_bytes"), "{stderr}");
}

#[test]
fn production_without_a_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.keys"));
}

#[test]
fn init_writes_a_private_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["init", "--output", "p.toml"]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    assert!(text.contains("[[auth.keys]]") && text.contains("secret = \""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("p.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(dir.path(), &["init", "--output", "p.toml"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(dir.path().join("p.toml")).unwrap(), text, "init must not overwrite");
}

#[tokio::test]
async fn a_token_from_the_cli_opens_a_socket_on_a_server_from_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    let out = run(
        dir.path(),
        &["token", "--config", "p.toml", "--sub", "alice", "--name", "Alice", "--roles", "a,b", "--ttl", "5m"],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "stdout is the token and nothing else");
    assert_eq!(token.split('.').count(), 3);

    let server = Running::start(dir.path(), &["serve", "--config", "p.toml", "--listen", "127.0.0.1:0"], &[]);
    let (mut ws, welcome) = connect_to(server.addr, token).await;
    assert_eq!(welcome["user"], json!({"id":"alice","name":"Alice","roles":["a","b"]}));
    let closing = tokio::spawn(async move { close_code(&mut ws).await });
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(closing.await.unwrap(), Some(1001));
}

#[tokio::test]
async fn no_arguments_means_the_dev_profile_with_a_persisted_key() {
    let dir = tempfile::tempdir().unwrap();
    // The listen override also proves PALISADE_* variables reach the config.
    let server = Running::start(dir.path(), &[], &[("PALISADE_SERVER__LISTEN", "127.0.0.1:0")]);
    assert!(dir.path().join("palisade-data/dev-secret").exists());
    let out = run(dir.path(), &["token", "--sub", "bob"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let (mut ws, welcome) = connect_to(server.addr, token.trim()).await;
    assert_eq!(welcome["user"]["id"], "bob");
    // The dev lobby is open to every authenticated user.
    send_json(&mut ws, json!({"type":"join","id":"1","room":"lobby"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "ack");
    send_json(&mut ws, json!({"type":"send","id":"2","room":"lobby","event":"chat.message","data":{"content":"hi"}}))
        .await;
    let mut types = vec![next_json(&mut ws).await["type"].clone(), next_json(&mut ws).await["type"].clone()];
    types.sort_by_key(ToString::to_string);
    assert_eq!(types, [json!("ack"), json!("event")]);
    assert!(tokio::task::spawn_blocking(move || server.terminate()).await.unwrap().success());
}

#[tokio::test]
async fn bare_palisade_reads_palisade_config_and_serve_flags() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    let out = run(dir.path(), &["token", "--config", "p.toml", "--sub", "carol"]);
    let token = String::from_utf8(out.stdout).unwrap();
    let server = Running::start(dir.path(), &["--listen", "127.0.0.1:0"], &[("PALISADE_CONFIG", "p.toml")]);
    // The configured key is used (no dev key is generated).
    assert!(!dir.path().join("palisade-data/dev-secret").exists());
    let (_ws, welcome) = connect_to(server.addr, token.trim()).await;
    assert_eq!(welcome["user"]["id"], "carol");
    assert!(tokio::task::spawn_blocking(move || server.terminate()).await.unwrap().success());
}

/// The HTTP status a browser page on `origin` gets when it opens a socket.
async fn status_from_origin(addr: std::net::SocketAddr, token: &str, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

#[tokio::test]
async fn a_config_file_without_a_subcommand_runs_in_production_not_the_dev_profile() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "prod.toml"]).status.success());
    let token = String::from_utf8(run(dir.path(), &["token", "--config", "prod.toml", "--sub", "al"]).stdout).unwrap();
    let localhost = "http://localhost:3000";

    // The dev profile, asked for, lets a localhost page in…
    let dev = Running::start(dir.path(), &["serve", "--dev", "--config", "prod.toml", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(status_from_origin(dev.addr, token.trim(), localhost).await, 101);
    assert!(tokio::task::spawn_blocking(move || dev.terminate()).await.unwrap().success());

    // …the config named by flag or by PALISADE_CONFIG, without `serve`, does not.
    for (args, env) in [
        (&["--config", "prod.toml", "--listen", "127.0.0.1:0"][..], &[][..]),
        (&["--listen", "127.0.0.1:0"][..], &[("PALISADE_CONFIG", "prod.toml")][..]),
    ] {
        let server = Running::start(dir.path(), args, env);
        assert_eq!(server.token_command, None, "{args:?} {env:?}: the dev banner was printed");
        assert_eq!(status_from_origin(server.addr, token.trim(), localhost).await, 403, "{args:?} {env:?}");
        assert!(tokio::task::spawn_blocking(move || server.terminate()).await.unwrap().success());
    }

    // A config with no key makes production refuse to start, where the dev
    // profile would have generated a key.
    std::fs::write(dir.path().join("keyless.toml"), "[limits]\nmax_connections = 5\n").unwrap();
    let out = run(dir.path(), &["--config", "keyless.toml", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.keys"));
    assert!(!dir.path().join("palisade-data/dev-secret").exists());
}

#[test]
fn init_force_over_a_world_readable_file_leaves_it_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "# an old config\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(dir.path(), &["init", "--force", "--output", "p.toml"]);
        assert!(out.status.success(), "{out:?}");
        assert!(std::fs::read_to_string(&path).unwrap().contains("secret = \""));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    }
}

#[test]
fn the_cli_refuses_to_mint_an_identity_the_server_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["token", "--sub", "<b>x</b>"][..], &["token", "--sub", "al", "--name", "a\u{202E}b"][..]] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "no token printed");
        assert!(String::from_utf8_lossy(&out.stderr).contains("PROTOCOL.md"), "{out:?}");
    }
}

#[tokio::test]
async fn the_dev_banner_prints_a_token_command_that_works() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dev.toml"), "[limits]\nmax_connections = 5\n").unwrap();
    let server = Running::start(
        dir.path(),
        &["serve", "--dev", "--config", "dev.toml", "--data", "d", "--listen", "127.0.0.1:0"],
        &[],
    );
    let command = server.token_command.clone().expect("banner names a token command");
    let args: Vec<&str> = command.split_whitespace().skip_while(|w| *w != "token").collect();
    assert_eq!(args[..3], ["token", "--dev", "--config"], "{command}");
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{command}: {out:?}");
    let (_ws, welcome) = connect_to(server.addr, String::from_utf8(out.stdout).unwrap().trim()).await;
    assert_eq!(welcome["user"]["id"], "alice");
    assert!(tokio::task::spawn_blocking(move || server.terminate()).await.unwrap().success());
}

#[tokio::test]
async fn sighup_reloads_the_policy_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    let token = String::from_utf8(run(dir.path(), &["token", "--config", "p.toml", "--sub", "al"]).stdout).unwrap();
    let server = Running::start(dir.path(), &["serve", "--config", "p.toml", "--listen", "127.0.0.1:0"], &[]);
    let (mut ws, _) = connect_to(server.addr, token.trim()).await;
    join(&mut ws, "lobby").await;
    let frame = |id: u32| json!({"type":"send","id":id.to_string(),"room":"lobby","event":"poll.vote","data":{}});
    assert_eq!(request(&mut ws, frame(0)).await["code"], "unknown_event");

    let path = dir.path().join("p.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[events.\"poll.vote\"]\n");
    std::fs::write(&path, text).unwrap();
    Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
    // The signal is handled asynchronously: poll, bounded.
    let mut accepted = false;
    for id in 1..=50 {
        if request(&mut ws, frame(id)).await["type"] == "ack" {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "the reloaded event was never accepted");
    assert!(tokio::task::spawn_blocking(move || server.terminate()).await.unwrap().success());
}

#[test]
fn policy_check_prints_the_effective_policy_or_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    let out = run(dir.path(), &["policy", "check", "p.toml"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "[events.\"chat.message\"]",
        "[events.\"quiz.answer\"]",
        "[rooms.\"course:*\"]",
        "[roles.teacher]",
        // What a message costs its sender, and the replay limits.
        "[abuse]",
        "connection_rate = ",
        "[abuse.weights]",
        "max_nonces = ",
        "max_nonces_per_user = ",
    ] {
        assert!(stdout.contains(expected), "{expected} missing from:\n{stdout}");
    }
    // The printed policy is itself valid config.
    std::fs::write(dir.path().join("effective.toml"), &stdout).unwrap();
    assert!(run(dir.path(), &["policy", "check", "effective.toml"]).status.success());

    std::fs::write(dir.path().join("bad.toml"), "[events.\"x\"]\nschema = \"{not json\"\n").unwrap();
    let out = run(dir.path(), &["policy", "check", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events.\"x\".schema"), "{stderr}");

    std::fs::write(
        dir.path().join("ref.toml"),
        "[events.\"x\"]\nschema = '{\"$ref\":\"https://127.0.0.1:9/s.json\"}'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["policy", "check", "ref.toml"]);
    assert_eq!(out.status.code(), Some(2), "a remote $ref must not compile");
}

#[test]
fn config_explain_names_each_weakening_setting_and_strict_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init", "--output", "p.toml"]).status.success());
    let clean = run(dir.path(), &["config", "explain", "--config", "p.toml", "--strict"]);
    assert!(clean.status.success(), "{clean:?}");
    assert_eq!(String::from_utf8(clean.stdout).unwrap(), "no setting weakens security\n");

    let weak = "[server]\nallow_plaintext = true\n[auth]\nallow_query_token = true\n[abuse]\ndry_run = true\n";
    std::fs::write(dir.path().join("weak.toml"), weak).unwrap();
    let listed = run(dir.path(), &["config", "explain", "--config", "weak.toml"]);
    assert!(listed.status.success());
    let lines: Vec<String> = String::from_utf8(listed.stdout).unwrap().lines().map(str::to_owned).collect();
    let keys: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["server.allow_plaintext", "auth.allow_query_token", "abuse.dry_run"], "{lines:?}");
    // The environment counts: it is part of the effective config.
    let strict = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["config", "explain", "--config", "p.toml", "--strict"])
        .env("PALISADE_AUTH__ALLOW_QUERY_TOKEN", "true")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("auth.allow_query_token"), "{strict:?}");
}
