//! The stream over real loopback sockets, against tokio-rustls' client.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream as ClientStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion, version};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::*;

const BOTH: [&SupportedProtocolVersion; 2] = [&version::TLS13, &version::TLS12];

struct Pki {
    server: Arc<ServerConfig>,
    cert: CertificateDer<'static>,
}

fn pki() -> Pki {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Pki { server: Arc::new(server), cert }
}

fn connector(pki: &Pki, version: &'static SupportedProtocolVersion) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A connected loopback pair (server side, client side); `small` shrinks
/// the server's send and the client's receive buffers.
async fn tcp_pair(small: bool) -> (TcpStream, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    let client = TcpSocket::new_v4().unwrap();
    if small {
        socket.set_send_buffer_size(8 * 1024).unwrap();
        client.set_recv_buffer_size(8 * 1024).unwrap();
    }
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let listener: TcpListener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, connected) = tokio::join!(listener.accept(), client.connect(addr));
    (accepted.unwrap().0, connected.unwrap())
}

async fn handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    pki: &Pki,
    version: &'static SupportedProtocolVersion,
    server: TcpStream,
    client: IO,
) -> (TlsStream<TcpStream>, ClientStream<IO>) {
    let name = ServerName::try_from("localhost").unwrap();
    let connector = connector(pki, version);
    let (server, client) = tokio::join!(accept(server, Arc::clone(&pki.server)), connector.connect(name, client));
    let (server, client) = (server.unwrap(), client.unwrap());
    assert_eq!(client.get_ref().1.protocol_version(), Some(version.version));
    (server, client)
}

async fn connected(version: &'static SupportedProtocolVersion) -> (TlsStream<TcpStream>, ClientStream<TcpStream>) {
    let (server, client) = tcp_pair(false).await;
    handshake(&pki(), version, server, client).await
}

/// Sizes and bytes from a seeded generator, so a failure reproduces.
struct Rng(StdRng);

impl Rng {
    fn seeded(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// A size from 1 to `n`.
    fn upto(&mut self, n: usize) -> usize {
        self.0.random_range(1..=n)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.0.fill(&mut bytes[..]);
        bytes
    }
}

async fn write_in_chunks<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8], rng: &mut Rng) {
    let mut at = 0;
    while at < data.len() {
        let end = (at + rng.upto(40_000)).min(data.len());
        w.write_all(&data[at..end]).await.unwrap();
        if rng.upto(4) == 1 {
            w.flush().await.unwrap();
        }
        at = end;
    }
    w.flush().await.unwrap();
}

async fn read_in_chunks<R: AsyncRead + Unpin>(r: &mut R, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let mut buf = vec![0; rng.upto(20_000)];
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "EOF after {} of {len} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Polls a read once the peer is quiet: it must find the socket empty.
async fn read_finds_nothing(server: &mut TlsStream<TcpStream>) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(50), server.read(&mut buf)).await;
    assert!(read.is_err(), "a read found data: {read:?}");
}

async fn a_mebibyte_each_way(version: &'static SupportedProtocolVersion) {
    const LEN: usize = 1 << 20;
    let (server, client) = connected(version).await;
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let (to_client, to_server) = (rng.bytes(LEN), rng.bytes(LEN));
    let (mut sr, mut sw) = tokio::io::split(server);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut r1, mut r2, mut r3, mut r4) = (Rng::seeded(1), Rng::seeded(2), Rng::seeded(3), Rng::seeded(4));
    let (_, _, at_client, at_server) = tokio::join!(
        write_in_chunks(&mut sw, &to_client, &mut r1),
        write_in_chunks(&mut cw, &to_server, &mut r2),
        read_in_chunks(&mut cr, LEN, &mut r3),
        read_in_chunks(&mut sr, LEN, &mut r4),
    );
    assert!(at_client == to_client, "the client got other bytes than the server sent");
    assert!(at_server == to_server, "the server got other bytes than the client sent");
    let mut server = sr.unsplit(sw);
    read_finds_nothing(&mut server).await;
    assert_eq!(server.capacities(), (0, 0, 0));
}

#[tokio::test]
async fn a_mebibyte_each_way_in_random_chunks_over_tls_1_3() {
    a_mebibyte_each_way(&version::TLS13).await;
}

#[tokio::test]
async fn a_mebibyte_each_way_in_random_chunks_over_tls_1_2() {
    a_mebibyte_each_way(&version::TLS12).await;
}

/// A client socket that writes one byte per TCP write.
struct OneByte(TcpStream);

