//! The audit trail sent to a SIEM (issue 24, point 5), with a real syslog
//! receiver the test runs itself: over TCP, UDP and TLS, as JSON and CEF,
//! every record of the chain arrives, in order, as an RFC 5424 message; a
//! receiver outage longer than `siem.queue` leaves a gap record in the
//! chain that the receiver then gets, so sent and dropped account for
//! every record; and `palisade audit export --format ecs` writes one
//! Elastic Common Schema document per record.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::auth::{ADMIN_KEY, Call, call_at, with_admin_key};
use common::*;
use palisade_server::cli::ConfigArgs;
use palisade_server::cli::audit::{AuditCommand, ExportArgs, Format, audit};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::{self, ServerConfig};

/// What the receiver got, one message per entry, in arrival order.
type Got = Arc<Mutex<Vec<String>>>;

/// A syslog receiver on 127.0.0.1: its address, what it got, and its task
/// (aborting it closes the listener and the connection).
struct Receiver {
    addr: SocketAddr,
    got: Got,
    task: JoinHandle<()>,
}

impl Receiver {
    /// A TCP (or, with `tls`, TLS) receiver of octet-counted frames on
    /// `addr` (port 0: any).
    async fn stream(addr: SocketAddr, tls: Option<TlsAcceptor>, got: Got) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        // Bound again on the same port after an outage.
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener: TcpListener = socket.listen(16).unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Arc::clone(&got);
        let task = tokio::spawn(async move {
            // One connection at a time: the server keeps one.
            while let Ok((tcp, _)) = listener.accept().await {
                match &tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(tcp).await {
                            read_frames(stream, &sink).await;
                        }
                    }
                    None => read_frames(tcp, &sink).await,
                }
            }
        });
        Self { addr, got, task }
    }

    /// A UDP receiver: one message per datagram.
    async fn datagram() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let got = Got::default();
        let sink = Arc::clone(&got);
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 65_536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                sink.lock().unwrap().push(String::from_utf8(buf[..n].to_vec()).unwrap());
            }
        });
        Self { addr, got, task }
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Stops listening and closes the connection.
    async fn stop(self) -> (SocketAddr, Got) {
        self.task.abort();
        let _ = self.task.await;
        (self.addr, self.got)
    }
}

/// Reads `<len> <msg>` frames until the stream ends.
async fn read_frames(mut stream: impl AsyncRead + Unpin, sink: &Got) {
    loop {
        let mut len = 0_usize;
        let mut digits = 0;
        loop {
            let Ok(byte) = stream.read_u8().await else { return };
            match byte {
                b'0'..=b'9' if digits < 7 => {
                    len = len * 10 + usize::from(byte - b'0');
                    digits += 1;
                }
                b' ' if digits > 0 => break,
                _ => panic!("not an octet-counted frame: byte {byte} after {digits} digits"),
            }
        }
        let mut msg = vec![0; len];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        sink.lock().unwrap().push(String::from_utf8(msg).unwrap());
    }
}

/// A TLS acceptor for `localhost` and the certificate's PEM file.
fn tls_acceptor(dir: &std::path::Path) -> (TlsAcceptor, PathBuf) {
    let (cert_path, key_path, cert) = tls::pair(dir, "siem");
    let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), cert_path)
}

/// A server streaming to `syslog` with `extra` `[siem]` keys, and an admin
/// API key.
async fn server(syslog: &str, extra: &str) -> TestServer {
    let siem = format!("[siem]\nsyslog = \"{syslog}\"\n{extra}\n");
    TestServer::start_layers(&[NO_ABUSE_LIMITS, &with_admin_key(), &siem]).await
}

