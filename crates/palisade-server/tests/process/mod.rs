//! The real `palisade` binary as a child process, for tests that need the
//! process itself (its command line, signals, `kill -9`).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::common::WAIT;

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Runs `palisade ARGS` in `dir` to completion.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(dir).env_remove("PALISADE_CONFIG").output().unwrap()
}

/// A running `palisade` process and the address it printed.
pub struct Running {
    child: Child,
    pub addr: std::net::SocketAddr,
    /// The `get a token:` command from the dev banner, if printed.
    pub token_command: Option<String>,
    /// Every line printed after the address, until it fell quiet.
    pub banner: Vec<String>,
    /// The rest of stderr, line by line.
    lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("PALISADE_CONFIG")
            // Any free port, so servers started side by side do not all
            // want the default admin port; a test may still override it.
            .env("PALISADE_ADMIN__LISTEN", "127.0.0.1:0")
            // Plain ws on loopback, as every test but the TLS ones speaks;
            // production would otherwise refuse to start without TLS.
            .env("PALISADE_SERVER__ALLOW_PLAINTEXT", "true")
            .envs(env.iter().copied())
            .current_dir(dir)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx.recv_timeout(WAIT).expect("server prints its address");
            let rest = line.split("listening on ").nth(1);
            if let Some(rest) = rest.and_then(|r| r.strip_prefix("ws://").or_else(|| r.strip_prefix("wss://"))) {
                break rest.split("/ws").next().unwrap().parse().unwrap();
            }
        };
        let mut token_command = None;
        let mut banner = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            if let Some(cmd) = line.split("get a token:").nth(1) {
                token_command = Some(cmd.trim().to_owned());
            }
            banner.push(line);
        }
        Self { child, addr, token_command, banner, lines: rx }
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("server did not exit after SIGTERM");
    }
}

impl Drop for Running {
    /// A test that fails half-way must not leave its server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    /// The next stderr line that `wanted` accepts, waiting up to `WAIT`.
    pub fn line(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown, no flush, nothing.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A dev server in `dir` whose data is in `data/` and whose audit writer
/// signs a checkpoint after every record into `checkpoints.log`, with
/// `extra` TOML after that; `start` again to restart it on the same data.
pub fn start_audited(dir: &Path, extra: &str) -> Running {
    let config = format!(
        "[server]\ndata_dir = \"data\"\n[audit]\ncheckpoint_file = \"checkpoints.log\"\ncheckpoint_every = 1\n{extra}"
    );
    std::fs::write(dir.join("p.toml"), config).unwrap();
    Running::start(dir, &SERVE_AUDITED, &[])
}

/// The command line [`start_audited`] runs.
pub const SERVE_AUDITED: [&str; 6] = ["serve", "--dev", "--config", "p.toml", "--listen", "127.0.0.1:0"];

/// `palisade audit verify --data data ARGS` in `dir`: whether it passed,
/// and what it printed (stdout, then stderr).
pub fn audit_verify(dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["audit", "verify", "--data", "data"];
    args.extend_from_slice(extra);
    let out = run(dir, &args);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
