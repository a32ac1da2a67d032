//! The reconnecting Rust client (`palisade_client::ReconnectingClient`)
//! against a real server over real sockets: every close code Palisade sends
//! drives it as the protocol says, a 429's `Retry-After` holds its next
//! attempt back, and a cookie session echoes the CSRF token through its
//! rotations and reconnects; on the server's virtual clock where a token's
//! lifetime or a rotation is the subject.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside #[test] functions panic on setup failures by design.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::auth::{ADMIN_KEY, Call, PASSWORD, add_user, call, call_at, with_admin_key};
use common::*;
use palisade_client::{
    ClientError, Notification, Notifications, ReconnectOptions, ReconnectingClient, State, TokenSource,
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

/// `[server] listen` on a port picked now, so a restart comes back where
/// the client reconnects.
fn fixed_port() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    format!("[server]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// Options for `server`, from loopback address `from` (each test its own,
/// so per-address limits and bans stay with it).
fn options(server: &TestServer, from: [u8; 4]) -> ReconnectOptions {
    ReconnectOptions {
        bind: Some(IpAddr::V4(Ipv4Addr::from(from))),
        seed: Some(u64::from(from[2])),
        ..ReconnectOptions::new(server.url())
    }
}

/// A token source minting for `sub` on the server's clock: the wall time
/// at the test's start plus the (possibly virtual) time since. Counts calls;
/// `ttl(n)` is the lifetime of the `n`-th token.
fn minter(
    sub: &'static str,
    ttl: impl Fn(usize) -> u64 + Send + Sync + 'static,
) -> (impl TokenSource, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let (wall, start) = (unix_now(), Instant::now());
    let source = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let exp = wall + start.elapsed().as_secs() + ttl(n);
        let claims = json!({"sub": sub, "name": sub, "exp": exp, "iss": "palisade", "aud": "palisade", "n": n});
        let token = sign(&claims, SECRET);
        async move { Ok::<_, std::io::Error>(token) }
    };
    (source, calls)
}

fn long_lived(sub: &'static str) -> impl TokenSource {
    minter(sub, |_| 3600).0
}

/// The next notification that is not an event.
async fn next_notice(notes: &mut Notifications) -> Notification {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(600), notes.recv()).await.expect("in time").expect("open");
        if !matches!(n, Notification::Event(_)) {
            return n;
        }
    }
}

#[tokio::test]
async fn connect_join_publish_ack_and_each_event_once() {
    let server = TestServer::start_lenient("").await;
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 31, 1]), long_lived("alice"));
    assert_eq!(client.state(), State::Disconnected);
    client.connect().await.unwrap();
    assert_eq!(client.state(), State::Connected);
    client.join("lobby").await.unwrap();
    let mut acked = Vec::new();
    for n in 0..3 {
        let published = client.publish("lobby", "chat.message", json!({"content": format!("hi {n}")})).await.unwrap();
        acked.push(published.seq);
    }
    // The sender receives its own events, each once, with seq and from.
    for (n, seq) in acked.iter().enumerate() {
        let e = notes.next_event().await.unwrap();
        assert_eq!((e.seq, e.from.id.as_str(), e.data["content"].as_str()), (*seq, "alice", Some(&*format!("hi {n}"))));
    }
    // Refusals carry the server's code, path and reference.
    let err = client.publish("lobby", "chat.message", json!({"content": ""})).await.unwrap_err();
    assert_eq!((err.code(), err.path()), ("invalid_payload", Some("/content")));
    assert!(err.reference().is_some_and(|r| r.starts_with("r_")), "{err:?}");
    let err = client.publish("lobby", "no.such.event", json!({})).await.unwrap_err();
    assert_eq!(err.code(), "unknown_event");
    client.close().await;
    assert_eq!(client.state(), State::Closed);
}

const SHORT_TOKENS: &str = "[limits]\nheartbeat_interval = \"1h\"\n[auth]\nexpiry_notice = \"60s\"\nleeway = \"30s\"\n";