/// `palisade audit export --format FORMAT` against `server`'s store.
fn export(server: &TestServer, format: Format, out: Option<PathBuf>) -> Vec<Value> {
    let config = ConfigArgs { config: Some(server.config_path.clone()), data: None };
    let args = ExportArgs { config, since: None, kind: None, format, out };
    let mut text = Vec::new();
    audit(AuditCommand::Export(args), &BTreeMap::<String, String>::new(), &mut text).unwrap();
    String::from_utf8(text).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The chain, as the CLI exports it.
fn chain(server: &TestServer) -> Vec<Value> {
    export(server, Format::Jsonl, None)
}

/// Audit records: `n` refused handshakes from addresses `127.0.<net>.1…`
/// (one record each: the test config does not fold), and an operator's
/// ban through the admin API when `ban` is set (two: the ban and the
/// operator's action).
async fn cause_records(server: &TestServer, net: u8, n: u8, ban: Option<&str>) {
    for i in 1..=n {
        let from = Some([127, 0, net, i]);
        let refused = dial_at(server.addr, Dial { bearer: Some("not-a-token"), from, ..Dial::default() }).await;
        assert_eq!(refused.err().map(|(status, _)| status), Some(401));
    }
    if let Some(subject) = ban {
        let body = json!({ "subject": subject, "duration_secs": 600, "reason": "siem test" });
        let reply =
            call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/bans", body) }).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
}

/// Polls `done` until it holds, at most [`WAIT`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The chain once it holds at least `n` records.
async fn chain_of(server: &TestServer, n: usize) -> Vec<Value> {
    let mut records = Vec::new();
    until(&format!("{n} audit records"), || {
        records = chain(server);
        records.len() >= n
    })
    .await;
    records
}

/// An RFC 5424 message's header fields and body, checked against `record`
/// and the server's identity; the body parsed as `format` says.
fn parse(message: &str, format: &str) -> (u64, Value) {
    let fields: Vec<&str> = message.splitn(8, ' ').collect();
    let [pri, ts, host, app, procid, msgid, sd, msg] = fields[..] else { panic!("not RFC 5424: {message}") };
    let pri: u8 = pri.strip_prefix('<').and_then(|p| p.strip_suffix(">1")).unwrap().parse().unwrap();
    assert_eq!(pri / 8, 10, "facility authpriv: {message}");
    assert!(humantime::parse_rfc3339(ts).is_ok() && ts.ends_with('Z'), "{ts}");
    assert_eq!((host, app, sd), ("siem-test", "palisade", "-"), "{message}");
    assert_eq!(procid, std::process::id().to_string(), "the server runs in this process");
    let body = match format {
        "json" => {
            let record: Value = serde_json::from_str(msg).unwrap();
            assert_eq!(record["kind"], msgid);
            record
        }
        _ => cef(msg, msgid),
    };
    (u64::from(pri % 8), body)
}

/// A CEF line's header checked, and its extension as `{seq, kind}`.
fn cef(line: &str, msgid: &str) -> Value {
    // The version, event, name and severity, then the extension: nothing
    // in a record's fields adds an unescaped `|` to the header.
    let parts: Vec<&str> = line.splitn(8, '|').collect();
    assert_eq!(parts[..3], ["CEF:0", "Palisade", "palisade"], "{line}");
    assert_eq!(parts[4], msgid, "{line}");
    let severity: u8 = parts[6].parse().unwrap();
    assert!(severity <= 10);
    let seq = parts[7].split(' ').find_map(|kv| kv.strip_prefix("externalId=")).unwrap();
    json!({ "seq": seq.parse::<u64>().unwrap(), "kind": msgid })
}

/// Waits until `receiver` got a message for every record of the chain, then
/// checks they came in chain order, each once, and parse.
async fn every_record_arrives(server: &TestServer, receiver: &Receiver, expected: usize, format: &str) {
    let records = chain_of(server, expected).await;
    until("every record at the receiver", || receiver.messages().len() >= records.len()).await;
    let got: Vec<(u64, Value)> = receiver.messages().iter().map(|m| parse(m, format)).collect();
    let seqs: Vec<u64> = got.iter().map(|(_, body)| body["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, want, "every record, once, in chain order");
    for ((severity, body), record) in got.iter().zip(&records) {
        assert_eq!(body["kind"], record["kind"]);
        if format == "json" {
            assert_eq!(body, record, "the body is the record as exported");
        }
        // Refusals of a bad token are a hostile client's (warning), a ban
        // a warning too, the operator's action behind it a notice.
        let want = if record["kind"] == "admin_action" { 5 } else { 4 };
        assert_eq!(*severity, want, "{record}");
    }
}

const HOSTNAME: &str = "hostname = \"siem-test\"";

#[tokio::test]
async fn every_record_reaches_a_tcp_receiver_in_order_as_json() {
    let receiver = Receiver::stream("127.0.0.1:0".parse().unwrap(), None, Got::default()).await;
    let server = server(&format!("tcp://{}", receiver.addr), HOSTNAME).await;
    cause_records(&server, 41, 4, Some("ip:127.0.41.200")).await;
    every_record_arrives(&server, &receiver, 6, "json").await;
    assert!(server.stats.siem_connected());
    assert_eq!((server.stats.siem_sent(), server.stats.siem_dropped()), (6, 0));
}

#[tokio::test]
async fn every_record_reaches_a_udp_receiver_in_order_as_cef() {
    let receiver = Receiver::datagram().await;
    let server = server(&format!("udp://{}", receiver.addr), &format!("format = \"cef\"\n{HOSTNAME}")).await;
    cause_records(&server, 42, 4, Some("user:mallory")).await;
    every_record_arrives(&server, &receiver, 6, "cef").await;
}

#[tokio::test]
async fn every_record_reaches_a_tls_receiver_that_only_the_ca_file_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca) = tls_acceptor(dir.path());
    let receiver = Receiver::stream("127.0.0.1:0".parse().unwrap(), Some(acceptor), Got::default()).await;
    let extra = format!("ca_file = \"{}\"\n{HOSTNAME}", ca.display());
    let server = server(&format!("tls://localhost:{}", receiver.addr.port()), &extra).await;
    cause_records(&server, 43, 3, Some("ip:127.0.43.200")).await;
    every_record_arrives(&server, &receiver, 5, "json").await;
}

#[tokio::test]
async fn a_receiver_outage_leaves_a_gap_record_that_the_receiver_then_gets() {
    let receiver = Receiver::stream("127.0.0.1:0".parse().unwrap(), None, Got::default()).await;
    let server = server(&format!("tcp://{}", receiver.addr), &format!("queue = 5\n{HOSTNAME}")).await;
    cause_records(&server, 44, 2, None).await;
    every_record_arrives(&server, &receiver, 2, "json").await;

    // The receiver goes away; the server notices before anything is lost.
    let (addr, got) = receiver.stop().await;
    until("the sender to see the receiver gone", || !server.stats.siem_connected()).await;
    // 12 records while it is down, into a queue of 5: the 7 oldest are dropped.
    cause_records(&server, 45, 12, None).await;
    chain_of(&server, 14).await;
    until("7 records dropped", || server.stats.siem_dropped() == 7).await;
    assert_eq!(server.stats.siem_sent(), 2);

    // Back on the same port: the 5 kept, then the gap record.
    let receiver = Receiver::stream(addr, None, got).await;
    let is_gap = |body: &Value| body["kind"] == "gap" && body["detail"].as_str().unwrap().starts_with("siem:");
    until("the gap record at the receiver", || {
        receiver
            .messages()
            .iter()
            .any(|m| serde_json::from_str(m.split_once(" - ").unwrap().1).is_ok_and(|b| is_gap(&b)))
    })
    .await;
    let records = chain(&server);
    let gaps: Vec<&Value> = records.iter().filter(|r| is_gap(r)).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    // Refusals 3..=14 were written while the receiver was down; 3..=9 dropped.
    let detail = gaps[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("siem: 7 records between seq 3 and 9 "), "{detail}");

    let got: Vec<u64> = receiver.messages().iter().map(|m| parse(m, "json").1["seq"].as_u64().unwrap()).collect();
    let lost = 3..=9;
    let want: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).filter(|seq| !lost.contains(seq)).collect();
    assert_eq!(got, want, "every record but the 7 the gap record names, in order, the gap record last");
    assert_eq!(
        server.stats.siem_sent() + server.stats.siem_dropped(),
        records.len() as u64,
        "sent and dropped account for every record"
    );
    assert!(server.stats.siem_connected());

    // The same counts on /metrics (shared by this binary's servers; only
    // this test drops).
    let (status, body) = common::auth::get(server.admin.unwrap(), "/metrics", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        let line = body.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /metrics"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("palisade_siem_dropped_total"), 7.0);
    assert!(value("palisade_siem_sent_total") >= 8.0);
    assert!(body.contains("palisade_siem_connected"));
}

#[tokio::test]
async fn audit_export_writes_one_ecs_document_per_record() {
    // Records without a receiver: the stream waits; the export does not.
    let server = server("tcp://127.0.0.1:9", "").await;
    cause_records(&server, 46, 3, Some("user:mallory")).await;
    let records = chain_of(&server, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.ecs.jsonl");
    let printed = export(&server, Format::Ecs, None);
    assert!(export(&server, Format::Ecs, Some(file.clone())).is_empty(), "--out writes the file, not stdout");
    let written: Vec<Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(written, printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the records name users and addresses");
    }
    assert_eq!(written.len(), records.len(), "one document per record");
    for (doc, record) in written.iter().zip(&records) {
        assert_eq!(doc["ecs"]["version"].as_str().map(|v| v.starts_with("8.")), Some(true), "{doc}");
        assert!(humantime::parse_rfc3339(doc["@timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(doc["event"]["action"], record["kind"]);
        assert_eq!(doc["event"]["sequence"], record["seq"]);
        for field in ["kind", "category", "type", "outcome"] {
            assert!(!doc["event"][field].is_null(), "event.{field} in {doc}");
        }
        assert_eq!(doc["palisade"]["audit"], *record, "the record's own fields, hashes included");
        match record["kind"].as_str().unwrap() {
            "auth_failure" => {
                assert_eq!(doc["event"]["category"], json!(["authentication"]));
                assert_eq!(doc["event"]["outcome"], "failure");
                assert_eq!(doc["source"]["ip"], record["ip"]);
            }
            "ban" => {
                assert_eq!(doc["event"]["kind"], "alert");
                assert_eq!(doc["user"]["id"], "mallory");
            }
            "admin_action" => assert_eq!(doc["event"]["category"], json!(["iam"])),
            other => panic!("unexpected record {other}"),
        }
    }
}
