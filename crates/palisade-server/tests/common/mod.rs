//! A real server on an ephemeral port and a real WebSocket client.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use palisade_server::config::{Config, Source};
use palisade_server::server::Server;
use palisade_server::settings::{Profile, Settings};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod auth;
pub mod browser;
pub mod child;
pub mod cluster;
pub mod log;
pub mod owners;
/// The cluster tests' own `redis-server`: the crate's unit tests use the
/// same file.
#[path = "../../src/cluster/testing.rs"]
pub mod redis;
pub mod tls;

/// The HMAC secret every test server is configured with.
pub const SECRET: &str = "test-secret-test-secret-test-secret!!";
/// Longest a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// The config every test starts from; tests append TOML to it.
pub const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "3s"
# Plain ws on loopback; the TLS tests set server.tls instead.
allow_plaintext = true

[[auth.keys]]
id = "k1"
algorithm = "HS256"
secret = "test-secret-test-secret-test-secret!!"

[origins]
allow = ["https://app.example.com", "https://*.example.org"]

[audit]
checkpoint_key = "test-audit-checkpoint-key-test-audit-key!"
# A record per refusal, as tests that count them expect; tests/audit_flood.rs
# and the process tests have the default folding.
aggregate_interval = "0s"

[admin]
listen = "127.0.0.1:0"
"#;

/// `[abuse]` for tests of other limits: rates and thresholds those tests
/// never reach, so a test of fairness or of the log budget is not cut short
/// by the guard (the guard's own tests use the defaults, or set their own).
pub const NO_ABUSE_LIMITS: &str = r#"
[abuse]
connect_rate = "100000/s"
request_rate = "100000/s"
connection_rate = "100000/s"
user_rate = "100000/s"
ip_rate = "100000/s"
control_rate = "100000/s"
recover_rate = "100000/s"
max_connections_per_ip = 100000
max_connections_per_user = 100000
max_pending_per_ip = 100000
restrict_at = 1000000
disconnect_at = 1000000
ban_at = 1000000
spam_max_repeat = 0
spam_max_links = 0
"#;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin listener's address, when `admin.enabled`.
    pub admin: Option<SocketAddr>,
    /// The config file the server was started from (reloads re-read it).
    pub config_path: std::path::PathBuf,
    pub reloader: palisade_server::server::Reloader,
    /// The guard's counters.
    pub stats: palisade_server::abuse::Stats,
    /// `server.data_dir`, where the database is.
    pub data_dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with `BASE` plus `extra` TOML.
    pub async fn start(extra: &str) -> Self {
        Self::start_layers(&[extra]).await
    }

    /// Starts a server with `BASE`, [`NO_ABUSE_LIMITS`], then `extra`.
    pub async fn start_lenient(extra: &str) -> Self {
        Self::start_layers(&[NO_ABUSE_LIMITS, extra]).await
    }

    /// Starts a server with `BASE` and then each layer of TOML, merged in order.
    pub async fn start_layers(layers: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.toml");
        let data = dir.path().join("data");
        let mut tree: toml::Table = toml::from_str(BASE).unwrap();
        for layer in layers {
            merge(&mut tree, toml::from_str(layer).expect("test TOML parses"));
        }
        let server = tree.get_mut("server").and_then(|s| s.as_table_mut()).unwrap();
        server.insert("data_dir".into(), toml::Value::String(data.display().to_string()));
        let text = toml::to_string(&tree).unwrap();
        std::fs::write(&path, text).unwrap();
        Self::launch(path, data, dir).await
    }

    async fn launch(path: std::path::PathBuf, data: std::path::PathBuf, dir: tempfile::TempDir) -> Self {
        let config = Config::load(Source::File(&path), &BTreeMap::new()).unwrap();
        let mut settings = Settings::new(config, Profile::Production).unwrap();
        settings.source = Some(path.clone());
        let server = Server::bind(settings).await.unwrap();
        let addr = server.local_addr();
        let admin = server.admin_addr();
        let reloader = server.reloader();
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            config_path: path,
            reloader,
            stats,
            data_dir: data,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Shuts the server down and starts it again from the same config and
    /// data directory (on a new port).
    pub async fn restart(self) -> Self {
        let mut old = self;
        old.shutdown().await;
        let dir = tempfile::tempdir().unwrap();
        let kept = std::mem::replace(&mut old._dir, dir);
        Self::launch(old.config_path.clone(), old.data_dir.clone(), kept).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Triggers graceful shutdown and waits for it to finish.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("shutdown finishes").unwrap();
        }
    }
}

