//! Sockets for the checks: every connection goes through [`Budget`], which
//! paces probes and enforces the hard caps; handshakes and HTTP requests are
//! written by hand so a check controls every header it sends (a duplicate,
//! an `Origin: null`, no credential at all).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::ScanError;

// Hard caps: a scan is a guest on someone's server. They are constants, not
// options, so no flag makes a scan heavier than this (docs/SCAN.md, "Safe by
// default").
/// Connections one scan may open in all (40 of them are the connection
/// flood's, loopback only).
pub const MAX_CONNECTIONS: u32 = 128;
/// Bytes one scan may send in all (the oversize frame is most of it).
pub const MAX_BYTES_SENT: u64 = 4 * 1024 * 1024;
/// Least time between two connections: at most 5 probes a second.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Longest wait for a TCP connect and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for an answer to anything sent.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest response head read (the rest is not looked at).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest response body read.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest message the scanner reads back (an echoed oversize frame).
pub const MAX_READ_MESSAGE: usize = 4 * 1024 * 1024;
/// Most 429s waited out for one handshake.
const MAX_RETRIES: u32 = 3;
/// Longest `Retry-After` waited out.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15);
/// `Sec-WebSocket-Key`: any 16 bytes, base64 ("palisade-scan-12").
const WS_KEY: &str = "cGFsaXNhZGUtc2Nhbi0xMg==";

/// A byte stream to the target, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The scanned endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given.
    pub url: String,
    /// Host name or address.
    pub host: String,
    /// Port (80 or 443 when the URL has none).
    pub port: u16,
    /// `wss://`.
    pub tls: bool,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// Parses `ws[s]://host[:port]/path`.
    pub fn parse(url: &str) -> Result<Self, ScanError> {
        let parsed = url::Url::parse(url).map_err(|e| ScanError::Usage(format!("{url}: {e}")))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(ScanError::Usage(format!("{url}: scheme {other}, want ws:// or wss://"))),
        };
        let host = parsed.host_str().ok_or_else(|| ScanError::Usage(format!("{url}: no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
        let mut path = parsed.path().to_owned();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Self { url: url.to_owned(), host, port, tls, path })
    }

    /// Whether the host is this machine (floods are allowed only there
    /// without `--i-own-this-target`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `Host:` header value.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What came back to a request: the status line's code and the headers.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// HTTP status; 0 when the connection closed before one.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (HTTP requests only), at most 64 KiB.
    pub body: String,
}

impl Answer {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Paces connections and counts what a scan spends, against the caps.
#[derive(Debug)]
pub struct Budget {
    target: Target,
    connections: u32,
    bytes: u64,
    next: Instant,
    /// The local address connections come from, when the target is an
    /// IPv4 loopback address (see [`Budget::speak_from`]).
    source: Option<Ipv4Addr>,
    /// `--ca-cert`: roots trusted besides the Mozilla set.
    extra_roots: Vec<CertificateDer<'static>>,
}

impl Budget {
    /// A fresh budget for `target`.
    pub fn new(target: Target) -> Self {
        Self { target, connections: 0, bytes: 0, next: Instant::now(), source: None, extra_roots: Vec::new() }
    }

    /// Against an IPv4 loopback target, later connections come from
    /// `127.0.<family>.1`: each check family is its own client to the
    /// target's per-address limits, so one family's refusals do not get
    /// another's connections banned. Elsewhere (and where the address
    /// cannot be bound) connections come from wherever the system says.
    pub fn speak_from(&mut self, family: u8) {
        self.source = self.loopback_v4().map(|_| Ipv4Addr::new(127, 0, family, 1));
    }

    /// The client address set by [`Budget::speak_from`], if any.
    pub fn source(&self) -> Option<Ipv4Addr> {
        self.source
    }

    /// Puts back an address [`Budget::source`] returned.
    pub fn set_source(&mut self, source: Option<Ipv4Addr>) {
        self.source = source;
    }

    /// The target's address when it is an IPv4 loopback literal.
    fn loopback_v4(&self) -> Option<Ipv4Addr> {
        self.target.host.parse::<Ipv4Addr>().ok().filter(Ipv4Addr::is_loopback)
    }

