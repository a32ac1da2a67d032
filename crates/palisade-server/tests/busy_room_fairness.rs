//! A busy room cannot starve a member's own frames: the connection reads its
//! socket at least once per outbound burst, so a `leave` sent while the
//! room's events pile up is answered within a burst, not after the backlog.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PUBLISHERS: usize = 3;
const PER_PUBLISHER: usize = 40;
/// Events the member has queued when it sends `leave`.
const FLOOD: usize = PUBLISHERS * PER_PUBLISHER;
/// Large events, so the kernel's socket buffers (a few MiB on loopback)
/// hold only a few of them and most of the backlog waits in the server's
/// queue, where the old loop kept it ahead of the member's `leave`.
const BLOB_BYTES: usize = 256 * 1024;

const CONFIG: &str = r#"
[limits]
max_message_bytes = 300000
max_write_buffer_bytes = 1048576
# The member does not read while the backlog builds: its writes may block
# that long without it counting as a slow consumer.
heartbeat_timeout = "120s"

[roles.user]
permissions = ["bulk:send"]
[rooms.busy]
[events."bulk"]
permission = "bulk:send"
"#;

/// A member whose socket has a small receive buffer (no autotuning), so
/// the backlog stays on the server.
async fn connect_narrow(server: &TestServer, token: &str) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut req = server.url().into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws
}

#[tokio::test]
async fn a_flooded_member_gets_its_leave_acked_within_a_burst_and_stays_connected() {
    let server = TestServer::start_lenient(CONFIG).await;
    let mut member = connect_narrow(&server, &token("member", &[])).await;
    join(&mut member, "busy").await;

    // Three publishers each publish PER_PUBLISHER large events, pipelined,
    // while reading everything they are sent; the member reads nothing.
    let blob = "x".repeat(BLOB_BYTES);
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let (mut ws, _) = connect(&server, &token(&format!("pub{p}"), &[])).await;
        join(&mut ws, "busy").await;
        let (mut sink, mut stream) = ws.split();
        let blob = blob.clone();
        let writer = tokio::spawn(async move {
            use futures_util::SinkExt as _;
            for i in 0..PER_PUBLISHER {
                let frame =
                    json!({"type":"send","id":format!("{p}-{i}"),"room":"busy","event":"bulk","data":{"blob":blob}});
                sink.send(frame.to_string().into()).await.unwrap();
            }
            sink
        });
        publishers.push(tokio::spawn(async move {
            let mut acks = 0;
            while acks < PER_PUBLISHER {
                let msg = tokio::time::timeout(WAIT, stream.next()).await.expect("frame in time").unwrap().unwrap();
                let Message::Text(text) = msg else { continue };
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                match frame["type"].as_str() {
                    Some("ack") => acks += 1,
                    Some("event") => {}
                    _ => panic!("publisher {p} got {frame}"),
                }
            }
            (writer.await.unwrap(), stream)
        }));
    }
    // Every event is published (acked), so the member's backlog is FLOOD
    // events: a few in the kernel's buffers, the rest in its queue.
    let mut keep = Vec::new();
    for p in publishers {
        keep.push(p.await.unwrap());
    }

    send_json(&mut member, json!({"type":"leave","id":"bye","room":"busy"})).await;
    let mut before_ack = 0;
    loop {
        let frame = next_json(&mut member).await;
        match frame["type"].as_str() {
            Some("event") => before_ack += 1,
            Some("ack") => {
                assert_eq!(frame["id"], "bye");
                break;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    // The old loop wrote the whole backlog before reading the socket, so
    // the ack came after all FLOOD events; now it overtakes the queue after
    // at most what the kernel holds plus one burst (64 events).
    assert!(before_ack < FLOOD, "the leave was acked only after the whole backlog ({before_ack} events)");
    // The events queued before the leave still arrive, then nothing more.
    let mut after_ack = 0;
    while before_ack + after_ack < FLOOD {
        let frame = next_json(&mut member).await;
        assert_eq!(frame["type"], "event", "{frame}");
        after_ack += 1;
    }
    // Still connected and answered.
    let reply = request(&mut member, json!({"type":"leave","id":"again","room":"busy"})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("not_member")), "{reply}");
    drop(keep);
}
