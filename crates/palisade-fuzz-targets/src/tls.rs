//! A target for the server's TLS stream (`palisade_server::tls::stream`,
//! its own buffering on rustls' unbuffered API): a real rustls client on
//! one end of an in-memory socket, the stream on the other, and the
//! fuzzer choosing how the bytes move.
#![allow(clippy::expect_used, reason = "in a fuzz target a failed expectation is a finding: it panics by design")]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future as _;
use std::io::{self, Read as _, Write as _};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use palisade_server::tls::stream::{TlsStream, accept};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, ServerConfig};

/// More than any one of the stream's buffers may ever hold (its bounds are
/// 68 KiB in the handshake and about one record after it).
const BUFFER_BOUND: usize = 160 * 1024;
/// Key updates rustls takes from a peer with no data between
/// (`TooManyKeyUpdateRequests` past it).
const MAX_KEY_UPDATES: u8 = 32;
/// Steps of the handshake or the final drain before the target gives up
/// on progress: a stall there is a finding.
const MAX_STEPS: usize = 100_000;

/// The server's TLS stream against a rustls client over an in-memory
/// socket. The first byte picks how many bytes a socket read returns, the
/// second the TLS version (its low bit) and how much the client's socket
/// takes before it pushes back; then
/// each pair of bytes is one step: the client writes, updates its keys or
/// sends close_notify, the server reads into a buffer of the size given,
/// writes, flushes or shuts down, the read size changes, or raw bytes are slipped
/// into the client's stream (an attacker on the path). Invariants: the
/// handshake completes and every byte arrives, in order, whatever the
/// pieces; what the server reads is always a prefix of what the client
/// sent, forged bytes included (they end the connection, they are never
/// read); the stream's buffers stay bounded; nothing panics or stalls. Only
/// a misbehaving client (forged bytes, or more than 32 key updates with no
/// data between, which rustls refuses) may see the connection fail.
pub fn tls_stream(data: &[u8]) {
    let [piece, window, steps @ ..] = data else { return };
    let wire = Rc::new(RefCell::new(Wire {
        to_server: VecDeque::new(),
        to_client: Vec::new(),
        piece: 1 + usize::from(*piece) * 61,
        window: 64 + usize::from(*window >> 1) * 509,
    }));
    let (server_config, tls13, tls12) = configs();
    let client_config = if window & 1 == 0 { tls13 } else { tls12 };
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut client = ClientConnection::new(Arc::clone(client_config), name).expect("client connection");
    let mut cx = Context::from_waker(Waker::noop());

    let mut accepting = Box::pin(accept(Side(Rc::clone(&wire)), Arc::clone(server_config)));
    let mut server = None;
    for _ in 0..MAX_STEPS {
        pump(&mut client, &wire);
        if let Poll::Ready(accepted) = accepting.as_mut().poll(&mut cx) {
            server = Some(accepted.expect("an honest client's handshake succeeds, whatever the pieces"));
            break;
        }
    }
    let Some(mut server) = server else { panic!("the handshake stalled") };
    while client.is_handshaking() {
        pump(&mut client, &wire);
    }

    let mut peers = Peers::default();
    for step in steps.chunks_exact(2) {
        let (op, arg) = (step[0] % 8, usize::from(step[1]));
        match op {
            0 if !peers.client_closed => {
                let chunk = pattern(peers.client_sent.len(), (arg + 1) * 37);
                match client.writer().write(&chunk) {
                    Ok(n) => {
                        peers.client_sent.extend_from_slice(chunk.get(..n).expect("n ≤ len"));
                        peers.key_updates = 0;
                    }
                    // The server's alert for a misbehaving client ends it too.
                    Err(e) => assert!(peers.misbehaved, "an honest client could not write: {e}"),
                }
            }
            1 => peers.server_read(&mut server, &mut cx, arg + 1),
            // Once shutting down, the server only goes on shutting down.
            2 if !peers.server_shut => peers.server_write(&mut server, &mut cx, (arg + 1) * 67),
            3 if arg % 8 == 0 || peers.server_shut => {
                peers.server_shut = true;
                let _ = Pin::new(&mut server).poll_shutdown(&mut cx);
            }
            3 => {
                let _ = Pin::new(&mut server).poll_flush(&mut cx);
            }
            4 if !peers.client_closed && !peers.misbehaved && client.refresh_traffic_keys().is_ok() => {
                // rustls (as BoringSSL) fails a peer that asks for more than
                // 32 key updates with no data between: a flood, not a client.
                peers.key_updates += 1;
                peers.misbehaved |= peers.key_updates > MAX_KEY_UPDATES;
            }
            5 => wire.borrow_mut().piece = arg + 1,
            6 if !peers.client_closed => {
                client.send_close_notify();
                peers.client_closed = true;
            }
            7 => {
                // A few bytes from the input, slipped in whole: the MAC
                // check must refuse them.
                let forged = step.iter().cycle().take(1 + arg % 24).copied();
                wire.borrow_mut().to_server.extend(forged);
                peers.misbehaved = true;
            }
            _ => {}
        }
        peers.pump_client(&mut client, &wire);
        peers.check(&server);
    }
    if !peers.misbehaved {
        peers.drain(&mut client, &mut server, &wire, &mut cx);
    }
}

