//! A real `redis-server` for the cluster's tests: its own process on a
//! free loopback port, keeping nothing on disk, killed when dropped. Never
//! the machine's shared server on 6379.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Ports this process handed to a server. A port is free when drawn and
/// released before its server binds it, so two tests drawing at once could
/// get the same one: the second server fails to bind, its test talks to the
/// first test's server, and loses it when that test ends.
static DRAWN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A running `redis-server`.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// TLS only, with this certificate and key (PEM files).
    tls: Option<(PathBuf, PathBuf)>,
}

impl RedisServer {
    /// Starts one, or `None` (with the reason printed) where
    /// `redis-server` is missing; under `CI=true` a missing server fails
    /// the test (`scripts/test.sh` installs it).
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// [`RedisServer::start`], speaking only TLS with `cert` and `key`.
    #[allow(dead_code, reason = "used by the integration tests (tests/common/redis.rs), not the unit tests")]
    pub(crate) fn start_tls(cert: PathBuf, key: PathBuf) -> Option<Self> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Option<Self> {
        let missing = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err();
        if missing {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "redis-server is missing under CI (scripts/test.sh)");
            eprintln!("skipped: redis-server is not installed (scripts/test.sh installs it)");
            return None;
        }
        let port = loop {
            let port =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
            if DRAWN.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
                break port;
            }
        };
        let mut server = Self { child: None, port, tls };
        server.start_again();
        Some(server)
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Kills it, as a crash would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, empty) on its port.
    pub(crate) fn start_again(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no", "--tls-cert-file"])
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert),
        };
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