#[tokio::test(start_paused = true)]
async fn the_token_is_refreshed_in_band_before_expiry_and_the_connection_stays() {
    let server = TestServer::start_lenient(SHORT_TOKENS).await;
    let (tokens, calls) = minter("alice", |_| 300);
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 32, 1]), tokens);
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    // Twenty minutes of virtual time: four token lifetimes.
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(client.state(), State::Connected);
    let published = client.publish("lobby", "chat.message", json!({"content": "still here"})).await.unwrap();
    // Nothing but our own event came: no reconnect, no error.
    match notes.recv().await.unwrap() {
        Notification::Event(e) => assert_eq!(e.seq, published.seq),
        other => panic!("expected only the event, got {other:?}"),
    }
    assert!(calls.load(Ordering::SeqCst) >= 5, "one token to connect and one per refresh");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_4001_then_a_fresh_token_reconnects_and_rejoins() {
    let server = TestServer::start_lenient(SHORT_TOKENS).await;
    // The first token lives 300 s; the token source then only has that
    // one's like (a refresh that would not outlive the notice is not sent),
    // so the server closes with 4001; after it, long-lived tokens.
    let (tokens, calls) = minter("alice", |n| match n {
        0 => 300,
        1 => 1,
        _ => 3600,
    });
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 33, 1]), tokens);
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    match next_notice(&mut notes).await {
        Notification::Reconnecting { code, attempt, .. } => assert_eq!((code, attempt), (4001, 0)),
        other => panic!("expected a reconnect after 4001, got {other:?}"),
    }
    match next_notice(&mut notes).await {
        Notification::Recovered { room, .. } => assert_eq!(room, "lobby"),
        other => panic!("expected the room re-joined, got {other:?}"),
    }
    assert_eq!(client.state(), State::Connected);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    client.publish("lobby", "chat.message", json!({"content": "back"})).await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn revocation_is_4003_and_ends_the_client_for_good() {
    let server = TestServer::start_lenient(&with_admin_key()).await;
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 34, 1]), long_lived("mallory"));
    client.connect().await.unwrap();
    let body = json!({"user": "mallory"});
    let reply =
        call_at(server.admin.unwrap(), Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/disconnect", body) }).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    match next_notice(&mut notes).await {
        Notification::Error(ClientError::ClientClosed { code }) => assert_eq!(code, Some(4003)),
        other => panic!("expected the terminal close, got {other:?}"),
    }
    assert_eq!(client.state(), State::Closed);
    let after = client.publish("lobby", "chat.message", json!({"content": "x"})).await.unwrap_err();
    assert!(matches!(after, ClientError::ClientClosed { code: Some(4003) }), "{after:?}");
}

#[tokio::test]
async fn violations_are_4008_and_end_the_client_for_good() {
    // The default guard: a flood is rate limited, then disconnected.
    let server = TestServer::start("").await;
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 35, 1]), long_lived("flooder"));
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let mut outcomes = Vec::new();
    for n in 0..1000 {
        let result = client.publish("lobby", "chat.message", json!({"content": format!("spam {n}")})).await;
        let done = matches!(result, Err(ClientError::ClientClosed { .. }));
        outcomes.push(result.map(|p| p.seq).map_err(|e| e.code().to_owned()));
        if done {
            break;
        }
    }
    assert!(outcomes.iter().any(|o| o.as_ref().is_err_and(|c| c == "rate_limited")), "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Err("closed".to_owned())), "{outcomes:?}");
    loop {
        match next_notice(&mut notes).await {
            Notification::Error(ClientError::ClientClosed { code }) => {
                assert_eq!(code, Some(4008));
                break;
            }
            Notification::Error(_) => continue,
            other => panic!("expected the terminal close, got {other:?}"),
        }
    }
    assert_eq!(client.state(), State::Closed);
}

#[tokio::test]
async fn a_restart_is_1001_then_reconnect_rejoin_and_recover_without_duplicates() {
    let mut server = TestServer::start_lenient(&fixed_port()).await;
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 36, 1]), long_lived("alice"));
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let mut seen = Vec::new();
    for n in 0..2 {
        client.publish("lobby", "chat.message", json!({"content": format!("before {n}")})).await.unwrap();
        seen.push(notes.next_event().await.unwrap().seq);
    }
    let port = server.addr.port();
    server = server.restart().await;
    assert_eq!(server.addr.port(), port, "the restarted server is where the client reconnects");
    // 1001 on shutdown, maybe refusals while the port is closed, then the
    // room is recovered: its history was in memory, so not completely.
    match next_notice(&mut notes).await {
        Notification::Reconnecting { code, .. } => assert_eq!(code, 1001),
        other => panic!("expected a reconnect after 1001, got {other:?}"),
    }
    let complete = loop {
        match next_notice(&mut notes).await {
            // The port is closed a moment (1006), or the server is not
            // taking connections yet.
            Notification::Reconnecting { .. } => continue,
            Notification::Recovered { room, complete, .. } => {
                assert_eq!(room, "lobby");
                break complete;
            }
            other => panic!("expected the room recovered, got {other:?}"),
        }
    };
    assert!(!complete, "a restart loses the room's history");
    assert_eq!(client.state(), State::Connected);
    for n in 0..2 {
        let p = client.publish("lobby", "chat.message", json!({"content": format!("after {n}")})).await.unwrap();
        let e = notes.next_event().await.unwrap();
        assert_eq!(e.seq, p.seq);
        seen.push(e.seq);
    }
    // seq never goes backwards for a room name, across the restart too.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    client.close().await;
}