/// The bytes each end sent and got, and how the connection ended.
#[derive(Default)]
struct Peers {
    client_sent: Vec<u8>,
    server_got: Vec<u8>,
    server_sent: Vec<u8>,
    client_got: Vec<u8>,
    client_closed: bool,
    /// The server was asked to shut down (send close_notify).
    server_shut: bool,
    /// Raw bytes went into the client's stream, or the client flooded key
    /// updates: the server may fail the connection.
    misbehaved: bool,
    /// The client's key updates since it last sent data.
    key_updates: u8,
    /// The server's stream failed (only ever after the client misbehaved).
    failed: bool,
}

impl Peers {
    fn server_read(&mut self, server: &mut TlsStream<Side>, cx: &mut Context<'_>, size: usize) {
        if self.failed {
            return;
        }
        let mut buf = vec![0; size];
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(server).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                // After its own close_notify the server drops what comes.
                assert!(self.client_closed || self.server_shut, "EOF only after a close_notify");
            }
            Poll::Ready(Ok(())) => self.server_got.extend_from_slice(read.filled()),
            Poll::Ready(Err(e)) => {
                assert!(self.misbehaved, "the stream failed on an honest client: {e}");
                self.failed = true;
            }
            Poll::Pending => {}
        }
    }

    fn server_write(&mut self, server: &mut TlsStream<Side>, cx: &mut Context<'_>, len: usize) {
        if self.failed {
            return;
        }
        let chunk = pattern(self.server_sent.len(), len);
        match Pin::new(server).poll_write(cx, &chunk) {
            Poll::Ready(Ok(n)) => self.server_sent.extend_from_slice(chunk.get(..n).expect("n ≤ len")),
            Poll::Ready(Err(_)) if self.misbehaved => self.failed = true,
            Poll::Ready(Err(e)) => panic!("a write failed on an honest client: {e}"),
            Poll::Pending => {}
        }
    }

    /// Moves TLS bytes both ways and reads what the client got.
    fn pump_client(&mut self, client: &mut ClientConnection, wire: &Rc<RefCell<Wire>>) {
        if !pump(client, wire) {
            // The client refuses what came back only if the server
            // answered the client's misbehaviour with an alert.
            assert!(self.misbehaved, "the client refused the server's records");
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match client.reader().read(&mut buf) {
                Ok(0) => {
                    assert!(self.server_shut, "the client read an end the server was not asked for");
                    break;
                }
                Ok(n) => self.client_got.extend_from_slice(buf.get(..n).expect("n ≤ 4096")),
                Err(_) => break,
            }
        }
    }

    fn check(&self, server: &TlsStream<Side>) {
        assert!(self.client_sent.starts_with(&self.server_got), "the server read bytes the client did not send");
        assert!(self.server_sent.starts_with(&self.client_got), "the client read bytes the server did not send");
        let (incoming, outgoing, plaintext) = server.capacities();
        assert!(incoming.max(outgoing).max(plaintext) <= BUFFER_BOUND, "buffers {incoming}/{outgoing}/{plaintext}");
    }

    /// Flushes the server and reads both ends dry: every byte sent arrives.
    fn drain(
        &mut self,
        client: &mut ClientConnection,
        server: &mut TlsStream<Side>,
        wire: &Rc<RefCell<Wire>>,
        cx: &mut Context<'_>,
    ) {
        for _ in 0..MAX_STEPS {
            let flushed = if self.server_shut {
                Pin::new(&mut *server).poll_shutdown(cx).is_ready()
            } else {
                Pin::new(&mut *server).poll_flush(cx).is_ready()
            };
            self.server_read(server, cx, 16 * 1024);
            self.pump_client(client, wire);
            self.check(server);
            // Once the server shut down, it reads no more.
            let read_all = self.server_shut || self.server_got.len() == self.client_sent.len();
            if flushed && read_all && self.client_got.len() == self.server_sent.len() {
                return;
            }
        }
        panic!(
            "bytes stalled: the server read {} of {}, the client {} of {}",
            self.server_got.len(),
            self.client_sent.len(),
            self.client_got.len(),
            self.server_sent.len()
        );
    }
}