impl AsyncRead for OneByte {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for OneByte {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, data.get(..1).unwrap_or(data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_client_writing_one_byte_per_tcp_write_is_served() {
    let pki = pki();
    for version in BOTH {
        let (server, client) = tcp_pair(false).await;
        client.set_nodelay(true).unwrap();
        let (mut server, mut client) = handshake(&pki, version, server, OneByte(client)).await;
        let sent = Rng::seeded(7).bytes(3000);
        let mut got = vec![0; sent.len()];
        let (written, read) = tokio::join!(
            async {
                client.write_all(&sent).await?;
                client.flush().await
            },
            server.read_exact(&mut got)
        );
        written.unwrap();
        read.unwrap();
        assert!(got == sent);
        server.write_all(b"answer").await.unwrap();
        server.flush().await.unwrap();
        let mut answer = [0u8; 6];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
    }
}

#[tokio::test]
async fn many_records_read_into_small_buffers_lose_no_byte() {
    for version in BOTH {
        let (mut server, mut client) = connected(version).await;
        let mut rng = Rng::seeded(11);
        let sent = rng.bytes(50_000);
        // Many small records back to back, then a few full ones.
        for piece in sent[..2000].chunks(10) {
            client.write_all(piece).await.unwrap();
        }
        client.write_all(&sent[2000..]).await.unwrap();
        client.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let mut buf = vec![0; rng.upto(7)];
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == sent);
    }
}

#[tokio::test]
async fn a_write_larger_than_a_record_is_cut_at_16_kib() {
    let (mut server, mut client) = connected(&version::TLS13).await;
    assert_eq!(server.write(&[7; 100_000]).await.unwrap(), MAX_FRAGMENT);
    server.flush().await.unwrap();
    let mut got = vec![0; MAX_FRAGMENT];
    client.read_exact(&mut got).await.unwrap();
    assert!(got.iter().all(|&b| b == 7));
}

#[tokio::test]
async fn a_writer_blocked_by_a_peer_not_reading_loses_nothing() {
    const LEN: usize = 2 << 20;
    let (server, client) = tcp_pair(true).await;
    let (mut server, mut client) = handshake(&pki(), &version::TLS13, server, client).await;
    let sent = Rng::seeded(5).bytes(LEN);
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&sent).await.unwrap();
        server.flush().await.unwrap();
        server
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "the writer should wait for the peer");
    let mut got = vec![0; LEN];
    client.read_exact(&mut got).await.unwrap();
    assert!(got == expected);
    let server = writer.await.unwrap();
    assert_eq!(server.capacities().1, 0, "a completed flush keeps no outgoing buffer");
}

#[tokio::test]
async fn the_buffers_exist_only_while_bytes_are_in_flight() {
    let (mut server, mut client) = connected(&version::TLS13).await;
    assert_eq!(server.capacities(), (0, 0, 0), "after the handshake");
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    read_finds_nothing(&mut server).await;
    assert_eq!(server.capacities(), (0, 0, 0), "after a read found the socket empty");
    let reply = vec![1; 100_000];
    let mut got = vec![0; reply.len()];
    let (written, read) = tokio::join!(
        async {
            server.write_all(&reply).await?;
            server.flush().await
        },
        client.read_exact(&mut got)
    );
    written.unwrap();
    read.unwrap();
    assert_eq!(server.capacities(), (0, 0, 0), "after a flush");
    // A reader that takes a record in two reads keeps the rest, then not.
    client.write_all(b"0123456789").await.unwrap();
    client.flush().await.unwrap();
    let mut half = [0u8; 5];
    server.read_exact(&mut half).await.unwrap();
    assert!(server.capacities().2 > 0);
    server.read_exact(&mut half).await.unwrap();
    assert_eq!(&half, b"56789");
    read_finds_nothing(&mut server).await;
    assert_eq!(server.capacities(), (0, 0, 0));
}

#[tokio::test]
async fn a_key_update_from_the_client_keeps_the_stream_going() {
    let (mut server, mut client) = connected(&version::TLS13).await;
    for round in 0..3u8 {
        client.write_all(&[round; 100]).await.unwrap();
        client.get_mut().1.refresh_traffic_keys().unwrap();
        client.write_all(&[round + 10; 100]).await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 200];
        server.read_exact(&mut got).await.unwrap();
        assert!(got[..100].iter().all(|&b| b == round) && got[100..].iter().all(|&b| b == round + 10));
        server.write_all(&[round; 50]).await.unwrap();
        server.flush().await.unwrap();
        let mut back = [0u8; 50];
        client.read_exact(&mut back).await.unwrap();
        assert!(back.iter().all(|&b| b == round));
    }
}

#[tokio::test]
async fn close_notify_ends_the_stream_both_ways() {
    for version in BOTH {
        // The client closes first: the server reads EOF, then answers.
        let (mut server, mut client) = connected(version).await;
        client.write_all(b"last").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last");
        server.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());

        // The server closes first: the client reads EOF; what it still
        // sends is dropped, and the server's read ends when it hangs up.
        let (mut server, mut client) = connected(version).await;
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        assert!(server.write(b"more").await.is_err(), "no write after shutdown");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        client.write_all(b"late").await.unwrap();
        client.shutdown().await.unwrap();
        let mut late = Vec::new();
        server.read_to_end(&mut late).await.unwrap();
        assert!(late.is_empty(), "after its close_notify the server reads nothing more: {late:?}");
    }
}

