//! `idle`: N authenticated connections that do nothing, and what they cost
//! the server in resident memory (from `/proc/PID/status`).

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{ScenarioError, check_bounds};
use crate::report::Report;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Connections to open.
    pub connections: usize,
    /// Handshakes in flight while opening.
    pub concurrency: usize,
    /// How long to hold them open after measuring.
    pub hold: Duration,
    /// Server process to measure, if known.
    pub server_pid: Option<u32>,
    /// Rooms `idle-0` … `idle-{rooms-1}` the connections join, one each in
    /// turn (0: none), so that views of rooms and members have some to show
    /// (scripts/dashboard-scale.sh).
    pub rooms: usize,
}

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, ScenarioError> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|source| ScenarioError::Proc { pid, source })?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    kib.ok_or_else(|| ScenarioError::Proc { pid, source: std::io::Error::other("no VmRSS line") })
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.connections, p.hold)?;
    let before = p.server_pid.map(rss_kib).transpose()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let mut opened = 0usize;
    let mut failed = 0usize;
    let mut holders = Vec::with_capacity(p.connections);
    let mut next = 0;
    while next < p.connections {
        let batch: Vec<_> = (next..(next + p.concurrency.max(1)).min(p.connections))
            .map(|n| {
                let opts = target.options(&format!("idle{n}"), n);
                let room = (p.rooms > 0).then(|| format!("idle-{}", n % p.rooms));
                let target = target.clone();
                tokio::spawn(async move {
                    let mut client = target.connect(&opts).await?;
                    if let Some(room) = room {
                        client.join(&room).await?;
                    }
                    Ok::<_, palisade_client::ClientError>(client)
                })
            })
            .collect();
        next += batch.len();
        for handle in batch {
            match handle.await {
                Ok(Ok(client)) => {
                    opened += 1;
                    // Keep reading so pings are answered; stop on signal.
                    let mut ws = client.into_stream();
                    let mut stop = stop_rx.clone();
                    holders.push(tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = stop.changed() => break,
                                msg = ws.next() => if !matches!(msg, Some(Ok(_))) { break },
                            }
                        }
                    }));
                }
                _ => failed += 1,
            }
        }
    }
    let open_secs = start.elapsed().as_secs_f64();
    // Let allocations settle before reading RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = p.server_pid.map(rss_kib).transpose()?;
    tokio::time::sleep(p.hold).await;
    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    let mut report = Report::new("idle");
    report.param("connections", p.connections);
    report.param("rooms", p.rooms);
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    {
        report.value("opened", opened as f64).value("failed", failed as f64).value("open_seconds", open_secs);
        if let (Some(b), Some(a)) = (before, after) {
            report.value("server_rss_before_kib", b as f64).value("server_rss_after_kib", a as f64);
            report.value("server_kib_per_connection", a.saturating_sub(b) as f64 / opened.max(1) as f64);
        }
    }
    Ok(report)
}
