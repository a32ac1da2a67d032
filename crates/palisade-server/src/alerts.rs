//! Operator alerts (docs/OPERATIONS.md, "Alerts"): decision points hand an
//! [`Alert`] to [`Alerts::raise`], which never waits. The last
//! `alerts.keep` are listed for `GET /api/alerts` and the dashboard; with
//! `alerts.url` set they also wait in a bounded queue (full: the oldest is
//! dropped and counted) for one sender task, which POSTs each as signed
//! JSON and retries with a doubling backoff a bounded number of times.
//! Whether a counter's rate is a crossing is `core::alerts::Threshold`'s
//! decision; [`watch_rates`] only samples the counters for it.
//!
//! The URL is never logged: a webhook URL often carries its own token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use palisade_core::Timestamp;
use palisade_core::alerts::{Crossing, Threshold, sign};
use palisade_core::guard::Ban;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{AlertSecret, AlertsConfig};

/// How often [`watch_rates`] samples the counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One alert, as listed and as POSTed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alert {
    /// Increasing within one process, to tell deliveries apart.
    pub(crate) id: u64,
    pub(crate) at_ms: u64,
    /// `ban`, `refusals`, `auth_failures`, `audit_chain_break`, `audit_gap`.
    pub(crate) kind: &'static str,
    /// `critical` or `warning`; a cleared flood is `info`.
    pub(crate) severity: &'static str,
    /// What happened, for a person; never a credential or message body.
    pub(crate) summary: String,
    /// The node that raised it (`server.node_id`).
    pub(crate) node: String,
}

/// The alerts of one server: the recent list and the sender's queue.
#[derive(Debug)]
pub(crate) struct Alerts {
    node: String,
    keep: usize,
    /// `None` without `alerts.url`: nothing is sent.
    max_queue: Option<usize>,
    next_id: AtomicU64,
    recent: Mutex<VecDeque<Alert>>,
    queue: Mutex<VecDeque<Alert>>,
    wake: Notify,
    dropped: AtomicU64,
    dropped_metric: ::metrics::Counter,
    sent_metric: ::metrics::Counter,
    failed_metric: ::metrics::Counter,
}

impl Alerts {
    /// Alerts as `config` sizes them (registered after the metrics
    /// recorder is installed).
    pub(crate) fn new(config: &AlertsConfig, node: &str) -> Self {
        Self {
            node: node.to_owned(),
            keep: config.keep,
            max_queue: (!config.url.is_empty()).then_some(config.max_queue),
            next_id: AtomicU64::new(1),
            recent: Mutex::new(VecDeque::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
            dropped_metric: ::metrics::counter!("palisade_alerts_dropped_total"),
            sent_metric: ::metrics::counter!("palisade_alerts_sent_total"),
            failed_metric: ::metrics::counter!("palisade_alerts_failed_total"),
        }
    }

    /// Lists `kind` and queues it for the webhook. Never waits.
    pub(crate) fn raise(&self, now: Timestamp, kind: &'static str, severity: &'static str, summary: String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let alert = Alert { id, at_ms: now.as_millis(), kind, severity, summary, node: self.node.clone() };
        warn!(alert = kind, severity, summary = %alert.summary, "alert");
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() == self.keep {
                recent.pop_back();
            }
            recent.push_front(alert.clone());
        }
        let Some(max) = self.max_queue else { return };
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= max {
            // The oldest gives way: the newest says most about now.
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_metric.increment(1);
        }
        queue.push_back(alert);
        drop(queue);
        self.wake.notify_one();
    }

    /// A ban put in force, the guard's or an operator's.
    pub(crate) fn ban(&self, now: Timestamp, ban: &Ban) {
        let until = ban.until.map_or_else(|| "permanent".to_owned(), |t| format!("until_ms={}", t.as_millis()));
        let summary = format!(
            "{} ban of {} ({until}, strikes={}): {}",
            ban.source.as_str(),
            ban.subject,
            ban.strikes,
            ban.reason
        );
        self.raise(now, "ban", "warning", summary);
    }

    /// The last alerts, newest first.
    pub(crate) fn recent(&self) -> Vec<Alert> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Alerts waiting for the sender.
    pub(crate) fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Alerts dropped from a full queue so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn pop(&self) -> Option<Alert> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }
}

/// What the sender needs, taken from the config once.
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret: AlertSecret,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
}

impl Webhook {
    /// The webhook `config` names, if any.
    pub(crate) fn of(config: &AlertsConfig, secret: Option<&AlertSecret>) -> Option<Self> {
        Some(Self {
            url: config.url.clone(),
            secret: secret?.clone(),
            timeout: config.timeout,
            attempts: config.attempts,
            backoff: config.backoff,
        })
    }
}

