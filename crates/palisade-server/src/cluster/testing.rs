//! A real `redis-server` for the cluster's tests: its own process on a
//! free loopback port, keeping nothing on disk, killed when dropped. Never
//! the machine's shared server on 6379.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one, or `None` (with the reason printed) where
    /// `redis-server` is missing; under `CI=true` a missing server fails
    /// the test (`scripts/test.sh` installs it).
    pub(crate) fn start() -> Option<Self> {
        let missing = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err();
        if missing {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "redis-server is missing under CI (scripts/test.sh)");
            eprintln!("skipped: redis-server is not installed (scripts/test.sh installs it)");
            return None;
        }
        let port =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
