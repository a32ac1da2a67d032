//! The own issuer's endpoints from a test: users in the server's database,
//! and `/auth/*` calls over a raw HTTP/1.1 socket.

use std::net::SocketAddr;
use std::path::Path;

use palisade_core::auth::hash_password;
use palisade_core::store::{User, UserStore as _};
use palisade_store::Sqlite;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{TestServer, WAIT};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a user of the own issuer to the database under `data_dir`.
pub fn add_user(data_dir: &Path, id: &str, roles: &[&str]) {
    let store = Sqlite::open_in(data_dir).unwrap();
    let user = User {
        id: id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        password_hash: hash_password(PASSWORD, rand::random()).unwrap(),
        created: palisade_core::Timestamp::from_secs(1_700_000_000),
    };
    assert!(store.add_user(&user).unwrap());
}

/// An HTTP request to make.
#[derive(Clone, Default)]
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: Option<Value>,
    pub bearer: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// `X-CSRF-Token` (the admin browser session's).
    pub csrf: Option<&'a str>,
    /// Source address on loopback (default 127.0.0.1).
    pub from: Option<[u8; 4]>,
    /// `X-Forwarded-For`, as raw bytes (which may be no text at all).
    pub forwarded_for: Option<&'a [u8]>,
}

impl<'a> Call<'a> {
    pub fn post(path: &'a str, body: Value) -> Self {
        Self { method: "POST", path, body: Some(body), ..Self::default() }
    }

    pub fn get(path: &'a str) -> Self {
        Self { method: "GET", path, ..Self::default() }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie`.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
    }

    /// The value `Set-Cookie` gives the cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find_map(|c| {
            let (k, rest) = c.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
        })
    }
}

/// Makes `call` to `addr` over a fresh socket.
pub async fn call_at(addr: SocketAddr, call: Call<'_>) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((call.from.unwrap_or([127, 0, 0, 1]), 0))).unwrap();
    let mut s = tokio::time::timeout(WAIT, socket.connect(addr)).await.unwrap().unwrap();
    let body = call.body.as_ref().map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{} {} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        call.method,
        call.path,
        body.len()
    );
    if call.body.is_some() {
        req.push_str("content-type: application/json\r\n");
    }
    for (name, value) in [
        ("authorization", call.bearer.map(|t| format!("Bearer {t}"))),
        ("cookie", call.cookie.map(str::to_owned)),
        ("origin", call.origin.map(str::to_owned)),
        ("user-agent", call.user_agent.map(str::to_owned)),
        ("x-csrf-token", call.csrf.map(str::to_owned)),
    ] {
        if let Some(value) = value {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let mut req = req.into_bytes();
    if let Some(forwarded) = call.forwarded_for {
        req.extend_from_slice(b"x-forwarded-for: ");
        req.extend_from_slice(forwarded);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.as_bytes());
    s.write_all(&req).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw)).await.expect("response in time").unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("a status line");
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Reply { status, headers, body: body.to_owned() }
}

/// Makes `call` to the test server.
pub async fn call(server: &TestServer, call: Call<'_>) -> Reply {
    call_at(server.addr, call).await
}

/// Logs `user` in with [`PASSWORD`]; the response body.
pub async fn login(server: &TestServer, user: &str) -> Value {
    let reply =
        call(server, Call::post("/auth/login", serde_json::json!({"username": user, "password": PASSWORD}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// `POST /auth/refresh` with `token` in the body.
pub async fn refresh(server: &TestServer, token: &str) -> Reply {
    call(server, Call::post("/auth/refresh", serde_json::json!({"refresh_token": token}))).await
}

/// The admin API key the admin tests configure.
pub const ADMIN_KEY: &str = "admin-key-for-tests-0123456789abcdef";

/// `[admin]` with [`ADMIN_KEY`].
pub fn with_admin_key() -> String {
    format!("[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n")
}

/// The audit records of `kind` from the admin API at `admin` (with
/// [`ADMIN_KEY`]), waiting until at least `n` are written (the writer is
/// asynchronous).
pub async fn audited(admin: SocketAddr, kind: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let path = format!("/api/audit?kind={kind}&limit=100");
        let reply = call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::get(&path) }).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let items = reply.json()["items"].as_array().unwrap().clone();
        if items.len() >= n || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A GET with an optional bearer credential: the status and the body.
pub async fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, String) {
    let reply = call_at(addr, Call { bearer, ..Call::get(path) }).await;
    (reply.status, reply.body)
}