#[tokio::test]
async fn the_offline_queue_is_bounded_then_flushed_after_the_join_on_welcome() {
    let server = TestServer::start_lenient("").await;
    let opts = ReconnectOptions { max_queue: 2, ..options(&server, [127, 0, 37, 1]) };
    let (client, mut notes) = ReconnectingClient::new(opts, long_lived("alice"));
    let publish = |n: u64| client.publish("lobby", "chat.message", json!({"content": format!("queued {n}")}));
    let (joined, a, b, c, connected) = tokio::join!(
        client.join("lobby"),
        publish(0),
        publish(1),
        async {
            tokio::task::yield_now().await;
            publish(2).await
        },
        async {
            // Connect only once the queue is full.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            client.connect().await
        }
    );
    connected.unwrap();
    joined.unwrap();
    assert!(matches!(c, Err(ClientError::QueueFull)), "{c:?}");
    let (a, b) = (a.unwrap().seq, b.unwrap().seq);
    assert!(a < b, "sent in order");
    assert_eq!(notes.next_event().await.unwrap().seq, a);
    assert_eq!(notes.next_event().await.unwrap().seq, b);
    client.close().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_4009_then_reconnects_and_recovers() {
    let server = TestServer::start_lenient(&format!("{}[limits]\noutbound_queue = 2\n", with_admin_key())).await;
    let admin = server.admin.unwrap();
    // The application does not read its notifications: with room for one,
    // the client stops reading its socket, as a stalled consumer would.
    let opts =
        ReconnectOptions { notification_capacity: 1, recv_buffer: Some(4096), ..options(&server, [127, 0, 38, 1]) };
    let (client, mut notes) = ReconnectingClient::new(opts, long_lived("stalled"));
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    let content = "x".repeat(2000);
    let connected = || async {
        let reply =
            call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::get("/api/connections?user=stalled") }).await;
        !reply.json()["items"].as_array().unwrap().is_empty()
    };
    let mut published = 0;
    while connected().await {
        for _ in 0..50 {
            let body = json!({"room": "lobby", "event": "chat.message", "data": {"content": content}});
            let reply = call_at(admin, Call { bearer: Some(ADMIN_KEY), ..Call::post("/api/publish", body) }).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        published += 50;
        assert!(published < 20_000, "never judged a slow consumer");
    }
    // Reading again: the events that reached it, the 4009, the recovery.
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, notes.recv()).await.expect("in time").expect("open") {
            Notification::Event(e) => seen.push(e.seq),
            Notification::Reconnecting { code, .. } => assert_eq!(code, 4009),
            Notification::Recovered { room, .. } => {
                assert_eq!(room, "lobby");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "no event twice");
    assert_eq!(client.state(), State::Connected);
    client.close().await;
}

/// A TCP relay to `to` for the client to connect through. Once `cut` is
/// set, the next bytes from the client (the `send`) reach the server, whose
/// answers are then swallowed for 300 ms (it publishes meanwhile) before
/// both sockets are dropped: a message the server took, whose ack is lost.
async fn relay(to: SocketAddr) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let cut = Arc::new(AtomicBool::new(false));
    let armed = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(to).await else { continue };
            tokio::spawn(pipe(client, server, armed.clone()));
        }
    });
    (url, cut)
}

