//! `mixed`: honest chat traffic while a share of hostile clients attack;
//! reports what the honest clients' latency does meanwhile.
//!
//! Hostile kinds (cycled over the hostile connections): oversize frames
//! (closed with 1009, then reconnect), malformed JSON, unknown events,
//! slow readers that join the busy room and never read, payloads that break
//! the event's schema (an injected `user_id`), handshakes with forged
//! tokens (refused with 401 before any upgrade), reconnect storms and ban
//! cycling (both in [`storms`], from addresses outside 127.0.0.x so their
//! bans never reach an honest client).

mod storms;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Refusals that carry a code, by kind and code (`storm_http_429`,
    /// `oversize_close_1009`): HTTP statuses and close codes.
    by_code: Mutex<BTreeMap<String, u64>>,
    /// Reconnect storms' handshakes the server let through.
    storm_accepted: AtomicU64,
    /// Bans the ban cyclers provoked, how long each took to provoke and
    /// how long it kept them out.
    bans: AtomicU64,
    time_to_ban: Mutex<Latency>,
    ban_length: Mutex<Latency>,
}

impl Tally {
    fn refusal(&self, kind: usize, code: impl Display) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}_{code}", NAMES[kind % KINDS]);
        *self.by_code.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
    }

    fn record(histogram: &Mutex<Latency>, d: Duration) {
        histogram.lock().unwrap_or_else(PoisonError::into_inner).record(d);
    }
}

/// A close code as a [`Tally::refusal`] code.
fn close_code(code: Option<u16>) -> String {
    code.map_or_else(|| "close_none".to_owned(), |c| format!("close_{c}"))
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
        for (code, n) in tally.by_code.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            report.value(&format!("refused_{code}"), *n as f64);
        }
        report.value("storm_accepted", tally.storm_accepted.load(Ordering::Relaxed) as f64);
        report.value("bans_provoked", tally.bans.load(Ordering::Relaxed) as f64);
    }
    for (name, histogram) in [("time_to_ban", &tally.time_to_ban), ("ban_length", &tally.ban_length)] {
        let summary = histogram.lock().unwrap_or_else(PoisonError::into_inner).summary();
        if summary.count > 0 {
            report.latency(name, summary);
        }
    }
    report.value("honest_delivered_per_sec", rate(lat.count(), p.duration));
    report.latency("honest_publish_to_receive", lat.summary());
    Ok(report)
}

/// How many hostile kinds [`attack`] cycles through, and their names in
/// the report.
const KINDS: usize = 8;
const NAMES: [&str; KINDS] =
    ["oversize", "malformed", "unknown_event", "slow_reader", "schema", "forged_token", "storm", "ban_cycle"];

/// One hostile client until `deadline`; its kind is `kind % KINDS`.
async fn attack(target: &Target, kind: usize, n: usize, per_sec: u32, deadline: Instant, tally: &Tally) {
    let pause = Duration::from_secs(1) / per_sec.max(1);
    let user = format!("hostile{n}");
    match kind % KINDS {
        6 => return storms::storm(target, kind, &user, per_sec, deadline, tally).await,
        7 => return storms::ban_cycle(target, kind, &user, per_sec, deadline, tally).await,
        _ => {}
    }
    if kind % KINDS == 5 {
        // Forged tokens: a signature made with the wrong secret.
        let mut opts = target.options(&user, n);
        opts.token = Target { secret: "not-the-secret-not-the-secret-not-the-secret".to_owned(), ..target.clone() }
            .token(&user, &["admin"]);
        while Instant::now() < deadline {
            tally.attacks.fetch_add(1, Ordering::Relaxed);
            if let Err(palisade_client::ClientError::Refused { status, .. }) = palisade_client::open(&opts).await {
                tally.refusal(kind, format_args!("http_{status}"));
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
                Read::Closed(code) => {
                    tally.refusal(kind, close_code(code));
                    conn = None;
                    break;
                }
                Read::Deadline => return,
            }
        }
        tokio::time::sleep(pause).await;
    }
}
