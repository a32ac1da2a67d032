//! `history`: what rooms' kept events cost the server (Palisade only). One
//! connection fills `rooms` rooms named `hist-<n>` with `events` events
//! each, leaving each room after, so only the kept events remain; the
//! server's resident memory is read before and after (`/proc/PID/status`).
//! The server's policy must keep at least `events` in those rooms
//! (`[rooms."hist-*"] history = …`, as bench/palisade.toml does).

use std::time::Duration;

use palisade_client::{Reply, ServerMessage};
use serde_json::json;

use super::ScenarioError;
use super::idle::rss_kib;
use crate::report::Report;
use crate::target::Target;

/// Most events one run publishes.
const MAX_EVENTS: usize = 1_000_000;

/// Parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Rooms to fill.
    pub rooms: usize,
    /// Events per room.
    pub events: usize,
    /// Length of each event's `content`.
    pub content_bytes: usize,
    /// Server process to measure.
    pub server_pid: Option<u32>,
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    if p.rooms.saturating_mul(p.events) > MAX_EVENTS {
        return Err(ScenarioError::Bounds(format!("at most {MAX_EVENTS} events in all")));
    }
    let before = p.server_pid.map(rss_kib).transpose()?;
    let mut client = target.connect(&target.options("hist", 0)).await?;
    // Varied letters: a run of one character would be refused as spam.
    let content: String = (0..p.content_bytes).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut frame_bytes = 0;
    for r in 0..p.rooms {
        let room = format!("hist-{r}");
        if let Reply::Error { code, .. } = client.join(&room).await? {
            return Err(ScenarioError::Refused { room, code });
        }
        for _ in 0..p.events {
            if let Reply::Error { code, .. } =
                client.publish(&room, "chat.message", json!({"content": content})).await?
            {
                return Err(ScenarioError::Refused { room, code });
            }
        }
        client.request(json!({"type": "leave", "room": room})).await?;
        // The sender's own copies, read so they do not pile up here; the
        // first tells how large a kept event is.
        for _ in 0..p.events {
            if let ServerMessage::Event { room, seq, event, from, data, ts } = client.next_message().await?
                && frame_bytes == 0
            {
                let frame = json!({"type": "event", "room": room, "seq": seq, "event": event,
                                   "from": {"id": from.id, "name": from.name}, "data": data, "ts": ts});
                frame_bytes = frame.to_string().len();
            }
        }
    }
    // Let allocations settle before reading RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = p.server_pid.map(rss_kib).transpose()?;
    let mut report = Report::new("history");
    report.param("rooms", p.rooms).param("events", p.events).param("content_bytes", p.content_bytes);
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    {
        report.value("event_frame_bytes", frame_bytes as f64);
        if let (Some(b), Some(a)) = (before, after) {
            let grown = a.saturating_sub(b) as f64 * 1024.0;
            report.value("server_rss_before_kib", b as f64).value("server_rss_after_kib", a as f64);
            report.value("server_kib_per_room", grown / 1024.0 / p.rooms.max(1) as f64);
            report.value("server_bytes_per_event", grown / (p.rooms * p.events).max(1) as f64);
        }
    }
    Ok(report)
}