async fn pipe(mut client: tokio::net::TcpStream, mut server: tokio::net::TcpStream, cut: Arc<AtomicBool>) {
    let (mut up, mut down) = ([0u8; 16384], [0u8; 16384]);
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let Ok(n @ 1..) = n else { return };
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
                if cut.swap(false, Ordering::SeqCst) {
                    let swallow = async { while let Ok(1..) = server.read(&mut down).await {} };
                    let _ = tokio::time::timeout(Duration::from_millis(300), swallow).await;
                    return;
                }
            }
            n = server.read(&mut down) => {
                let Ok(n @ 1..) = n else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_message_whose_ack_was_lost_is_resent_with_its_cid_and_published_once() {
    let server = TestServer::start_lenient("").await;
    let (url, cut) = relay(server.addr).await;
    let opts = ReconnectOptions { url, ..options(&server, [127, 0, 39, 1]) };
    let (client, mut notes) = ReconnectingClient::new(opts, long_lived("alice"));
    let (watcher, mut seen) = ReconnectingClient::new(options(&server, [127, 0, 39, 2]), long_lived("bob"));
    watcher.connect().await.unwrap();
    watcher.join("lobby").await.unwrap();
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    // The send reaches the server, which publishes it; its ack is lost with
    // the socket, and the client sends it again after the re-join.
    cut.store(true, Ordering::SeqCst);
    let published = tokio::time::timeout(WAIT, client.publish("lobby", "chat.message", json!({"content": "once"})))
        .await
        .expect("in time")
        .unwrap();
    assert!(!cut.load(Ordering::SeqCst), "the relay cut the connection after the send");
    match next_notice(&mut notes).await {
        Notification::Reconnecting { code, .. } => assert_eq!(code, 1006),
        other => panic!("expected a reconnect, got {other:?}"),
    }
    match next_notice(&mut notes).await {
        Notification::Recovered { room, .. } => assert_eq!(room, "lobby"),
        other => panic!("expected the room recovered, got {other:?}"),
    }
    let after = client.publish("lobby", "chat.message", json!({"content": "after"})).await.unwrap();
    // The room saw the message once, with the seq the resend resolved with.
    let mut events = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, seen.next_event()).await.expect("in time").expect("open");
        events.push((e.seq, e.data["content"].as_str().unwrap_or_default().to_owned()));
        if e.seq == after.seq {
            break;
        }
    }
    assert_eq!(events, [(published.seq, "once".to_owned()), (after.seq, "after".to_owned())]);
    client.close().await;
    watcher.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_handshake_refused_with_429_is_retried_no_sooner_than_its_retry_after() {
    // alice may hold one connection; while a raw socket holds it, the
    // client's handshake gets 429 with `Retry-After: 5` (PROTOCOL.md §1.2, step 8).
    let server = TestServer::start_lenient("[abuse]\nmax_connections_per_user = 1\n").await;
    let (mut holder, _) = connect_from(&server, [127, 0, 40, 2], &token("alice", &[])).await;
    let (client, mut notes) = ReconnectingClient::new(options(&server, [127, 0, 40, 1]), long_lived("alice"));
    let first_attempt = Instant::now();
    let c = client.clone();
    let connected = tokio::spawn(async move { c.connect().await });
    match next_notice(&mut notes).await {
        Notification::Reconnecting { code, delay, reason, .. } => {
            assert_eq!(code, 4029, "{reason}");
            assert!(reason.contains("429"), "{reason}");
            assert!(delay >= Duration::from_secs(5), "the backoff honours Retry-After: {delay:?}");
        }
        other => panic!("expected a slowed-down reconnect, got {other:?}"),
    }
    holder.close(None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(600), connected).await.expect("in time").unwrap().unwrap();
    // The refusal came at once; the next attempt, not before its hint.
    assert!(first_attempt.elapsed() >= Duration::from_secs(5), "{:?}", first_attempt.elapsed());
    client.close().await;
}

const APP: &str = "https://app.example.com";
/// The CSRF token rotates every 2 minutes, and a replaced one is refused
/// at once: a client that did not follow the rotation would be refused.
const CSRF_ROTATION: &str = "[limits]\nheartbeat_interval = \"1h\"\n[csrf]\nrotate_every = \"2m\"\ngrace = \"0s\"\n";

/// The next frame of `kind` on a raw socket (events skipped).
async fn next_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    for _ in 0..100 {
        let frame = next_json(ws).await;
        if frame["type"] == kind {
            return frame;
        }
    }
    panic!("no {kind} frame");
}

