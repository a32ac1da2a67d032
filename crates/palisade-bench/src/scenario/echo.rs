//! `echo`: request → ack round trips. Each connection has its own room, so
//! the server does the full publish path (and also sends the event back)
//! without fan-out.

use std::time::Duration;

use tokio::time::Instant;

use super::{Lite, Read, ScenarioError, chat, check_bounds, joined, rate, read_text, send_text};
use crate::report::Report;
use crate::stats::Latency;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Concurrent connections, each in a closed loop.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.connections, p.duration)?;
    let mut clients = Vec::with_capacity(p.connections);
    for n in 0..p.connections {
        clients.push(joined(target, &format!("echo{n}"), n, &format!("echo-{n}"), None).await?);
    }
    let start = Instant::now();
    let deadline = start + p.duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut ws)| {
            tokio::spawn(async move {
                let room = format!("echo-{n}");
                let (mut lat, mut errors) = (Latency::default(), 0u64);
                let mut id = 0u64;
                'outer: while Instant::now() < deadline {
                    id += 1;
                    let want = id.to_string();
                    let t0 = Instant::now();
                    if !send_text(&mut ws, chat(id, &room, "hello")).await {
                        break;
                    }
                    loop {
                        let Read::Text(text) = read_text(&mut ws, deadline).await else {
                            break 'outer;
                        };
                        let Ok(frame) = serde_json::from_str::<Lite<'_>>(&text) else {
                            continue;
                        };
                        if frame.id.as_deref() != Some(&want) {
                            continue;
                        }
                        if frame.kind == "ack" {
                            lat.record(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                        break;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Latency::default(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.merge(&l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    let mut report = Report::new("echo");
    report.param("connections", p.connections).param("duration_s", p.duration.as_secs_f64());
    report.value("acks_per_sec", rate(lat.count(), elapsed));
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    report.value("errors", errors as f64);
    report.latency("send_to_ack", lat.summary());
    Ok(report)
}
