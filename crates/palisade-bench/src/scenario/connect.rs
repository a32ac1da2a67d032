//! `connect`: authenticated handshakes per second, and their latency
//! (TCP connect → upgrade → JWT verification → `welcome`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{ScenarioError, check_bounds, rate};
use crate::report::Report;
use crate::stats::Latency;
use crate::target::Target;

/// Parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Handshakes in total.
    pub total: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Upper bound on the run time.
    pub duration: Duration,
}

/// Runs the scenario.
pub async fn run(target: &Target, p: Params) -> Result<Report, ScenarioError> {
    check_bounds(p.concurrency, p.duration)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + p.duration;
    let workers: Vec<_> = (0..p.concurrency.max(1))
        .map(|_| {
            let (target, next) = (target.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let (mut lat, mut failed) = (Latency::default(), 0u64);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= p.total || Instant::now() >= deadline {
                        break;
                    }
                    let opts = target.options(&format!("c{n}"), n);
                    let t0 = Instant::now();
                    match target.connect(&opts).await {
                        Ok(client) => {
                            lat.record(t0.elapsed());
                            drop(client);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let (mut lat, mut failed) = (Latency::default(), 0);
    for w in workers {
        if let Ok((l, f)) = w.await {
            lat.merge(&l);
            failed += f;
        }
    }
    let elapsed = start.elapsed();
    let mut report = Report::new("connect");
    report.param("total", p.total).param("concurrency", p.concurrency);
    report.value("handshakes_per_sec", rate(lat.count(), elapsed));
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    report.value("handshakes", lat.count() as f64).value("failed", failed as f64);
    report.latency("handshake", lat.summary());
    Ok(report)
}
