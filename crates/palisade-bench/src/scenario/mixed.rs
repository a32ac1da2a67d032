//! `mixed`: honest chat traffic while a share of hostile clients attack;
//! reports what the honest clients' latency does meanwhile.
//!
//! Hostile kinds (cycled over the hostile connections): oversize frames
//! (closed with 1009, then reconnect), malformed JSON, unknown events,
//! slow readers that join the busy room and never read, payloads that break
//! the event's schema (an injected `user_id`), and handshakes with forged
//! tokens (refused with 401 before any upgrade).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_client::Stream;
use tokio::time::Instant;

use super::fanout::chat_loop;
use super::{Lite, Read, ScenarioError, check_bounds, joined, rate, read_text, send_text};
use crate::report::Report;
use crate::stats::Latency;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Honest chatting connections (each publishes and receives).
    pub honest: usize,
    /// Messages per second per honest client.
    pub rate: u32,
    /// Hostile connections.
    pub hostile: usize,
    /// Attacks per second per hostile connection.
    pub hostile_rate: u32,
    /// How long to run.
    pub duration: Duration,
}

const ROOM: &str = "mixed";

/// What the hostile clients did and what the server did about it.
#[derive(Debug, Default)]
struct Tally {
    attacks: AtomicU64,
    refused: AtomicU64,
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.honest + p.hostile, p.duration)?;
    let mut honest = Vec::with_capacity(p.honest);
    for n in 0..p.honest {
        honest.push(joined(target, &format!("honest{n}"), n, ROOM, None).await?);
    }
    let start = Instant::now();
    let window = (start + p.duration, start + p.duration + Duration::from_millis(500));
    let tally = Arc::new(Tally::default());
    let hostiles: Vec<_> = (0..p.hostile)
        .map(|n| {
            let (target, tally) = (target.clone(), Arc::clone(&tally));
            tokio::spawn(async move { attack(&target, n, p.honest + n, p.hostile_rate, window.0, &tally).await })
        })
        .collect();
    let chatters: Vec<_> =
        honest.into_iter().map(|ws| tokio::spawn(chat_loop(ws, ROOM, start, window, Some(p.rate), true))).collect();
    let (mut sent, mut lat) = (0, Latency::default());
    for c in chatters {
        if let Ok((n, l)) = c.await {
            sent += n;
            lat.merge(&l);
        }
    }
    for h in hostiles {
        let _ = h.await;
    }
    let mut report = Report::new("mixed");
    report
        .param("honest", p.honest)
        .param("rate_per_honest", p.rate)
        .param("hostile", p.hostile)
        .param("hostile_rate", p.hostile_rate)
        .param("duration_s", p.duration.as_secs_f64());
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    {
        report.value("honest_published", sent as f64);
        report.value("hostile_attacks", tally.attacks.load(Ordering::Relaxed) as f64);
        report.value("hostile_refused", tally.refused.load(Ordering::Relaxed) as f64);
    }
    report.value("honest_delivered_per_sec", rate(lat.count(), p.duration));
    report.latency("honest_publish_to_receive", lat.summary());
    Ok(report)
}

/// How many hostile kinds [`attack`] cycles through.
const KINDS: usize = 6;

/// One hostile client until `deadline`; its kind is `kind % KINDS`.
async fn attack(target: &Target, kind: usize, n: usize, per_sec: u32, deadline: Instant, tally: &Tally) {
    let pause = Duration::from_secs(1) / per_sec.max(1);
    let user = format!("hostile{n}");
    if kind % KINDS == 5 {
        // Forged tokens: a signature made with the wrong secret.
        let mut opts = target.options(&user, n);
        opts.token = Target { secret: "not-the-secret-not-the-secret-not-the-secret".to_owned(), ..target.clone() }
            .token(&user, &["admin"]);
        while Instant::now() < deadline {
            tally.attacks.fetch_add(1, Ordering::Relaxed);
            if matches!(palisade_client::open(&opts).await, Err(palisade_client::ClientError::Refused { .. })) {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(pause).await;
        }
        return;
    }
    if kind % KINDS == 3 {
        // Slow reader: joins the busy room with a tiny receive buffer and
        // never reads; the server should cut it off (4009), not buffer.
        if joined(target, &user, n, ROOM, Some(4096)).await.is_ok() {
            tally.attacks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(deadline).await;
        }
        return;
    }
    let mut conn: Option<Stream> = None;
    while Instant::now() < deadline {
        let ws = match conn.as_mut() {
            Some(ws) => ws,
            None => match joined(target, &user, n, ROOM, None).await {
                Ok(ws) => conn.insert(ws),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        let (frame, want) = match kind % KINDS {
            0 => ("x".repeat(70_000), None),
            1 => ("{\"type\":\"send\",\"id\":\"1\",".to_owned(), Some("error")),
            4 => (
                r#"{"type":"send","id":"1","room":"mixed","event":"chat.message","data":{"content":"hi","user_id":"admin"}}"#
                    .to_owned(),
                Some("error"),
            ),
            _ => (
                r#"{"type":"send","id":"1","room":"mixed","event":"no.such.event","data":{}}"#.to_owned(),
                Some("error"),
            ),
        };
        tally.attacks.fetch_add(1, Ordering::Relaxed);
        if !send_text(ws, frame).await {
            conn = None;
            continue;
        }
        // Read until the answer to the attack (skipping room events) or
        // the close it earns.
        loop {
            match read_text(ws, deadline).await {
                Read::Text(text) => {
                    let kind_of = serde_json::from_str::<Lite<'_>>(&text).map(|l| l.kind.into_owned()).ok();
                    if kind_of.as_deref() == want {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Read::Closed => {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    break;
                }
                Read::Deadline => return,
            }
        }
        tokio::time::sleep(pause).await;
    }
}
