//! Operator alerts (issue 20, point 7) against a real HTTP receiver on
//! loopback that checks every delivery's signature itself (HMAC-SHA256
//! over `timestamp.body`, computed here, not with the server's code): a
//! ban is a signed alert, listed at `GET /api/alerts`; a receiver that
//! fails twice gets it on the third try; a wrong secret does not verify;
//! a hanging receiver leaves the queue at `alerts.max_queue`; a flood of
//! authentication failures is one alert, and its end one more; an audit
//! chain rewritten under the server is a critical alert.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::auth::{ADMIN_KEY, Call, call_at, with_admin_key};
use common::*;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const ALERT_SECRET: &str = "alert-secret-for-tests-0123456789abcdef";

/// One POST the receiver read.
#[derive(Debug)]
struct Delivery {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    /// The status the receiver answered.
    answered: u16,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the signature is `secret`'s, computed independently.
    fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        self.signature == format!("sha256={hex}")
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 500 to the first `n` requests, 200 after.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
}

/// A webhook receiver on 127.0.0.1:0: its URL and what it read.
async fn receiver(behaviour: Behaviour) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let (tx, seen) = (tx.clone(), Arc::clone(&seen));
            tokio::spawn(async move { answer(socket, behaviour, &seen, &tx).await });
        }
    });
    (format!("http://{addr}/hook"), rx)
}

async fn answer(mut socket: TcpStream, behaviour: Behaviour, seen: &AtomicUsize, tx: &mpsc::UnboundedSender<Delivery>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: a request larger than 1 MiB is not an alert.
    let (head, body_start) = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&raw[..end]).into_owned(), end + 4);
        }
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 || raw.len() > 1 << 20 {
            return;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert_eq!(header("content-type"), "application/json");
    while raw.len() < body_start + length {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        assert!(n > 0, "the body ended early");
        raw.extend_from_slice(&buf[..n]);
    }
    let body = raw[body_start..body_start + length].to_vec();
    let nth = seen.fetch_add(1, Ordering::SeqCst);
    let answered = match behaviour {
        Behaviour::FailFirst(n) if nth < n => 500,
        Behaviour::FailFirst(_) => 200,
        Behaviour::Hang => 0,
    };
    let _ = tx.send(Delivery {
        timestamp: header("x-palisade-timestamp"),
        signature: header("x-palisade-signature"),
        body,
        answered,
    });
    if answered == 0 {
        // Held open until the server gives up on it.
        let _ = socket.read(&mut buf).await;
        return;
    }
    let reply = format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = socket.write_all(reply.as_bytes()).await;
}

async fn next_delivery(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a delivery in time").expect("the receiver runs")
}

async fn start(url: &str, extra: &str) -> TestServer {
    let alerts = format!("[alerts]\nurl = \"{url}\"\nsecret = \"{ALERT_SECRET}\"\nbackoff = \"50ms\"\n{extra}");
    TestServer::start_layers(&[NO_ABUSE_LIMITS, &with_admin_key(), &alerts]).await
}

