//! `bare-peer`: the benchmark floor for Palisade.
//!
//! A minimal WebSocket broadcast server on tokio-tungstenite that speaks the
//! same wire subset as Palisade (`welcome`, `join`, `leave`, `send`, `event`,
//! `ack`, `error`) with no security at all: no authentication, no origin
//! check, no validation, no rate limits, no slow-consumer handling. A load
//! generator drives it and Palisade alike to measure the cost of Palisade's
//! pipeline. It is a floor, not a product: never expose it.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const SUBPROTOCOL: &str = "palisade.v1";
const MAX_MESSAGE_BYTES: usize = 65536;
const QUEUE: usize = 1024;
/// Most queued events written before one flush (as in Palisade).
const WRITE_BATCH: usize = 64;

/// Unsecured WebSocket broadcast server (benchmark floor for Palisade).
#[derive(Debug, Parser)]
#[command(name = "bare-peer")]
struct Args {
    /// Address to listen on; must be loopback.
    #[arg(long)]
    listen: SocketAddr,
    /// Use read_buffer_size 4096 and write_buffer_size 0 instead of the
    /// tokio-tungstenite defaults.
    #[arg(long)]
    small_buffers: bool,
}

#[derive(Default)]
struct Room {
    seq: u64,
    members: HashMap<u64, mpsc::Sender<Utf8Bytes>>,
}

/// All rooms, behind one plain mutex.
static ROOMS: LazyLock<Mutex<HashMap<String, Room>>> = LazyLock::new(Mutex::default);
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn rooms() -> MutexGuard<'static, HashMap<String, Room>> {
    ROOMS.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Serialize)]
struct Anon {
    id: &'static str,
    name: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    Ack {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    Event {
        room: &'a str,
        seq: u64,
        event: &'a str,
        from: Anon,
        data: &'a Value,
        ts: u64,
    },
}

const BAD_REQUEST: &str = r#"{"type":"error","code":"bad_request","message":"malformed request","ref":"r_0"}"#;

fn to_json(frame: &Out<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| BAD_REQUEST.to_owned())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Answers with `palisade.v1` when the client offers it; accepts anything.
// The error type is tungstenite's; this callback never returns it.
#[allow(clippy::result_large_err)]
fn on_request(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offers = req.headers().get_all(SEC_WEBSOCKET_PROTOCOL);
    let offered = offers.iter().filter_map(|v| v.to_str().ok());
    if offered.flat_map(|v| v.split(',')).any(|p| p.trim() == SUBPROTOCOL) {
        resp.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    }
    Ok(resp)
}

/// Handles one text frame and returns the reply for the sender.
fn on_text(text: &str, conn: u64, tx: &mpsc::Sender<Utf8Bytes>, joined: &mut HashSet<String>) -> Option<String> {
    let req: Value = serde_json::from_str(text).ok()?;
    let field = |k: &str| req.get(k).and_then(Value::as_str);
    let (kind, id, room) = (field("type")?, field("id")?, field("room")?);
    let seq = match kind {
        "join" => {
            rooms().entry(room.to_owned()).or_default().members.insert(conn, tx.clone());
            joined.insert(room.to_owned());
            None
        }
        "leave" => {
            leave(room, conn);
            joined.remove(room);
            None
        }
        "send" => {
            let event = field("event")?;
            let data = req.get("data").unwrap_or(&Value::Null);
            let mut map = rooms();
            let r = map.entry(room.to_owned()).or_default();
            r.seq += 1;
            let seq = r.seq;
            let frame = Utf8Bytes::from(to_json(&Out::Event {
                room,
                seq,
                event,
                from: Anon { id: "anon", name: "anon" },
                data,
                ts: now_ms(),
            }));
            for member in r.members.values() {
                // Full or closed queue: drop the event; the floor does not care.
                let _ = member.try_send(frame.clone());
            }
            if r.members.is_empty() {
                map.remove(room);
            }
            Some(seq)
        }
        _ => return None,
    };
    Some(to_json(&Out::Ack { id, seq }))
}

fn leave(room: &str, conn: u64) {
    let mut map = rooms();
    if let Some(r) = map.get_mut(room) {
        r.members.remove(&conn);
        if r.members.is_empty() {
            map.remove(room);
        }
    }
}

async fn serve(stream: TcpStream, config: WebSocketConfig) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, on_request, Some(config)).await else {
        return;
    };
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let mut joined = HashSet::new();
    let welcome = format!(
        r#"{{"type":"welcome","session":"s_{conn}","user":{{"id":"anon","name":"anon","roles":[]}},"csrf":"x","heartbeat_ms":20000,"max_message_bytes":{MAX_MESSAGE_BYTES},"expires_at":0}}"#
    );
    if ws.send(Message::Text(welcome.into())).await.is_ok() {
        loop {
            tokio::select! {
                Some(first) = rx.recv() => {
                    let burst = async {
                        ws.feed(Message::Text(first)).await?;
                        for _ in 1..WRITE_BATCH {
                            let Ok(next) = rx.try_recv() else { break };
                            ws.feed(Message::Text(next)).await?;
                        }
                        ws.flush().await
                    };
                    if burst.await.is_err() {
                        break;
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let reply = on_text(text.as_str(), conn, &tx, &mut joined)
                            .unwrap_or_else(|| BAD_REQUEST.to_owned());
                        if ws.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                    // tungstenite answers pings and closes by itself; the
                    // stream ends once the close handshake is done.
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
    }
    for room in &joined {
        leave(room, conn);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("bare-peer: refusing non-loopback address {}", args.listen);
        return ExitCode::from(2);
    }
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-peer: {}: {e}", args.listen);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> std::io::Result<()> {
    let mut config =
        WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE_BYTES)).max_frame_size(Some(MAX_MESSAGE_BYTES));
    if args.small_buffers {
        config = config.read_buffer_size(4096).write_buffer_size(0);
    }
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!("listening on ws://{}/ws", listener.local_addr()?);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => drop(tokio::spawn(serve(stream, config))),
                // Out of descriptors, most likely: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
        }
    }
}
