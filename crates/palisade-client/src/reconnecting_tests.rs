//! The state machine against fake servers on loopback, on tokio's paused
//! clock (a real server's paths are in palisade-server's tests/rust_client.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside #[test] functions panic on setup failures by design.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;

use super::driver::jwt_exp_ms;
use super::*;

type Peer = WebSocketStream<TcpStream>;

/// A listener that upgrades every connection and hands it to the test.
async fn fake() -> (String, mpsc::UnboundedReceiver<Peer>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                let _ = tx.send(ws);
            }
        }
    });
    (url, rx)
}

fn options(url: &str) -> ReconnectOptions {
    ReconnectOptions { seed: Some(7), ..ReconnectOptions::new(url) }
}

fn fixed_token() -> impl TokenSource {
    || async { Ok::<_, std::io::Error>("header.payload.sig".to_owned()) }
}

async fn welcome(peer: &mut Peer) {
    let w = json!({"type": "welcome", "session": "s_x", "user": {"id": "u", "name": "u", "roles": []},
                   "csrf": "c1", "heartbeat_ms": 20000, "max_message_bytes": 65536, "expires_at": 0});
    peer.send(Message::Text(w.to_string().into())).await.unwrap();
}

/// The next text frame from the client as JSON.
async fn next(peer: &mut Peer) -> Value {
    loop {
        match peer.next().await.expect("client still there").unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(_) => panic!("client closed"),
            _ => {}
        }
    }
}

async fn reply(peer: &mut Peer, v: Value) {
    peer.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_then_kicks_gets_backoff_not_a_fast_loop() {
    let (url, mut peers) = fake().await;
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Some(mut peer) = peers.recv().await {
            counted.fetch_add(1, Ordering::SeqCst);
            // The upgrade succeeds, then the server goes away before welcome.
            let frame = CloseFrame { code: CloseCode::Error, reason: "kick".into() };
            let _ = peer.close(Some(frame)).await;
        }
    });
    let (client, mut notes) = ReconnectingClient::new(options(&url), fixed_token());
    let c = client.clone();
    tokio::spawn(async move {
        let _ = c.connect().await;
    });
    let mut attempts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Ok(Some(n)) = tokio::time::timeout_at(deadline, notes.recv()).await {
        if let Notification::Reconnecting { attempt, code, .. } = n {
            assert_eq!(code, 1011);
            attempts.push(attempt);
        }
    }
    // Two minutes: a reset on every upgrade would retry within 500 ms each
    // time (hundreds); the growing window allows about a dozen.
    let n = count.load(Ordering::SeqCst);
    assert!((3..=20).contains(&n), "{n} connections in two minutes");
    assert!(attempts.windows(2).all(|w| w[1] == w[0] + 1), "never reset without welcome: {attempts:?}");
    assert_eq!(client.state(), State::Disconnected);
    client.close().await;
    assert_eq!(client.state(), State::Closed);
}

