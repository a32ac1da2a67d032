//! Prometheus metrics (docs/ARCHITECTURE.md, "Admin listener and
//! metrics"): one recorder per process, handles registered once per
//! server so the message path only bumps atomics, and the text rendered
//! for `GET /metrics` from the recorder's handle. A leaf: every layer
//! records through it.
//!
//! The recorder is process-wide (the `metrics` facade allows one), so two
//! servers in one process (the tests) share every counter. The two gauges
//! (open connections, bans in force) are set from the scraped server's own
//! state just before rendering instead.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use palisade_core::refusal::Kind;
use palisade_protocol::{CloseCode, ErrorCode};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::exit::Exit;
use crate::gateway::{STORE_ERRORS, STORE_LATENCY};

/// How often histogram samples are folded into their buckets: until then
/// each sample is kept, so without scrapes they would pile up.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of one message through the session pipeline: microseconds for a
/// chat line, up to a slow schema or a large sanitized payload.
const PIPELINE_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];
/// Buckets of one store call, up to the store's 5 s busy timeout.
const STORE_BUCKETS: [f64; 12] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0];

const PIPELINE: &str = "palisade_pipeline_latency_seconds";
/// The metric of sockets a listener dropped, by listener and reason.
pub(crate) const DROPPED: &str = "palisade_sockets_dropped_total";

/// Close labels besides the close codes: the peer closed (with a code of
/// its choosing), or the socket was lost without a close.
const PEER_CLOSED: &str = "peer";
const LOST: &str = "lost";

/// The process's recorder handle; `None` if another recorder was installed
/// first (then `/metrics` answers 503 and says so in the log).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(PIPELINE.into()), &PIPELINE_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_LATENCY.into()), &STORE_BUCKETS));
    let recorder = match builder {
        Ok(builder) => builder.build_recorder(),
        Err(e) => {
            warn!(error = %e, "cannot build the metrics recorder; /metrics is off");
            return None;
        }
    };
    let handle = recorder.handle();
    if let Err(e) = ::metrics::set_global_recorder(recorder) {
        warn!(error = %e, "another metrics recorder is installed; /metrics is off");
        return None;
    }
    describe();
    Some(handle)
}

fn describe() {
    describe_gauge!("palisade_connections_current", "Open WebSocket connections.");
    describe_counter!("palisade_connections_opened_total", "WebSocket connections opened (after the upgrade).");
    describe_counter!(
        "palisade_connections_closed_total",
        "WebSocket connections closed, by close code (peer: the client closed; lost: no close)."
    );
    describe_counter!("palisade_handshakes_refused_total", "Sockets and upgrades refused, by refusal kind.");
    describe_counter!(DROPPED, "Sockets a listener dropped, by listener and reason (evicted, silent, peer_cap, full).");
    describe_counter!("palisade_messages_in_total", "Text frames received from clients.");
    describe_counter!("palisade_messages_out_total", "Text frames sent to clients.");
    describe_counter!("palisade_rejections_total", "Client requests refused with an error frame, by error code.");
    describe_gauge!("palisade_bans_active", "Bans in force.");
    describe_gauge!("palisade_history_bytes", "Bytes of room history kept, in every room.");
    describe_counter!("palisade_bans_issued_total", "Bans the abuse guard imposed.");
    describe_counter!("palisade_anomaly_actions_total", "Enforced anomaly-score actions, by action.");
    describe_counter!("palisade_audit_records_written_total", "Audit records written to the store.");
    describe_counter!("palisade_audit_records_dropped_total", "Audit records dropped on a full queue.");
    describe_counter!(
        "palisade_audit_chain_breaks_total",
        "Times the audit writer found the record it signed last rewritten; it stopped signing."
    );
    describe_counter!("palisade_siem_sent_total", "Audit records sent to the SIEM (siem.syslog).");
    describe_counter!(
        "palisade_siem_dropped_total",
        "Audit records the SIEM lost (a full siem.queue); each is told in a gap record."
    );
    describe_gauge!("palisade_siem_connected", "1 while the SIEM sender is connected to its receiver, else 0.");
    describe_counter!(STORE_ERRORS, "Failed calls to the embedded store.");
    describe_histogram!(STORE_LATENCY, ::metrics::Unit::Seconds, "Duration of calls to the embedded store.");
    describe_histogram!(PIPELINE, ::metrics::Unit::Seconds, "Duration of one text frame through the session pipeline.");
}