    /// A TCP connection to the target's host on `port`, from
    /// [`Budget::speak_from`]'s address when one is set and can be bound.
    async fn connect_tcp(&self, port: u16) -> std::io::Result<TcpStream> {
        if let (Some(source), Some(ip)) = (self.source, self.loopback_v4()) {
            let socket = TcpSocket::new_v4()?;
            if socket.bind(SocketAddr::from((source, 0))).is_ok() {
                return socket.connect(SocketAddr::from((ip, port))).await;
            }
        }
        TcpStream::connect((self.target.host.as_str(), port)).await
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Counts `n` bytes about to be sent, refusing past [`MAX_BYTES_SENT`].
    pub fn spend(&mut self, n: usize) -> Result<(), ScanError> {
        self.bytes = self.bytes.saturating_add(n as u64);
        if self.bytes > MAX_BYTES_SENT {
            return Err(ScanError::Cap(format!("{MAX_BYTES_SENT} bytes sent")));
        }
        Ok(())
    }

    /// Also trusts `certs` (`--ca-cert`) for TLS, besides the usual roots.
    pub fn trust(&mut self, certs: Vec<CertificateDer<'static>>) {
        self.extra_roots = certs;
    }

    /// The roots a `wss://` target's certificate must chain to: the
    /// Mozilla set, and `--ca-cert`.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &self.extra_roots {
            // A certificate rustls cannot use as a root is simply not one.
            let _ = roots.add(cert.clone());
        }
        roots
    }

    /// A new TCP connection (no TLS), after the pause the probe rate wants.
    pub async fn dial_tcp(&mut self) -> Result<TcpStream, ScanError> {
        self.dial_tcp_port(self.target.port).await
    }

