//! `fanout`: one room, M subscribers, P publishers at a fixed rate;
//! delivered events per second and publish → receive latency.

use std::time::Duration;

use palisade_client::Stream;
use tokio::time::Instant;

use super::{Lite, Read, ScenarioError, chat, check_bounds, joined, rate, read_text, send_text};
use crate::report::Report;
use crate::stats::Latency;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Receiving connections.
    pub subscribers: usize,
    /// Publishing connections.
    pub publishers: usize,
    /// Messages per second per publisher.
    pub rate: u32,
    /// How long to publish.
    pub duration: Duration,
    /// Where subscribers connect, in turn (other nodes of a cluster, to
    /// measure delivery across nodes); empty: the publishers' target.
    pub subscribers_on: Vec<Target>,
}

const ROOM: &str = "fanout";

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.subscribers + p.publishers, p.duration)?;
    let on = if p.subscribers_on.is_empty() { std::slice::from_ref(target) } else { &p.subscribers_on[..] };
    let mut subscribers = Vec::with_capacity(p.subscribers);
    for n in 0..p.subscribers {
        subscribers.push(joined(&on[n % on.len()], &format!("sub{n}"), n, ROOM, None).await?);
    }
    let mut publishers = Vec::with_capacity(p.publishers);
    for n in 0..p.publishers {
        publishers.push(joined(target, &format!("pub{n}"), p.subscribers + n, ROOM, None).await?);
    }
    let start = Instant::now();
    let deadline = start + p.duration;
    // Subscribers keep reading a little past the deadline to collect what
    // is in flight.
    let drain = deadline + Duration::from_millis(500);
    let window = (deadline, drain);
    let receivers: Vec<_> =
        subscribers.into_iter().map(|ws| tokio::spawn(chat_loop(ws, ROOM, start, window, None, true))).collect();
    let senders: Vec<_> = publishers
        .into_iter()
        .map(|ws| tokio::spawn(chat_loop(ws, ROOM, start, window, Some(p.rate), false)))
        .collect();
    let mut sent = 0;
    for s in senders {
        sent += s.await.map_or(0, |(n, _)| n);
    }
    let mut lat = Latency::default();
    for r in receivers {
        if let Ok((_, l)) = r.await {
            lat.merge(&l);
        }
    }
    let mut report = Report::new("fanout");
    report
        .param("subscribers", p.subscribers)
        .param("publishers", p.publishers)
        .param("rate_per_publisher", p.rate)
        .param("subscriber_servers", on.len())
        .param("duration_s", p.duration.as_secs_f64());
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    report.value("published", sent as f64);
    report.value("delivered_per_sec", rate(lat.count(), p.duration));
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    report.value("delivery_ratio", lat.count() as f64 / (sent as f64 * p.subscribers as f64).max(1.0));
    report.latency("publish_to_receive", lat.summary());
    Ok(report)
}

/// One chat client: publishes at `rate` per second until `deadline` (if
/// `rate` is set), and reads until `until`, recording publish → receive
/// latency of every event when `record` is set. Returns (sent, latency).
pub(crate) async fn chat_loop(
    mut ws: Stream,
    room: &str,
    start: Instant,
    (deadline, until): (Instant, Instant),
    rate: Option<u32>,
    record: bool,
) -> (u64, Latency) {
    let period = Duration::from_secs(1) / rate.unwrap_or(1).max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut sent, mut lat) = (0u64, Latency::default());
    loop {
        let publishing = rate.is_some() && Instant::now() < deadline;
        tokio::select! {
            _ = tick.tick(), if publishing => {
                sent += 1;
                let content = format!("t{}", start.elapsed().as_micros());
                if !send_text(&mut ws, chat(sent, room, &content)).await {
                    break;
                }
            }
            read = read_text(&mut ws, if publishing { deadline } else { until }) => match read {
                Read::Text(text) => {
                    if let (true, Some(at)) = (record, sent_at(&text)) {
                        lat.record(start.elapsed().saturating_sub(at));
                    }
                }
                Read::Closed(_) => break,
                Read::Deadline if !publishing => break,
                Read::Deadline => {}
            },
        }
    }
    (sent, lat)
}

/// The send time embedded in an event's content (`t<micros since start>`).
pub(crate) fn sent_at(text: &str) -> Option<Duration> {
    let frame: Lite<'_> = serde_json::from_str(text).ok()?;
    if frame.kind != "event" {
        return None;
    }
    let content = frame.data?.content?;
    content.strip_prefix('t')?.parse().ok().map(Duration::from_micros)
}