/// Sends queued alerts, one at a time, until `stop`.
pub(crate) async fn send(alerts: Arc<Alerts>, hook: Webhook, clock: Clock, stop: CancellationToken) {
    loop {
        let Some(alert) = alerts.pop() else {
            tokio::select! {
                () = alerts.wake.notified() => continue,
                () = stop.cancelled() => return,
            }
        };
        tokio::select! {
            delivered = deliver(&hook, &clock, &alert) => {
                if delivered { alerts.sent_metric.increment(1) } else { alerts.failed_metric.increment(1) }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Up to `hook.attempts` tries, `backoff` doubling between them.
async fn deliver(hook: &Webhook, clock: &Clock, alert: &Alert) -> bool {
    let body = serde_json::to_vec(alert).unwrap_or_default();
    let mut wait = hook.backoff;
    for attempt in 1..=hook.attempts {
        let result = match tokio::time::timeout(hook.timeout, Box::pin(post(hook, clock.now(), &body))).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within alerts.timeout ({:?})", hook.timeout)),
        };
        match result {
            Ok(()) => {
                info!(alert = alert.id, attempt, "alert delivered");
                return true;
            }
            Err(why) if attempt < hook.attempts => {
                warn!(alert = alert.id, attempt, error = %why, retry_in_ms = wait.as_millis(), "alert delivery failed");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            Err(why) => warn!(alert = alert.id, attempt, error = %why, "alert delivery failed; giving up on it"),
        }
    }
    false
}

/// One signed POST of `body`; success is any 2xx answer.
async fn post(hook: &Webhook, now: Timestamp, body: &[u8]) -> Result<(), String> {
    let uri: http::Uri = hook.url.parse().map_err(|_| "alerts.url does not parse".to_owned())?;
    let authority = uri.authority().ok_or("alerts.url has no host")?.clone();
    let https = uri.scheme_str() == Some("https");
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let timestamp = now.as_secs();
    let request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .header(header::CONNECTION, "close")
        .header("x-palisade-timestamp", timestamp.to_string())
        .header("x-palisade-signature", sign(hook.secret.bytes(), timestamp, body))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot connect: {e}"))?;
    let status = if https {
        let name = ServerName::try_from(host).map_err(|e| format!("TLS: {e}"))?;
        let connector = crate::jwks::connector().map_err(|e| format!("TLS: {e}"))?;
        let tls = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        exchange(tls, request).await?
    } else {
        exchange(tcp, request).await?
    };
    if status.is_success() { Ok(()) } else { Err(format!("status {status}, want 2xx")) }
}

async fn exchange<S>(io: S, request: http::Request<Full<Bytes>>) -> Result<StatusCode, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let _conn = crate::jwks::AbortOnDrop(tokio::spawn(async move {
        // Its error, if any, shows as the request's.
        let _ = conn.await;
    }));
    // The answer's body is not read: only its status counts.
    Ok(sender.send_request(request).await.map_err(|e| e.to_string())?.status())
}

/// The counters [`watch_rates`] samples, both monotonic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) refusals: u64,
    pub(crate) auth_failures: u64,
}

/// Samples `read` every second and raises an alert when a rate crosses its
/// threshold (and an `info` one when the flood is over), until `stop`.
pub(crate) async fn watch_rates(
    alerts: Arc<Alerts>,
    config: &AlertsConfig,
    clock: Clock,
    read: impl Fn() -> Counts,
    stop: CancellationToken,
) {
    let mut refusals = Threshold::new(config.refusals_per_second, config.window);
    let mut auth = Threshold::new(config.auth_failures_per_second, config.window);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (now, counts) = (clock.now(), read());
        let crossings = [
            ("refusals", "refusals", config.refusals_per_second, refusals.observe(now, counts.refusals)),
            (
                "auth_failures",
                "authentication failures",
                config.auth_failures_per_second,
                auth.observe(now, counts.auth_failures),
            ),
        ];
        for (kind, what, limit, crossing) in crossings {
            match crossing {
                Some(Crossing::Raised { rate }) => alerts.raise(
                    now,
                    kind,
                    "critical",
                    format!("{what} at {rate:.1}/s over {:?}, at or above {limit}/s", config.window),
                ),
                Some(Crossing::Cleared { rate }) => alerts.raise(
                    now,
                    kind,
                    "info",
                    format!("{what} back to {rate:.1}/s over {:?}, below half of {limit}/s", config.window),
                ),
                None => {}
            }
        }
    }
}