/// An anomaly-score action, as labelled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Restrict,
    Disconnect,
    Ban,
}

/// One server's metric handles, registered at start: recording is an
/// atomic add, with no label lookup or allocation on the message path.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) messages_in: Counter,
    pub(crate) messages_out: Counter,
    pub(crate) pipeline: Histogram,
    pub(crate) opened: Counter,
    /// By [`CloseCode::ALL`], then [`PEER_CLOSED`] and [`LOST`].
    closed: Vec<Counter>,
    /// By [`Kind::ALL`].
    refused: Vec<Counter>,
    /// By [`ErrorCode::ALL`].
    rejections: Vec<Counter>,
    pub(crate) bans_issued: Counter,
    /// By [`Action`].
    actions: [Counter; 3],
    pub(crate) audit_written: Counter,
    connections: Gauge,
    bans_active: Gauge,
    history_bytes: Gauge,
}

impl Metrics {
    /// Installs the process's recorder if not yet done, and registers the
    /// handles (every label value, so each series shows from the start).
    pub(crate) fn new() -> Self {
        let _ = handle();
        let closed = CloseCode::ALL
            .iter()
            .map(|c| counter!("palisade_connections_closed_total", "code" => c.code().to_string()))
            .chain([PEER_CLOSED, LOST].map(|l| counter!("palisade_connections_closed_total", "code" => l)))
            .collect();
        Self {
            messages_in: counter!("palisade_messages_in_total"),
            messages_out: counter!("palisade_messages_out_total"),
            pipeline: histogram!(PIPELINE),
            opened: counter!("palisade_connections_opened_total"),
            closed,
            refused: Kind::ALL
                .iter()
                .map(|k| counter!("palisade_handshakes_refused_total", "kind" => k.name()))
                .collect(),
            rejections: ErrorCode::ALL
                .iter()
                .map(|c| counter!("palisade_rejections_total", "code" => c.as_str()))
                .collect(),
            bans_issued: counter!("palisade_bans_issued_total"),
            actions: ["restrict", "disconnect", "ban"]
                .map(|a| counter!("palisade_anomaly_actions_total", "action" => a)),
            audit_written: counter!("palisade_audit_records_written_total"),
            connections: gauge!("palisade_connections_current"),
            bans_active: gauge!("palisade_bans_active"),
            history_bytes: gauge!("palisade_history_bytes"),
        }
    }

    /// A connection ended as `exit` says.
    pub(crate) fn closed(&self, exit: Exit) {
        let index = match exit {
            Exit::Close(code) | Exit::Fail(code) => CloseCode::ALL.iter().position(|c| *c == code),
            Exit::PeerClosed => Some(CloseCode::ALL.len()),
            Exit::Gone => Some(CloseCode::ALL.len() + 1),
            Exit::Relay(code, _) => CloseCode::ALL.iter().position(|c| c.code() == code),
        };
        if let Some(counter) = index.and_then(|i| self.closed.get(i)) {
            counter.increment(1);
        }
    }

    /// A socket or upgrade refused.
    pub(crate) fn handshake_refused(&self, kind: Kind) {
        self.refused[kind as usize].increment(1);
    }

    /// A request refused with an error frame.
    pub(crate) fn rejected(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.rejections[i].increment(1);
        }
    }

    /// An anomaly action the guard enforced.
    pub(crate) fn action(&self, action: Action) {
        self.actions[action as usize].increment(1);
    }

    /// One text frame's time through the pipeline, from `started`.
    pub(crate) fn pipeline_since(&self, started: Instant) {
        self.pipeline.record(started.elapsed());
    }

    /// The Prometheus text, with the gauges set from the scraped server's
    /// counts, or `None` when the recorder could not be installed.
    pub(crate) fn render(&self, at_scrape: AtScrape) -> Option<String> {
        let handle = handle()?;
        self.connections.set(at_scrape.open_connections as f64);
        self.bans_active.set(at_scrape.bans_active as f64);
        self.history_bytes.set(at_scrape.history_bytes as f64);
        Some(handle.render())
    }
}

/// The gauges read at scrape time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtScrape {
    pub(crate) open_connections: usize,
    pub(crate) bans_active: usize,
    pub(crate) history_bytes: usize,
}

/// Folds histogram samples into buckets every [`UPKEEP_EVERY`] until
/// `shutdown`.
pub(crate) async fn upkeep(shutdown: CancellationToken) {
    let Some(handle) = handle() else { return };
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