// On real time: the paused clock jumps to the message's deadline whenever
// the runtime waits on the sockets alone, which a resend in flight always is.
#[tokio::test]
async fn a_message_whose_answer_was_lost_is_resent_after_the_rejoin_with_the_same_cid_and_resolves() {
    let (url, mut peers) = fake().await;
    let (client, _notes) = ReconnectingClient::new(options(&url), fixed_token());
    let server = tokio::spawn(async move {
        let mut first = peers.recv().await.unwrap();
        welcome(&mut first).await;
        let join = next(&mut first).await;
        reply(&mut first, json!({"type": "ack", "id": join["id"], "seq": 5})).await;
        let sent = next(&mut first).await;
        assert_eq!((sent["type"].as_str(), sent["data"]["n"].as_u64()), (Some("send"), Some(1)));
        let cid = sent["cid"].as_str().unwrap().to_owned();
        assert!(cid.len() == 32 && cid.bytes().all(|b| b.is_ascii_hexdigit()), "{cid}");
        // The socket drops before the ack.
        drop(first);
        let mut second = peers.recv().await.unwrap();
        welcome(&mut second).await;
        // The room is recovered first, then the message goes out again.
        let recover = next(&mut second).await;
        assert_eq!(recover["type"], "recover", "{recover}");
        reply(&mut second, json!({"type": "ack", "id": recover["id"], "seq": 9, "complete": true})).await;
        let again = next(&mut second).await;
        assert_eq!((again["type"].as_str(), again["data"]["n"].as_u64()), (Some("send"), Some(1)));
        assert_eq!(again["cid"].as_str(), Some(cid.as_str()), "the same cid");
        assert_ne!(again["id"], sent["id"], "a new request id");
        // Still being published: no seq yet; the client asks again shortly.
        reply(&mut second, json!({"type": "ack", "id": again["id"], "duplicate": true})).await;
        let third = next(&mut second).await;
        assert_eq!(third["cid"].as_str(), Some(cid.as_str()));
        reply(&mut second, json!({"type": "ack", "id": third["id"], "seq": 6, "duplicate": true})).await;
        // A new message has a cid of its own.
        let other = next(&mut second).await;
        assert_eq!(other["data"]["n"], 2, "{other}");
        assert_ne!(other["cid"].as_str(), Some(cid.as_str()));
        reply(&mut second, json!({"type": "ack", "id": other["id"], "seq": 10})).await;
        second
    });
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let resent = client.publish("lobby", "chat.message", json!({"n": 1})).await.unwrap();
    assert_eq!(resent, Published { seq: 6 }, "the first copy's seq");
    let ok = client.publish("lobby", "chat.message", json!({"n": 2})).await.unwrap();
    assert_eq!(ok, Published { seq: 10 });
    let _second = server.await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn a_lost_answer_is_not_resent_past_the_client_id_window() {
    let (url, mut peers) = fake().await;
    let opts = ReconnectOptions {
        client_id_window: Duration::from_millis(500),
        send_timeout: Duration::from_secs(60),
        ..options(&url)
    };
    let (client, _notes) = ReconnectingClient::new(opts, fixed_token());
    let server = tokio::spawn(async move {
        let mut first = peers.recv().await.unwrap();
        welcome(&mut first).await;
        let sent = next(&mut first).await;
        assert_eq!(sent["data"]["n"], 1);
        drop(first);
        let mut second = peers.recv().await.unwrap();
        // The server is slow to welcome: the window passes meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        welcome(&mut second).await;
        // The next frame is the second message, never the first again.
        let sent = next(&mut second).await;
        assert_eq!(sent["data"]["n"], 2, "{sent}");
        reply(&mut second, json!({"type": "ack", "id": sent["id"], "seq": 9})).await;
        second
    });
    client.connect().await.unwrap();
    let lost = client.publish("lobby", "chat.message", json!({"n": 1})).await;
    assert!(matches!(lost, Err(ClientError::Disconnected)), "{lost:?}");
    assert_eq!(lost.unwrap_err().code(), "disconnected");
    let ok = client.publish("lobby", "chat.message", json!({"n": 2})).await.unwrap();
    assert_eq!(ok, Published { seq: 9 });
    let _second = server.await.unwrap();
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn events_are_delivered_once_per_seq_and_refusals_carry_their_fields() {
    let (url, mut peers) = fake().await;
    let (client, mut notes) = ReconnectingClient::new(options(&url), fixed_token());
    let server = tokio::spawn(async move {
        let mut peer = peers.recv().await.unwrap();
        welcome(&mut peer).await;
        let join = next(&mut peer).await;
        assert_eq!(join["type"], "join");
        reply(&mut peer, json!({"type": "ack", "id": join["id"], "seq": 10})).await;
        for seq in [11, 11, 10, 12, 12, 13] {
            let e = json!({"type": "event", "room": "lobby", "seq": seq, "event": "chat.message",
                           "from": {"id": "bob", "name": "Bob"}, "data": {"seq": seq}, "ts": 1});
            reply(&mut peer, e).await;
        }
        let send = next(&mut peer).await;
        assert_eq!((send["csrf"].as_str(), send["nonce"].as_str().map(str::len)), (Some("c1"), Some(32)));
        reply(
            &mut peer,
            json!({"type": "error", "id": send["id"], "code": "invalid_payload", "message": "invalid payload",
                   "path": "/content", "ref": "r_1"}),
        )
        .await;
        peer
    });
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let e = notes.next_event().await.unwrap();
        assert_eq!((e.from.id.as_str(), e.data["seq"].as_u64()), ("bob", Some(e.seq)));
        seqs.push(e.seq);
    }
    assert_eq!(seqs, [11, 12, 13]);
    let err = client.publish("lobby", "chat.message", json!({"content": ""})).await.unwrap_err();
    assert_eq!((err.code(), err.path(), err.reference()), ("invalid_payload", Some("/content"), Some("r_1")));
    let _peer = server.await.unwrap();
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn the_offline_queue_is_bounded_and_what_is_not_sent_in_time_fails() {
    // Nothing listens: the client is never connected.
    let opts = ReconnectOptions { max_queue: 2, ..options("ws://127.0.0.1:9/ws") };
    let (client, _notes) = ReconnectingClient::new(opts, fixed_token());
    let publish = |n: u64| client.publish("lobby", "chat.message", json!({"n": n}));
    let (a, b, c) = tokio::join!(publish(1), publish(2), async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        publish(3).await
    });
    assert!(matches!(c, Err(ClientError::QueueFull)), "{c:?}");
    assert!(matches!(a, Err(ClientError::Timeout)), "{a:?}");
    assert!(matches!(b, Err(ClientError::Timeout)), "{b:?}");
    client.close().await;
    let after = client.publish("lobby", "chat.message", json!({})).await;
    assert!(matches!(after, Err(ClientError::ClientClosed { code: None })), "{after:?}");
}

/// An unsigned JWT-shaped token with `exp` (seconds) and a marker.
fn jwt(exp: u64, n: usize) -> String {
    use base64::Engine as _;
    let claims = json!({"exp": exp, "n": n}).to_string();
    format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims))
}