/// Logs alice in with `"cookie": true`, and a token source holding her
/// cookies as a program would: the login's `palisade_session` value first,
/// then for each call the one `/auth/refresh` sets (by the refresh cookie,
/// from the allowed origin). Also the first session cookie's value, and the
/// count of refreshes.
async fn cookie_session(server: &TestServer) -> (impl TokenSource, String, Arc<AtomicUsize>) {
    add_user(&server.data_dir, "alice", &["student"]);
    let login = Call {
        origin: Some(APP),
        ..Call::post("/auth/login", json!({"username": "alice", "password": PASSWORD, "cookie": true}))
    };
    let reply = call(server, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.cookie("palisade_session").unwrap();
    let jar = Arc::new(tokio::sync::Mutex::new((Some(session.clone()), reply.cookie("palisade_refresh").unwrap())));
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counted = refreshes.clone();
    let addr = server.addr;
    let source = move || {
        let (jar, counted) = (jar.clone(), counted.clone());
        async move {
            let mut jar = jar.lock().await;
            if let Some(first) = jar.0.take() {
                return Ok(first);
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let cookie = format!("palisade_refresh={}", jar.1);
            let renew =
                Call { cookie: Some(&cookie), origin: Some(APP), body: None, ..Call::post("/auth/refresh", json!({})) };
            let reply = call_at(addr, renew).await;
            if reply.status != 200 {
                return Err(std::io::Error::other(format!("refresh: HTTP {}", reply.status)));
            }
            jar.1 = reply.cookie("palisade_refresh").unwrap();
            Ok(reply.cookie("palisade_session").unwrap())
        }
    };
    (source, session, refreshes)
}

#[tokio::test(start_paused = true)]
async fn a_cookie_session_echoes_the_csrf_token_through_rotation_and_a_restart() {
    let mut server = TestServer::start_lenient(&format!("{}{CSRF_ROTATION}", fixed_port())).await;
    let (tokens, session, _) = cookie_session(&server).await;
    let opts = ReconnectOptions {
        bind: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 41, 1))),
        seed: Some(41),
        ..ReconnectOptions::cookie(server.url(), APP)
    };
    let (client, mut notes) = ReconnectingClient::new(opts, tokens);
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    // On a cookie session every send needs the token: welcome's goes out.
    let publish = |text: &str| client.publish("lobby", "chat.message", json!({"content": text}));
    publish("welcome's token").await.unwrap();

    // Beside it, a raw socket on the same cookie sees the rotation, and
    // that the replaced token is refused from then on.
    let header = format!("palisade_session={session}");
    let (mut raw, _) =
        dial(&server, Dial { cookie: Some(&header), origin: Some(APP), ..Dial::default() }).await.unwrap();
    let old = next_of(&mut raw, "welcome").await["csrf"].clone();
    join(&mut raw, "lobby").await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_ne!(next_of(&mut raw, "csrf").await["csrf"], old, "rotated");
    let stale = json!({"type": "send", "id": "s1", "room": "lobby", "event": "chat.message",
                       "data": {"content": "stale"}, "csrf": old});
    assert_eq!(request(&mut raw, stale).await["code"], "csrf_failed");
    raw.close(None).await.unwrap();
    // The client took the `csrf` frame's token.
    publish("rotated token").await.unwrap();

    // After a restart the new welcome's token replaces the old session's:
    // a publish made while disconnected waits, then carries it.
    server.shutdown().await;
    match next_notice(&mut notes).await {
        Notification::Reconnecting { code, .. } => assert_eq!(code, 1001),
        other => panic!("expected a reconnect after 1001, got {other:?}"),
    }
    let queued = {
        let client = client.clone();
        tokio::spawn(async move { client.publish("lobby", "chat.message", json!({"content": "queued"})).await })
    };
    // Idle a moment: the publish has reached the client, which has no server.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_ne!(client.state(), State::Connected);
    server = server.restart().await;
    tokio::time::timeout(Duration::from_secs(600), queued).await.expect("in time").unwrap().unwrap();
    assert_eq!(client.state(), State::Connected);
    // And the new connection's rotation is followed too.
    tokio::time::sleep(Duration::from_secs(180)).await;
    publish("rotated again").await.unwrap();
    let mut errors = Vec::new();
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(1), notes.recv()).await {
        if let Notification::Error(e) = n {
            errors.push(e.to_string());
        }
    }
    assert!(errors.is_empty(), "{errors:?}");
    client.close().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cookie_session_is_renewed_in_band_and_its_socket_stays() {
    // Login tokens live 15 minutes; an hour of virtual time is four of them.
    let server = TestServer::start_lenient("[limits]\nheartbeat_interval = \"1h\"\n").await;
    let (tokens, _, refreshes) = cookie_session(&server).await;
    let opts = ReconnectOptions {
        bind: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 42, 1))),
        seed: Some(42),
        ..ReconnectOptions::cookie(server.url(), APP)
    };
    let (client, mut notes) = ReconnectingClient::new(opts, tokens);
    client.connect().await.unwrap();
    client.join("lobby").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(client.state(), State::Connected);
    let published = client.publish("lobby", "chat.message", json!({"content": "still here"})).await.unwrap();
    // Nothing but our own event came: no reconnect, no error.
    match notes.recv().await.unwrap() {
        Notification::Event(e) => assert_eq!(e.seq, published.seq),
        other => panic!("expected only the event, got {other:?}"),
    }
    assert!(refreshes.load(Ordering::SeqCst) >= 4, "one renewed cookie per token lifetime");
    client.close().await;
}