#[tokio::test]
async fn garbage_after_the_servers_close_notify_is_dropped_until_the_peer_hangs_up() {
    // rustls would answer a record it cannot open with a second fatal
    // alert after its close_notify, which a debug build asserts never
    // happens (found by the tls_stream fuzz target).
    for version in BOTH {
        let (mut server, mut client) = connected(version).await;
        server.shutdown().await.unwrap();
        let raw = &mut client.get_mut().0;
        raw.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).await.unwrap();
        raw.write_all(&[0xab; 0x20]).await.unwrap();
        raw.write_all(b"not even a record").await.unwrap();
        raw.shutdown().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(server.capacities(), (0, 0, 0));
    }
}

#[tokio::test]
async fn a_tcp_end_without_close_notify_is_an_unexpected_eof() {
    for version in BOTH {
        let (mut server, mut client) = connected(version).await;
        client.write_all(b"cut").await.unwrap();
        client.flush().await.unwrap();
        client.get_mut().0.shutdown().await.unwrap();
        let mut got = [0u8; 3];
        server.read_exact(&mut got).await.unwrap();
        let err = server.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

#[tokio::test]
async fn garbage_after_the_handshake_fails_the_read_after_an_alert() {
    let garbage: [&[u8]; 2] = [
        // An application-data record that does not decrypt.
        &[
            0x17, 0x03, 0x03, 0x00, 0x20, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
            0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
            0xab,
        ],
        // Not a record at all.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for version in BOTH {
        for bytes in garbage {
            let (mut server, mut client) = connected(version).await;
            client.get_mut().0.write_all(bytes).await.unwrap();
            let err = server.read(&mut [0u8; 64]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(server.read(&mut [0u8; 64]).await.is_err(), "a failed stream stays failed");
            assert!(server.write(b"x").await.is_err());
            drop(server);
            let alert = client.read(&mut [0u8; 64]).await.unwrap_err();
            assert!(alert.to_string().contains("alert"), "{version:?} {alert}");
        }
    }
}

/// Sends `bytes` as a raw client and returns the server's handshake error
/// and what the client received before the server closed.
async fn raw_handshake(bytes: Vec<u8>) -> (io::Error, Vec<u8>) {
    let (server, mut client) = tcp_pair(false).await;
    let pki = pki();
    let (mut reader, mut writer) = client.split();
    let (accepted, (), answer) = tokio::join!(
        accept(server, Arc::clone(&pki.server)),
        async {
            // The server may close before it has taken everything; an
            // input it is still waiting on ends with the client's FIN.
            let _ = writer.write_all(&bytes).await;
            let _ = writer.shutdown().await;
        },
        async {
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer).await;
            answer
        }
    );
    let Err(err) = accepted else { panic!("the handshake succeeded") };
    (err, answer)
}

#[tokio::test]
async fn a_client_hello_over_the_limit_is_refused() {
    // A ClientHello announcing 1 MiB, in one record: refused at once
    // (rustls makes no alert for this one).
    let mut big = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x10, 0x00, 0x00];
    big.resize(5 + 0x4000, 0);
    let (err, _) = raw_handshake(big).await;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("HandshakePayloadTooLarge"), "{err}");

    // A record announcing more than TLS allows: a fatal decode_error alert.
    let (err, answer) = raw_handshake(vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01]).await;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert_eq!(answer, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);

    // A ClientHello of the largest size rustls allows, one byte per record:
    // the framing alone is six times that, and the buffer stops it.
    let mut hello = vec![0x01, 0x00, 0xff, 0xff];
    hello.resize(4 + 0xffff, 0);
    let fragmented: Vec<u8> = hello.iter().flat_map(|&b| [0x16, 0x03, 0x01, 0x00, 0x01, b]).collect();
    let (err, _) = raw_handshake(fragmented).await;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("buffer limit"), "{err}");
}

#[tokio::test]
async fn random_bytes_in_the_handshake_end_in_an_error_never_a_panic_or_a_hang() {
    let mut rng = Rng::seeded(0x5eed_cafe_f00d);
    for case in 0..200 {
        let len = rng.upto(3_000);
        let mut bytes = rng.bytes(len);
        // Most cases open like a handshake record (and some like a
        // ClientHello in it), so rustls parses further in.
        match case % 4 {
            0 => {}
            1 => drop(bytes.splice(0..0, [0x16, 0x03, 0x01])),
            _ => drop(bytes.splice(0..0, [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])),
        }
        let outcome = tokio::time::timeout(Duration::from_secs(10), raw_handshake(bytes)).await;
        let Ok((err, _)) = outcome else { panic!("case {case}: the handshake hung") };
        assert!(matches!(err.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof), "case {case}: {err}");
    }
}
