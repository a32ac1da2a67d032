use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream, duplex};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;

use super::*;

const SETTINGS: Settings =
    Settings { limits: Limits { max_frame: 1024, max_message: 4096 }, read_chunk: 256, max_frame_out: 2048 };

/// A masked client frame with FIN set.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut out = vec![0x80 | opcode, 0x80 | u8::try_from(payload.len()).unwrap()];
    out.extend_from_slice(&key);
    out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

/// The server socket on one end of an in-memory pipe of `capacity` bytes,
/// the raw client on the other.
fn pair(capacity: usize) -> (Ws<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(capacity);
    (Ws::new(server, SETTINGS), client)
}

async fn read_exactly(client: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    client.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn a_message_is_read_and_the_buffers_are_released_while_idle() {
    let (mut ws, mut client) = pair(4096);
    client.write_all(&client_frame(0x1, b"hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("hello".into()));
    ws.send(Message::Text(Utf8Bytes::from_static("hi"))).await.unwrap();
    assert_eq!(read_exactly(&mut client, 4).await, [0x81, 2, b'h', b'i']);
    // Nothing more to read: the poll finds the socket empty and drops both
    // buffers.
    assert!(futures_util::poll!(ws.next()).is_pending());
    assert_eq!((ws.inbox.capacity(), ws.outbox.capacity()), (0, 0));
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_and_still_reported() {
    let (mut ws, mut client) = pair(4096);
    client.write_all(&client_frame(0x9, b"are you there")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Ping("are you there".into()));
    // The pong leaves on the next poll, before anything more is read.
    assert!(futures_util::poll!(ws.next()).is_pending());
    let pong = read_exactly(&mut client, 15).await;
    assert_eq!(&pong[..2], [0x8A, 13]);
    assert_eq!(&pong[2..], b"are you there");
}

#[tokio::test]
async fn the_peers_close_is_echoed_and_ends_the_stream() {
    let (mut ws, mut client) = pair(4096);
    client.write_all(&client_frame(0x8, &[0x03, 0xE8, b'b', b'y', b'e'])).await.unwrap();
    let Message::Close(Some(frame)) = ws.next().await.unwrap().unwrap() else { panic!("not a close") };
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1000, "bye"));
    assert!(ws.next().await.is_none(), "the stream ends once the reply is out");
    assert_eq!(read_exactly(&mut client, 4).await, [0x88, 2, 0x03, 0xE8]);
    assert!(matches!(ws.send(Message::text("late")).await, Err(SocketError::Closed)));
}

#[tokio::test]
async fn a_close_the_server_starts_ends_when_the_peer_answers() {
    let (mut ws, mut client) = pair(4096);
    ws.close(CloseFrame { code: WireCloseCode::from(4009), reason: "slow".into() }).await.unwrap();
    assert_eq!(read_exactly(&mut client, 8).await, [0x88, 6, 0x0F, 0xA9, b's', b'l', b'o', b'w']);
    // What the peer sent before its close is still read, then its close.
    client.write_all(&client_frame(0x1, b"x")).await.unwrap();
    client.write_all(&client_frame(0x8, &[0x0F, 0xA9])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("x".into()));
    assert!(matches!(ws.next().await.unwrap().unwrap(), Message::Close(Some(_))));
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn a_violation_is_an_error_and_then_the_end() {
    let (mut ws, mut client) = pair(4096);
    // An unmasked frame.
    client.write_all(&[0x81, 0x01, b'x']).await.unwrap();
    let Some(Err(SocketError::Violation(v))) = ws.next().await else { panic!("no violation") };
    assert_eq!(v, Violation::Unmasked);
    assert!(ws.next().await.is_none());
    // The connection still fails with its close frame.
    ws.close(CloseFrame { code: WireCloseCode::from(1002), reason: "".into() }).await.unwrap();
    assert_eq!(read_exactly(&mut client, 4).await, [0x88, 2, 0x03, 0xEA]);
}

#[tokio::test]
async fn a_frame_over_the_write_limit_is_refused_before_it_is_queued() {
    let (mut ws, _client) = pair(4096);
    let big = Message::Binary(vec![0; 2049].into());
    assert!(matches!(ws.send(big).await, Err(SocketError::TooLargeToSend(2049))));
    assert!(ws.outbox.is_empty());
}

#[tokio::test]
async fn a_peer_that_pings_without_reading_stops_being_read() {
    // A pipe that holds 1 KiB: the pongs fill it and then the outbox.
    let (mut ws, mut client) = pair(1024);
    let ping = client_frame(0x9, &[7; 125]);
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            if client.write_all(&ping).await.is_err() {
                break;
            }
        }
        client
    });
    let mut pings = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(std::time::Duration::from_millis(200), ws.next()).await {
        assert!(matches!(msg.unwrap(), Message::Ping(_)));
        pings += 1;
    }
    assert!(pings < 1000, "every ping was read although no pong was");
    assert!(ws.outbox.len() < FLUSH_AT + 2 * 127, "queued pongs: {}", ws.outbox.len());
    writer.abort();
}
