//! `login`: the own issuer's HTTP endpoints (docs/PROTOCOL.md §11).
//! `POST /auth/login` `total` times with one user's password, `concurrency`
//! at once, then `POST /auth/refresh` once with each refresh token the
//! logins returned. Logins and refreshes per second, and their latency
//! (TCP connect → request → whole answer read).
//!
//! Plain HTTP/1.1 over a fresh loopback connection per request, with
//! `Connection: close`: a browser's login is one request, and the
//! generator needs no HTTP client. Only a server with login sessions
//! (Palisade) answers these; the peers have no login.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::time::Instant;

use super::{ScenarioError, check_bounds, rate};
use crate::report::Report;
use crate::stats::Latency;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// The user to log in as (`palisade user add`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Logins in total (each starts a session on the server).
    pub total: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Upper bound on each phase (logins, then refreshes).
    pub duration: Duration,
}

/// Longest wait for one answer: a login waits at most 2 s for a turn at
/// hashing before the server answers 503, so this is only reached when
/// the server is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer read: a token pair is under 1 KiB.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Sent by every request, so the server's device fingerprint (and the
/// session's `user_agent`) is that of one plausible client.
const USER_AGENT: &str = "palisade-bench/login";

/// The part of a token pair the generator reads.
#[derive(Debug, Deserialize)]
struct Pair {
    refresh_token: Option<String>,
}

/// What one phase's workers measured.
#[derive(Default)]
struct Phase {
    latency: Latency,
    /// Refresh tokens received (logins only).
    tokens: Vec<String>,
    /// Failed requests by cause (`status_401`, `io`, `timeout`, …).
    errors: BTreeMap<String, u64>,
}

impl Phase {
    fn merge(&mut self, other: Phase) {
        self.latency.merge(&other.latency);
        self.tokens.extend(other.tokens);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn error(&mut self, cause: impl Into<String>) {
        *self.errors.entry(cause.into()).or_default() += 1;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.concurrency, p.duration)?;
    if p.user.is_empty() || p.password.is_empty() {
        return Err(ScenarioError::Bounds("login needs --user and a password".into()));
    }
    let login_body = serde_json::json!({"username": p.user, "password": p.password}).to_string();
    // The n-th login gets the n-th body: every login sends the same one.
    let (logins, login_secs) =
        phase(target, p.total, p.concurrency, p.duration, "/auth/login", Arc::new(move |_| login_body.clone())).await;

    let tokens = Arc::new(logins.tokens.clone());
    let refresh_body = {
        let tokens = Arc::clone(&tokens);
        Arc::new(move |n: usize| {
            serde_json::json!({"refresh_token": tokens.get(n).map_or("", String::as_str)}).to_string()
        })
    };
    let (refreshes, refresh_secs) =
        phase(target, tokens.len(), p.concurrency, p.duration, "/auth/refresh", refresh_body).await;

    let mut report = Report::new("login");
    report.param("total", p.total).param("concurrency", p.concurrency);
    report.value("logins_per_sec", rate(logins.latency.count(), login_secs));
    report.value("refreshes_per_sec", rate(refreshes.latency.count(), refresh_secs));
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    {
        report.value("logins", logins.latency.count() as f64);
        report.value("login_errors", logins.error_count() as f64);
        report.value("refreshes", refreshes.latency.count() as f64);
        report.value("refresh_errors", refreshes.error_count() as f64);
        for (cause, count) in &logins.errors {
            report.value(&format!("login_errors_{cause}"), *count as f64);
        }
        for (cause, count) in &refreshes.errors {
            report.value(&format!("refresh_errors_{cause}"), *count as f64);
        }
    }
    report.value("login_seconds", login_secs.as_secs_f64()).value("refresh_seconds", refresh_secs.as_secs_f64());
    report.latency("login", logins.latency.summary());
    report.latency("refresh", refreshes.latency.summary());
    Ok(report)
}

/// Sends `total` POSTs to `path` (the n-th with `body(n)`), `concurrency`
/// at once, until done or `duration` has passed; returns what the workers
/// measured and how long the phase took.
async fn phase(
    target: &Target,
    total: usize,
    concurrency: usize,
    duration: Duration,
    path: &'static str,
    body: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> (Phase, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let merged = Arc::new(Mutex::new(Phase::default()));
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (target, next, body, merged) =
                (target.clone(), Arc::clone(&next), Arc::clone(&body), Arc::clone(&merged));
            tokio::spawn(async move {
                let mut mine = Phase::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() >= deadline {
                        break;
                    }
                    let t0 = Instant::now();
                    match post(&target, n, path, &body(n)).await {
                        Ok((200, answer)) => match serde_json::from_slice::<Pair>(&answer) {
                            Ok(Pair { refresh_token: Some(token) }) => {
                                mine.latency.record(t0.elapsed());
                                mine.tokens.push(token);
                            }
                            _ => mine.error("bad_body"),
                        },
                        Ok((status, _)) => mine.error(format!("status_{status}")),
                        Err(cause) => mine.error(cause),
                    }
                }
                merged.lock().unwrap_or_else(PoisonError::into_inner).merge(mine);
            })
        })
        .collect();
    for w in workers {
        // A worker that panicked has merged nothing; its requests are
        // simply missing from the counts.
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    let phase = std::mem::take(&mut *merged.lock().unwrap_or_else(PoisonError::into_inner));
    (phase, elapsed)
}