async fn ban(server: &TestServer, subject: &str) {
    let body = json!({"subject": subject, "duration_secs": 60, "reason": "test"});
    let reply = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/bans", body) }).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

async fn listed(server: &TestServer) -> Value {
    let reply = call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/alerts") }).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[tokio::test]
async fn an_operator_ban_is_a_signed_alert_and_listed() {
    let (url, mut rx) = receiver(Behaviour::FailFirst(0)).await;
    let mut server = start(&url, "").await;
    ban(&server, "ip:127.0.40.1").await;

    let delivery = next_delivery(&mut rx).await;
    assert!(delivery.signed_with(ALERT_SECRET), "the signature verifies: {delivery:?}");
    assert!(!delivery.signed_with("another-secret-of-enough-length-0123456"), "a wrong secret does not verify");
    let ts: u64 = delivery.timestamp.parse().unwrap();
    assert!(ts.abs_diff(unix_now()) < 3600, "the timestamp is Unix seconds: {ts}");
    let alert = delivery.json();
    assert_eq!(alert["kind"], "ban");
    assert!(alert["summary"].as_str().unwrap().contains("127.0.40.1"), "{alert}");
    assert_eq!(delivery.answered, 200);

    let list = listed(&server).await;
    assert_eq!(list["webhook"], true);
    assert_eq!(list["items"][0]["id"], alert["id"], "{list}");
    assert!(!list.to_string().contains(ALERT_SECRET));
    server.shutdown().await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_alert_on_the_third_try() {
    let (url, mut rx) = receiver(Behaviour::FailFirst(2)).await;
    let mut server = start(&url, "attempts = 5\n").await;
    ban(&server, "user:mallory").await;

    let tries = [next_delivery(&mut rx).await, next_delivery(&mut rx).await, next_delivery(&mut rx).await];
    assert_eq!(tries.iter().map(|d| d.answered).collect::<Vec<_>>(), [500, 500, 200]);
    for delivery in &tries {
        assert!(delivery.signed_with(ALERT_SECRET));
        assert_eq!(delivery.json()["id"], tries[0].json()["id"], "the same alert each time");
        assert_eq!(delivery.json()["kind"], "ban");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_queue_bound_holds_while_the_receiver_hangs() {
    let (url, mut rx) = receiver(Behaviour::Hang).await;
    let mut server = start(&url, "max_queue = 2\ntimeout = \"60s\"\n").await;
    ban(&server, "ip:127.0.41.0").await;
    // The sender holds the first alert on the hanging receiver.
    assert_eq!(next_delivery(&mut rx).await.answered, 0);
    for i in 1..10 {
        ban(&server, &format!("ip:127.0.41.{i}")).await;
    }
    let list = listed(&server).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 10, "every alert is listed: {list}");
    assert_eq!(list["queued"], 2, "{list}");
    assert_eq!(list["dropped"], 7, "the oldest waiting give way: {list}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_authentication_failures_is_one_alert() {
    let (url, mut rx) = receiver(Behaviour::FailFirst(0)).await;
    let mut server = start(&url, "window = \"1s\"\nauth_failures_per_second = 5\nrefusals_per_second = 0\n").await;
    let forged = sign(&json!({"sub": "eve", "exp": unix_now() + 600}), "not-the-server-secret-0123456789abcdef");
    for _ in 0..60 {
        let (status, _) = refused(&server, Dial { bearer: Some(&forged), ..Dial::default() }).await;
        assert_eq!(status, 401);
    }
    let delivery = next_delivery(&mut rx).await;
    assert!(delivery.signed_with(ALERT_SECRET));
    let alert = delivery.json();
    assert_eq!((alert["kind"].as_str(), alert["severity"].as_str()), (Some("auth_failures"), Some("critical")));
    // The flood's end is the next alert of that kind, not another raise.
    let next = next_delivery(&mut rx).await.json();
    assert_eq!((next["kind"].as_str(), next["severity"].as_str()), (Some("auth_failures"), Some("info")), "{next}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_audit_chain_rewritten_under_the_server_is_a_critical_alert() {
    use palisade_core::store::AuditStore as _;
    let (url, mut rx) = receiver(Behaviour::FailFirst(0)).await;
    let audit = "[audit]\ncheckpoint_every = 1\ncheckpoint_file = \"checkpoints.log\"\n";
    let alerts = format!("[alerts]\nurl = \"{url}\"\nsecret = \"{ALERT_SECRET}\"\n");
    let mut server = TestServer::start_layers(&[NO_ABUSE_LIMITS, &with_admin_key(), audit, &alerts]).await;
    let refusal = |last: u8| {
        let dial = Dial { bearer: Some("not-a-token"), from: Some([127, 0, 42, last]), ..Dial::default() };
        dial_at(server.addr, dial)
    };
    for last in 1..=3 {
        assert!(refusal(last).await.is_err());
    }
    // Wait until the third record is signed: the writer then checks it is
    // still there before every append.
    let checkpoints = server.data_dir.parent().unwrap().join("checkpoints.log");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&checkpoints).unwrap_or_default().lines().any(|l| l.starts_with("seq=3 ")) {
        assert!(tokio::time::Instant::now() < deadline, "the third record is signed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Record 2 removed and the rest chained again, without the key.
    let db = server.data_dir.join("palisade.db");
    let store = palisade_store::Sqlite::open(&db).unwrap();
    let kept: Vec<_> = store.range(1, 100).unwrap().into_iter().filter(|r| r.seq != 2).map(|r| r.entry).collect();
    rusqlite::Connection::open(&db).unwrap().execute("DELETE FROM audit", []).unwrap();
    store.append(&kept).unwrap();
    assert!(refusal(4).await.is_err());

    let delivery = next_delivery(&mut rx).await;
    assert!(delivery.signed_with(ALERT_SECRET));
    let alert = delivery.json();
    assert_eq!((alert["kind"].as_str(), alert["severity"].as_str()), (Some("audit_chain_break"), Some("critical")));
    server.shutdown().await;
}

#[tokio::test]
async fn records_dropped_on_a_full_audit_queue_are_a_gap_alert() {
    let (url, mut rx) = receiver(Behaviour::FailFirst(0)).await;
    // A queue of one, and 1,000 refusals at once from 1,000 addresses (no
    // two fold into one record): the writer's appends cannot keep up.
    let mut server = start(&url, "[audit]\nqueue = 1\n").await;
    let refusals = (43..=46u8).flat_map(|net| (1..=250u8).map(move |last| [127, 0, net, last])).map(|from| {
        let dial = Dial { bearer: Some("not-a-token"), from: Some(from), ..Dial::default() };
        dial_at(server.addr, dial)
    });
    for refused in futures_util::future::join_all(refusals).await {
        assert_eq!(refused.err().map(|(status, _)| status), Some(401));
    }
    // The gap is told with the next batch the writer appends.
    assert!(refusal_from(&server, [127, 0, 47, 1]).await);
    let alert = loop {
        let delivery = next_delivery(&mut rx).await;
        assert!(delivery.signed_with(ALERT_SECRET));
        let alert = delivery.json();
        if alert["kind"] == "audit_gap" {
            break alert;
        }
    };
    assert_eq!(alert["severity"], "warning");
    assert!(alert["summary"].as_str().unwrap().contains("dropped on a full queue (audit.queue)"), "{alert}");
    server.shutdown().await;
}

/// One more refused handshake from `from`.
async fn refusal_from(server: &TestServer, from: [u8; 4]) -> bool {
    dial_at(server.addr, Dial { bearer: Some("not-a-token"), from: Some(from), ..Dial::default() }).await.is_err()
}

#[tokio::test]
async fn a_ban_by_the_guard_is_an_alert_too() {
    let (url, mut rx) = receiver(Behaviour::FailFirst(0)).await;
    let alerts = format!("[alerts]\nurl = \"{url}\"\nsecret = \"{ALERT_SECRET}\"\nauth_failures_per_second = 0\n");
    // Three forged tokens (auth_failure weighs 2, a little decayed) pass
    // ban_at.
    let abuse = "[abuse]\nrestrict_at = 5\ndisconnect_at = 5\nban_at = 5\n";
    let mut server = TestServer::start_layers(&[&with_admin_key(), abuse, &alerts]).await;
    for _ in 0..3 {
        let dial = Dial { bearer: Some("not-a-token"), from: Some([127, 0, 43, 1]), ..Dial::default() };
        assert!(dial_at(server.addr, dial).await.is_err());
    }
    let delivery = next_delivery(&mut rx).await;
    assert!(delivery.signed_with(ALERT_SECRET));
    let alert = delivery.json();
    assert_eq!(alert["kind"], "ban");
    let summary = alert["summary"].as_str().unwrap();
    assert!(summary.starts_with("auto ban of ip:127.0.43.1"), "{summary}");
    server.shutdown().await;
}
