//! A client tries to exhaust the server: huge frames, binary junk, broken
//! UTF-8, never reading, never answering pings, half-sent handshakes.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn a_frame_one_byte_over_the_limit_closes_with_1009() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    // Exactly at the limit: read and answered (it is not a valid request).
    ws.send(Message::Text("x".repeat(65536).into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "bad_request");
    ws.send(Message::Text("x".repeat(65537).into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1003));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1007));
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_with_4009_while_others_keep_receiving() {
    // Large events without a schema, so the queue fills fast.
    let server = TestServer::start_lenient(
        "[limits]\noutbound_queue = 8\nclose_timeout = \"20s\"\n[events.\"chat.message\"]\npermission = \"chat:send\"\n",
    )
    .await;
    // The slow client's receive buffer is tiny, so the server's socket
    // fills quickly once it stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut req = server.url().into_client_request().unwrap();
    let bearer = format!("Bearer {}", token("slow", &[]));
    req.headers_mut().insert("authorization", HeaderValue::from_str(&bearer).unwrap());
    let (mut slow, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    assert_eq!(next_json(&mut slow).await["type"], "welcome");
    join(&mut slow, "lobby").await;

    const EVENTS: usize = 400;
    let (mut fast, _) = connect(&server, &token("fast", &[])).await;
    join(&mut fast, "lobby").await;
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < EVENTS {
            if next_json(&mut fast).await["type"] == "event" {
                got += 1;
            }
        }
        got
    });

    let (mut publisher, _) = connect(&server, &token("pub", &[])).await;
    join(&mut publisher, "lobby").await;
    let content = "y".repeat(30_000);
    for i in 0..EVENTS {
        let ack = request(
            &mut publisher,
            json!({"type":"send","id":i.to_string(),"room":"lobby","event":"chat.message","data":{"content":content}}),
        )
        .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    assert_eq!(tokio::time::timeout(WAIT, reader).await.unwrap().unwrap(), EVENTS);
    // Now the slow client reads: whatever was buffered, then the close.
    assert_eq!(close_code(&mut slow).await, Some(4009));
}

#[tokio::test]
async fn a_client_that_ignores_pings_is_dropped_and_one_that_answers_is_kept() {
    let server = TestServer::start("[limits]\nheartbeat_interval = \"200ms\"\nheartbeat_timeout = \"200ms\"\n").await;
    let (mut deaf, _) = connect(&server, &token("deaf", &[])).await;
    let (mut alive, _) = connect(&server, &token("alive", &[])).await;
    // `alive` keeps reading (so its client answers pings); `deaf` does not.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut pings = 0;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, alive.next()).await {
        if matches!(msg, Message::Ping(_)) {
            pings += 1;
        }
    }
    assert!(pings >= 2, "expected pings, got {pings}");
    join(&mut alive, "lobby").await;
    // The deaf client only finds buffered pings and then the end.
    assert_eq!(close_code(&mut deaf).await, None);
}

#[tokio::test]
async fn a_half_sent_handshake_is_cut_off() {
    let server = TestServer::start("[server]\nhandshake_timeout = \"300ms\"\nfirst_byte_timeout = \"300ms\"\n").await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    // Without the handshake timeout this read would wait forever.
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf)).await.expect("server hangs up in time");
    // Whatever it answers (a 408 or nothing), it is never an upgrade.
    assert!(!String::from_utf8_lossy(&buf).contains("101"), "{}", String::from_utf8_lossy(&buf));
}

#[tokio::test]
async fn beyond_max_connections_upgrades_get_503() {
    let server = TestServer::start("[limits]\nmax_connections = 2\n").await;
    let (_a, _) = connect(&server, &token("a", &[])).await;
    let (mut b, _) = connect(&server, &token("b", &[])).await;
    let refused = dial(&server, Dial { bearer: Some(&token("c", &[])), ..Dial::default() }).await;
    assert_eq!(refused.err().map(|e| e.0), Some(503));
    // A slot frees when a connection closes.
    b.close(None).await.unwrap();
    while b.next().await.is_some() {}
    let mut admitted = false;
    for _ in 0..50 {
        if dial(&server, Dial { bearer: Some(&token("c", &[])), ..Dial::default() }).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "slot was not released");
}

#[tokio::test]
async fn shutdown_closes_clients_with_1001() {
    let mut server = TestServer::start("").await;
    let (mut a, _) = connect(&server, &token("a", &[])).await;
    let (mut b, _) = connect(&server, &token("b", &[])).await;
    let closing = tokio::spawn(async move { (close_code(&mut a).await, close_code(&mut b).await) });
    server.shutdown().await;
    assert_eq!(closing.await.unwrap(), (Some(1001), Some(1001)));
}