/// The in-memory socket between them.
struct Wire {
    to_server: VecDeque<u8>,
    to_client: Vec<u8>,
    /// Most bytes one server read returns.
    piece: usize,
    /// Most bytes waiting for the client before the server's writes wait.
    window: usize,
}

/// The server's end of the socket.
struct Side(Rc<RefCell<Wire>>);

impl AsyncRead for Side {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut wire = self.0.borrow_mut();
        if wire.to_server.is_empty() {
            return Poll::Pending;
        }
        let n = wire.to_server.len().min(wire.piece).min(buf.remaining());
        let taken: Vec<u8> = wire.to_server.drain(..n).collect();
        buf.put_slice(&taken);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Side {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut wire = self.0.borrow_mut();
        let room = wire.window.saturating_sub(wire.to_client.len());
        if room == 0 {
            return Poll::Pending;
        }
        let n = room.min(data.len());
        wire.to_client.extend_from_slice(data.get(..n).unwrap_or_default());
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's TLS bytes onto the wire and the server's into the client;
/// false once the client refused what it got.
fn pump(client: &mut ClientConnection, wire_ref: &Rc<RefCell<Wire>>) -> bool {
    let mut wire = wire_ref.borrow_mut();
    let mut out = Vec::new();
    while client.wants_write() {
        if client.write_tls(&mut out).is_err() {
            break;
        }
    }
    wire.to_server.extend(out);
    let from = std::mem::take(&mut wire.to_client);
    drop(wire);
    let mut reader = &from[..];
    let mut refused = false;
    while !reader.is_empty() {
        // A full client buffer (its plaintext not read yet) takes no more:
        // the rest goes back on the wire for the next pump.
        match client.read_tls(&mut reader) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if client.process_new_packets().is_err() {
                    refused = true;
                    break;
                }
            }
        }
    }
    wire_ref.borrow_mut().to_client.splice(0..0, reader.iter().copied());
    !refused
}

/// Bytes that differ by position, so a reordering or a repeat shows.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

type Configs = (Arc<ServerConfig>, Arc<ClientConfig>, Arc<ClientConfig>);

/// A server config with a self-signed certificate, and a TLS 1.3 and a
/// TLS 1.2 client that trust it: made once (key generation is slow).
fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let cert: CertificateDer<'static> = made.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = |version| {
            let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            Arc::new(config)
        };
        (Arc::new(server), client(&rustls::version::TLS13), client(&rustls::version::TLS12))
    })
}