/// One `POST path` with a JSON body on a new connection from the `n`th
/// source address; the status and the body. Errors are short causes for
/// the report (`io`, `timeout`, `bad_response`).
async fn post(target: &Target, n: usize, path: &str, body: &str) -> Result<(u16, Vec<u8>), &'static str> {
    let exchange = async {
        let socket = if target.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
        let socket = socket.map_err(|_| "io")?;
        if let Some(ip) = target.source(n) {
            socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(|_| "io")?;
        }
        let mut stream = socket.connect(target.addr).await.map_err(|_| "io")?;
        let origin = target.origin.as_deref().map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            target.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(|_| "io")?;
        let mut answer = Vec::with_capacity(1024);
        (&mut stream).take(MAX_RESPONSE_BYTES).read_to_end(&mut answer).await.map_err(|_| "io")?;
        parse_response(&answer).ok_or("bad_response")
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.unwrap_or(Err("timeout"))
}

/// The status and body of a whole HTTP/1.1 answer (`Content-Length` or
/// read to the close; chunked bodies are joined).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    Some((status, if chunked { unchunk(body)? } else { body.to_vec() }))
}

/// Joins a chunked body; `None` if it is malformed or cut short.
fn unchunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    // Each round consumes one chunk; the body is at most 64 KiB, so this
    // ends within that many rounds.
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::AsyncBufReadExt as _;
    use tokio::net::TcpListener;

    use super::*;

    /// A stand-in for the server's `/auth/*` that answers every request
    /// on its own connection: logins with the right password succeed
    /// except every fourth (503); refreshes of even tokens succeed, odd
    /// ones get a body that is not a token pair. Serves `requests` then
    /// stops.
    async fn fake_server(requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for n in 0..requests {
                let (stream, _) = listener.accept().await.unwrap();
                let mut stream = tokio::io::BufReader::new(stream);
                let (mut line, mut length) = (String::new(), 0);
                stream.read_line(&mut line).await.unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                loop {
                    line.clear();
                    stream.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                stream.read_exact(&mut body).await.unwrap();
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let answer = match path.as_str() {
                    "/auth/login" if n % 4 == 3 => (503, "{}".to_owned()),
                    "/auth/login" if body["password"] == "right" => {
                        (200, serde_json::json!({"refresh_token": format!("prt_{n}")}).to_string())
                    }
                    "/auth/refresh" => {
                        let token = body["refresh_token"].as_str().unwrap();
                        if token.trim_start_matches("prt_").parse::<usize>().unwrap() % 2 == 0 {
                            (200, r#"{"refresh_token":"prt_next"}"#.to_owned())
                        } else {
                            (200, "not json".to_owned())
                        }
                    }
                    _ => (401, r#"{"error":"invalid_credentials"}"#.to_owned()),
                };
                let reply =
                    format!("HTTP/1.1 {} X\r\ncontent-length: {}\r\n\r\n{}", answer.0, answer.1.len(), answer.1);
                stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        });
        url
    }

    fn params(password: &str) -> Params {
        Params {
            user: "bench".into(),
            password: password.into(),
            total: 8,
            concurrency: 1,
            duration: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn logins_then_one_refresh_per_token_with_errors_counted() {
        // 8 logins (2 answered 503), then 6 refreshes.
        let target = Target::new(&fake_server(14).await, "", None, 2).unwrap();
        let r = run(&target, params("right")).await.unwrap();
        assert_eq!(r.values["logins"], 6.0);
        assert_eq!(r.values["login_errors"], 2.0);
        assert_eq!(r.values["login_errors_status_503"], 2.0);
        // Tokens prt_0, 1, 2, 4, 5, 6: four even ones refresh.
        assert_eq!(r.values["refreshes"], 4.0);
        assert_eq!(r.values["refresh_errors_bad_body"], 2.0);
        assert_eq!(r.latency["login"].count, 6);
        assert_eq!(r.latency["refresh"].count, 4);
        assert!(r.values["logins_per_sec"] > 0.0);
    }

    #[tokio::test]
    async fn refused_logins_are_errors_and_nothing_is_refreshed() {
        let target = Target::new(&fake_server(8).await, "", None, 2).unwrap();
        let r = run(&target, params("wrong")).await.unwrap();
        assert_eq!(r.values["logins"], 0.0);
        assert_eq!(r.values["login_errors_status_401"], 6.0);
        assert_eq!(r.values["refreshes"], 0.0);
    }

    #[tokio::test]
    async fn a_server_that_is_gone_is_an_error_not_a_panic() {
        // Nothing listens here once the listener is dropped.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let target = Target::new(&format!("ws://{addr}/ws"), "", None, 1).unwrap();
        let r = run(&target, params("right")).await.unwrap();
        assert_eq!(r.values["login_errors_io"], 8.0);
    }

    #[test]
    fn answers_are_parsed_with_either_framing() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, b"{}".to_vec())));
        let chunked = b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((401, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse_response(b"garbage\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"), None);
    }
}