/// Deep merge: tables merge, everything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Signs `claims` with `secret` (HS256, kid k1).
pub fn sign(claims: &Value, secret: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// A valid token for `sub` with `roles`, living `ttl` seconds.
pub fn token_ttl(sub: &str, roles: &[&str], ttl: u64) -> String {
    sign(
        &json!({"sub": sub, "name": format!("{sub}-name"), "roles": roles, "exp": unix_now() + ttl,
                "iss": "palisade", "aud": "palisade"}),
        SECRET,
    )
}

pub fn token(sub: &str, roles: &[&str]) -> String {
    token_ttl(sub, roles, 600)
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Handshake options.
#[derive(Default, Clone)]
pub struct Dial<'a> {
    pub bearer: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub protocols: Option<&'a str>,
    pub path: Option<&'a str>,
    /// Source address on loopback (default 127.0.0.1): each plays one
    /// client IP to the server's per-address limits.
    pub from: Option<[u8; 4]>,
    /// An `X-Forwarded-For` header.
    pub forwarded_for: Option<&'a str>,
    /// A `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// A `Cookie` header.
    pub cookie: Option<&'a str>,
}

type Refusal = Response<Option<Vec<u8>>>;

/// Opens a WebSocket; `Err` carries the HTTP refusal (status, body).
pub async fn dial(server: &TestServer, opts: Dial<'_>) -> Result<(Ws, Response<Option<Vec<u8>>>), (u16, String)> {
    dial_at(server.addr, opts).await
}

/// Dials expecting a refusal; returns its status and `Retry-After` seconds.
pub async fn refused(server: &TestServer, opts: Dial<'_>) -> (u16, Option<u64>) {
    match handshake(server, opts).await {
        Ok(_) => panic!("expected a refusal, got an upgrade"),
        Err(resp) => {
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
            (resp.status().as_u16(), retry)
        }
    }
}

async fn handshake(server: &TestServer, opts: Dial<'_>) -> Result<(Ws, Response<Option<Vec<u8>>>), Refusal> {
    handshake_at(server.addr, opts).await
}

/// [`dial`] to any server, such as a child process.
pub async fn dial_at(addr: SocketAddr, opts: Dial<'_>) -> Result<(Ws, Response<Option<Vec<u8>>>), (u16, String)> {
    handshake_at(addr, opts).await.map_err(|resp| {
        let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        (resp.status().as_u16(), body)
    })
}

async fn handshake_at(addr: SocketAddr, opts: Dial<'_>) -> Result<(Ws, Response<Option<Vec<u8>>>), Refusal> {
    let url = format!("ws://{addr}{}", opts.path.unwrap_or("/ws"));
    let mut req = url.into_client_request().unwrap();
    let headers = req.headers_mut();
    if let Some(t) = opts.bearer {
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    if let Some(o) = opts.origin {
        headers.insert("origin", HeaderValue::from_str(o).unwrap());
    }
    if let Some(p) = opts.protocols {
        headers.insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(f) = opts.forwarded_for {
        headers.insert("x-forwarded-for", HeaderValue::from_str(f).unwrap());
    }
    if let Some(ua) = opts.user_agent {
        headers.insert("user-agent", HeaderValue::from_str(ua).unwrap());
    }
    if let Some(c) = opts.cookie {
        headers.insert("cookie", HeaderValue::from_str(c).unwrap());
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((opts.from.unwrap_or([127, 0, 0, 1]), 0))).unwrap();
    let attempt = async {
        let stream = socket.connect(addr).await.unwrap();
        tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await
    };
    match tokio::time::timeout(WAIT, attempt).await.expect("handshake in time") {
        Ok(pair) => Ok(pair),
        Err(WsError::Http(resp)) => Err(*resp),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// Connects from `from` with a bearer token and reads the welcome frame.
pub async fn connect_from(server: &TestServer, from: [u8; 4], token: &str) -> (Ws, Value) {
    let dialed = dial(server, Dial { bearer: Some(token), from: Some(from), ..Dial::default() }).await;
    let (mut ws, _) = dialed.expect("handshake accepted");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// Connects with a bearer token and reads the welcome frame.
pub async fn connect(server: &TestServer, token: &str) -> (Ws, Value) {
    connect_from(server, [127, 0, 0, 1], token).await
}

/// The next text frame as JSON (pings are skipped).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("frame in time").expect("stream open").unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends a text frame as is (for JSON that serde_json would not produce).
pub async fn send_raw(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Sends a request and returns the reply with the same id, checking that
/// nothing else arrives in between except events.
pub async fn request(ws: &mut Ws, v: Value) -> Value {
    let id = v["id"].clone();
    send_json(ws, v).await;
    loop {
        let reply = next_json(ws).await;
        if reply["type"] == "event" {
            continue;
        }
        assert_eq!(reply["id"], id, "{reply}");
        return reply;
    }
}

pub async fn join(ws: &mut Ws, room: &str) {
    let reply = request(ws, json!({"type":"join","id":format!("join-{room}"),"room":room})).await;
    assert_eq!(reply["type"], "ack", "{reply}");
}

/// Reads until the server closes; returns the close code, or `None` if the
/// connection ended without a close frame.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.expect("server closes in time") {
            Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => return Some(code.into()),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Asserts nothing arrives for `d` (pings aside).
pub async fn assert_silent(ws: &mut Ws, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// A minimal HTTP/1.1 GET over a raw socket; returns the whole response.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_request(addr, "GET", path).await
}

/// A minimal HTTP/1.1 request with no body; returns the whole response.
pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out)).await.unwrap().unwrap();
    out
}

/// A TCP socket to `addr` from `from` (a loopback address: each plays one
/// client to the per-address limits).
pub async fn tcp_from(addr: SocketAddr, from: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server has closed `tcp` (a read sees the end or an error)
/// within `within`; whatever it sent before is read and dropped.
pub async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}