#[tokio::test(start_paused = true)]
async fn expiring_brings_one_refresh_at_a_time_with_a_token_that_outlives_it() {
    let (url, mut peers) = fake().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let tokens = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            // A slow token source: notices keep coming meanwhile.
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, std::io::Error>(jwt(1000 + n as u64 * 100, n))
        }
    };
    let (client, _notes) = ReconnectingClient::new(options(&url), tokens);
    let server = tokio::spawn(async move {
        let mut peer = peers.recv().await.unwrap();
        welcome(&mut peer).await;
        // Three notices for the same token, at once: one refresh.
        for _ in 0..3 {
            reply(&mut peer, json!({"type": "expiring", "expires_at": 1_000_000})).await;
        }
        let refresh = next(&mut peer).await;
        assert_eq!(refresh["type"], "refresh");
        assert_eq!(jwt_exp_ms(refresh["token"].as_str().unwrap()), Some(1_100_000));
        // A notice for the new token while the refresh is unanswered: no
        // second refresh until the ack.
        reply(&mut peer, json!({"type": "expiring", "expires_at": 1_100_000})).await;
        let quiet = tokio::time::timeout(Duration::from_secs(5), next(&mut peer)).await;
        assert!(quiet.is_err(), "a second refresh before the ack: {quiet:?}");
        reply(&mut peer, json!({"type": "ack", "id": refresh["id"]})).await;
        let again = next(&mut peer).await;
        assert_eq!(again["type"], "refresh");
        assert_eq!(jwt_exp_ms(again["token"].as_str().unwrap()), Some(1_200_000));
        peer
    });
    client.connect().await.unwrap();
    let _peer = server.await.unwrap();
    // One token to connect, one per refresh.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_reconnect_rooms_recover_from_the_last_seq_and_replays_are_not_delivered_twice() {
    let (url, mut peers) = fake().await;
    let (client, mut notes) = ReconnectingClient::new(options(&url), fixed_token());
    let event = |seq: u64| {
        json!({"type": "event", "room": "lobby", "seq": seq, "event": "e", "from": {"id": "b", "name": "b"},
               "data": {}, "ts": 1})
    };
    let server = tokio::spawn(async move {
        let mut first = peers.recv().await.unwrap();
        welcome(&mut first).await;
        let join = next(&mut first).await;
        reply(&mut first, json!({"type": "ack", "id": join["id"], "seq": 20})).await;
        reply(&mut first, event(21)).await;
        reply(&mut first, event(22)).await;
        // Going away (a restart).
        let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
        first.close(Some(frame)).await.unwrap();
        let mut second = peers.recv().await.unwrap();
        welcome(&mut second).await;
        let recover = next(&mut second).await;
        assert_eq!((recover["type"].as_str(), recover["since"].as_u64()), (Some("recover"), Some(22)), "{recover}");
        // A replay overlapping what was seen, then the ack.
        for seq in [22, 23] {
            reply(&mut second, event(seq)).await;
        }
        reply(&mut second, json!({"type": "ack", "id": recover["id"], "seq": 23, "complete": true})).await;
        reply(&mut second, event(23)).await;
        reply(&mut second, event(24)).await;
        second
    });
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let mut seen = Vec::new();
    let mut recovered = None;
    while seen.len() < 4 {
        match notes.recv().await.unwrap() {
            Notification::Event(e) => seen.push(e.seq),
            Notification::Reconnecting { code, .. } => assert_eq!(code, 1001),
            Notification::Recovered { room, complete, seq } => recovered = Some((room, complete, seq)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [21, 22, 23, 24]);
    assert_eq!(recovered, Some(("lobby".to_owned(), true, 23)));
    let _second = server.await.unwrap();
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_close_waits_at_least_the_servers_last_hint() {
    let (url, mut peers) = fake().await;
    let (client, mut notes) = ReconnectingClient::new(options(&url), fixed_token());
    let server = tokio::spawn(async move {
        let mut peer = peers.recv().await.unwrap();
        welcome(&mut peer).await;
        let send = next(&mut peer).await;
        let limited = json!({"type": "error", "id": send["id"], "code": "rate_limited", "message": "slow down",
                             "retry_after_ms": 7000, "ref": "r_2"});
        reply(&mut peer, limited).await;
        let frame = CloseFrame { code: CloseCode::Library(4009), reason: "slow consumer".into() };
        peer.close(Some(frame)).await.unwrap();
        peer
    });
    client.connect().await.unwrap();
    let err = client.publish("lobby", "chat.message", json!({})).await.unwrap_err();
    assert_eq!((err.code(), err.retry_after()), ("rate_limited", Some(Duration::from_secs(7))));
    match notes.recv().await.unwrap() {
        Notification::Reconnecting { code, delay, .. } => {
            assert_eq!(code, 4009);
            assert!(delay >= Duration::from_secs(7), "{delay:?}");
        }
        other => panic!("{other:?}"),
    }
    let _peer = server.await.unwrap();
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_handshake_refused_with_retry_after_is_not_retried_before_it() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A raw HTTP answer: the first handshake gets 503 with `Retry-After: 9`
    // (the real server's 429 is in palisade-server's tests/rust_client.rs).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (client, mut notes) = ReconnectingClient::new(options(&url), fixed_token());
    let c = client.clone();
    tokio::spawn(async move {
        let _ = c.connect().await;
    });
    let (mut tcp, _) = listener.accept().await.unwrap();
    let refused_at = Instant::now();
    let mut request = [0u8; 4096];
    let _ = tcp.read(&mut request).await.unwrap();
    let answer = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 9\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    tcp.write_all(answer.as_bytes()).await.unwrap();
    drop(tcp);
    match notes.recv().await.unwrap() {
        Notification::Reconnecting { code, delay, reason, .. } => {
            assert_eq!(code, 4029, "{reason}");
            assert!(delay >= Duration::from_secs(9), "{delay:?}");
        }
        other => panic!("{other:?}"),
    }
    let _second = listener.accept().await.unwrap();
    assert!(refused_at.elapsed() >= Duration::from_secs(9), "{:?}", refused_at.elapsed());
    client.close().await;
}