    /// [`Budget::dial_tcp`] to another port of the target's host (a plain
    /// listener beside a TLS one); [`ScanError::Connect`] when nothing
    /// answers there.
    pub async fn dial_tcp_port(&mut self, port: u16) -> Result<TcpStream, ScanError> {
        if self.connections >= MAX_CONNECTIONS {
            return Err(ScanError::Cap(format!("{MAX_CONNECTIONS} connections")));
        }
        sleep_until(self.next).await;
        self.next = Instant::now() + PROBE_INTERVAL;
        self.connections += 1;
        let host = &self.target.host;
        let unreachable = |e: String| ScanError::Connect(format!("{host}:{port}: {e}"));
        timeout(CONNECT_TIMEOUT, self.connect_tcp(port))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))
    }

    /// A new connection, TLS for a `wss://` target, after the pause the
    /// probe rate wants.
    pub async fn dial(&mut self) -> Result<Box<dyn Io>, ScanError> {
        let tcp = self.dial_tcp().await?;
        if !self.target.tls {
            return Ok(Box::new(tcp));
        }
        let config = ClientConfig::builder().with_root_certificates(self.roots()).with_no_client_auth();
        let tls = self.tls_over(tcp, config).await?;
        Ok(Box::new(tls))
    }

    /// A TLS handshake with `config` over `tcp`, to the target's name.
    pub async fn tls_over(
        &self,
        tcp: TcpStream,
        config: ClientConfig,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ScanError> {
        let t = &self.target;
        let unreachable = |e: String| ScanError::Connect(format!("{}:{}: {e}", t.host, t.port));
        let name = ServerName::try_from(t.host.clone()).map_err(|e| ScanError::Usage(format!("{}: {e}", t.host)))?;
        timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp))
            .await
            .map_err(|_| unreachable("TLS handshake timed out".into()))?
            .map_err(|e| unreachable(format!("TLS: {e}")))
    }

    /// Sends a WebSocket upgrade for `path` with `headers`; the stream and
    /// the answer, whatever its status. A 429 with a short `Retry-After` is
    /// waited out and retried (a few times at most): the target's rate limit
    /// is not what the probe asks about.
    pub async fn upgrade(
        &mut self,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<(Box<dyn Io>, Answer), ScanError> {
        let mut retries = 0;
        loop {
            let (io, answer) = self.upgrade_once(path, headers).await?;
            let wait = answer.header("retry-after").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
            match wait {
                Some(wait) if answer.status == 429 && retries < MAX_RETRIES && wait <= MAX_RETRY_AFTER => {
                    retries += 1;
                    drop(io);
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok((io, answer)),
            }
        }
    }

    /// The upgrade request for `path` with `headers`, as sent.
    pub fn upgrade_request(&self, path: &str, headers: &[(String, String)]) -> String {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\nUser-Agent: palisade-scan\r\n",
            self.target.authority()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request
    }

    /// One upgrade, whatever the answer (a 429 is not waited out): the
    /// floods' handshakes.
    pub async fn upgrade_once(
        &mut self,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<(Box<dyn Io>, Answer), ScanError> {
        let mut io = self.dial().await?;
        let request = self.upgrade_request(path, headers);
        self.spend(request.len())?;
        let answer = match timeout(READ_TIMEOUT, io.write_all(request.as_bytes())).await {
            Ok(Ok(())) => read_head(&mut io).await,
            _ => Answer::default(),
        };
        Ok((io, answer))
    }

    /// Opens a WebSocket with `headers`: the socket when the answer is
    /// 101, else the answer.
    pub async fn open(&mut self, path: &str, headers: &[(String, String)]) -> Result<Result<Ws, Answer>, ScanError> {
        let (io, answer) = self.upgrade(path, headers).await?;
        if answer.status != 101 {
            return Ok(Err(answer));
        }
        Ok(Ok(websocket(io).await))
    }

    /// A plain `GET path` with no credential: the answer with its body.
    pub async fn get(&mut self, path: &str) -> Result<Answer, ScanError> {
        let mut io = self.dial().await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: palisade-scan\r\nAccept: */*\r\n\r\n",
            self.target.authority()
        );
        self.spend(request.len())?;
        if !matches!(timeout(READ_TIMEOUT, io.write_all(request.as_bytes())).await, Ok(Ok(()))) {
            return Ok(Answer::default());
        }
        let mut answer = read_head(&mut io).await;
        let mut body = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + READ_TIMEOUT;
        while body.len() < MAX_BODY_BYTES {
            match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        body.truncate(MAX_BODY_BYTES);
        answer.body = String::from_utf8_lossy(&body).into_owned();
        Ok(answer)
    }
}

/// An open WebSocket (client side).
pub type Ws = WebSocketStream<Box<dyn Io>>;

/// `io`, after a 101, as a client WebSocket that reads messages up to
/// [`MAX_READ_MESSAGE`].
pub async fn websocket(io: Box<dyn Io>) -> Ws {
    let config =
        WebSocketConfig::default().max_message_size(Some(MAX_READ_MESSAGE)).max_frame_size(Some(MAX_READ_MESSAGE));
    WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await
}

/// Reads a response head byte by byte (nothing after it is consumed, so a
/// frame sent right after a 101 stays for the WebSocket), bounded in size
/// and time.
pub(crate) async fn read_head(io: &mut Box<dyn Io>) -> Answer {
    let mut head = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut byte = [0u8; 1];
    while head.len() < MAX_HEAD_BYTES && !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, io.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    parse_head(&String::from_utf8_lossy(&head))
}

fn parse_head(head: &str) -> Answer {
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_default_ports_and_query() {
        let t = Target::parse("wss://example.com/socket?x=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.port, t.tls, t.path.as_str()), (443, true, "/socket?x=1"));
        assert!(!t.is_loopback());
        let t = Target::parse("ws://[::1]:8080/ws").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert!(t.is_loopback());
        assert_eq!(t.authority(), "[::1]:8080");
        assert!(matches!(Target::parse("http://x/ws"), Err(ScanError::Usage(_))));
    }

    #[test]
    fn a_head_parses_status_and_lowercased_headers() {
        let a = parse_head("HTTP/1.1 403 Forbidden\r\nServer: nginx/1.2\r\n\r\n");
        assert_eq!(a.status, 403);
        assert_eq!(a.header("server"), Some("nginx/1.2"));
    }
}
