//! The audit log's writer (docs/ARCHITECTURE.md, "Audit log"): decision
//! points hand an unchained [`Entry`] to [`Audit::record`], which never
//! waits. Refusals are folded (repeats of one kind from one subject within
//! `audit.aggregate_interval` are one record and a count, decided by
//! `core::audit::Fold`) and queued in a bounded lane that drops and counts
//! when full; every other kind (bans, operator actions, revocations, token
//! reuse) has a lane of its own that refusals cannot fill, drained first.
//! One task takes them in batches, writes a gap record for whatever was
//! lost, has the store chain and write them off the runtime's workers, and
//! signs checkpoints of the head into the server log (and
//! `audit.checkpoint_file`): only while the record it signed last is still
//! in the store as signed. It also applies `audit.retention`.

mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use palisade_core::audit::{self, Entry, Fold};
use palisade_core::guard::{Ban, Subject};
use tokio::sync::mpsc;

use crate::config::AuditConfig;

pub(crate) use writer::{Parts, spawn_writer};

/// Most (kind, subject) keys folded at once: past it refusals go to the
/// queue unfolded, so a flood from many addresses costs bounded memory.
const MAX_FOLDED: usize = 10_000;

/// The sending side of the audit log, shared by every task.
#[derive(Debug)]
pub(crate) struct Audit {
    /// Refusals; `None` when `audit.enabled` is off.
    tx: Option<mpsc::Sender<Entry>>,
    /// Everything else: never dropped. Unbounded because each entry stands
    /// for a ban already held in memory or an action someone had to be
    /// authenticated (and rate-limited) for, so it grows no faster than
    /// they do; refusals never go here.
    urgent: Option<mpsc::UnboundedSender<Entry>>,
    /// The receiving sides, until the writer takes them.
    rx: Mutex<Option<Lanes>>,
    /// Repeated refusals of the current interval.
    fold: Mutex<Fold>,
    /// Entries dropped because the queue was full (or the writer gone).
    dropped: AtomicU64,
    /// Entries durably written.
    written: AtomicU64,
    /// Entries the store failed to write.
    failed: AtomicU64,
    /// Whether the writer task is running (for `/readyz`).
    alive: AtomicBool,
    /// Whether the writer found the chain rewritten under it and stopped
    /// signing (for `/readyz`).
    broken: AtomicBool,
    /// Counts drops for `/metrics` too (registered after the recorder is
    /// installed: `AppState::new` builds its metrics first).
    dropped_metric: ::metrics::Counter,
    /// Counts chain breaks for `/metrics`.
    breaks_metric: ::metrics::Counter,
    /// Woken when the writer appended, for whoever follows the chain.
    appended: tokio::sync::Notify,
}

/// The writer's ends of the two lanes.
#[derive(Debug)]
struct Lanes {
    refusals: mpsc::Receiver<Entry>,
    urgent: mpsc::UnboundedReceiver<Entry>,
}

impl Audit {
    /// The log's lanes as `config` sizes them, or an off switch.
    pub(crate) fn new(config: &AuditConfig) -> Self {
        let (tx, urgent, rx) = if config.enabled {
            let (tx, refusals) = mpsc::channel(config.queue.max(1));
            let (urgent_tx, urgent) = mpsc::unbounded_channel();
            (Some(tx), Some(urgent_tx), Some(Lanes { refusals, urgent }))
        } else {
            (None, None, None)
        };
        Self {
            tx,
            urgent,
            rx: Mutex::new(rx),
            fold: Mutex::new(Fold::new(config.aggregate_interval, MAX_FOLDED)),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            alive: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            dropped_metric: ::metrics::counter!("palisade_audit_records_dropped_total"),
            breaks_metric: ::metrics::counter!("palisade_audit_chain_breaks_total"),
            appended: tokio::sync::Notify::new(),
        }
    }

    /// Queues `entry` for the writer. Never waits: on the message path a
    /// slow disk must cost a counted drop, not latency.
    pub(crate) fn record(&self, entry: Entry) {
        let (Some(tx), Some(urgent)) = (&self.tx, &self.urgent) else { return };
        if !matches!(entry.kind, audit::Kind::Refused(_)) {
            if urgent.send(entry).is_err() {
                self.drop_entries(1);
            }
            return;
        }
        let now = entry.ts;
        let admitted = self.fold.lock().unwrap_or_else(PoisonError::into_inner).admit(entry, now);
        for entry in admitted.summaries.into_iter().chain(admitted.entry) {
            if tx.try_send(entry).is_err() {
                self.drop_entries(1);
            }
        }
    }

    fn drop_entries(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
        self.dropped_metric.increment(count);
    }

    /// Whether the writer task is running.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Whether the chain was found rewritten and checkpoints stopped.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Entries dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Entries the store failed to write so far.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Resolves once the writer appended since the last call (one
    /// follower: a wake-up is kept until it asks).
    pub(crate) async fn appended(&self) {
        self.appended.notified().await;
    }

    fn take_receivers(&self) -> Option<Lanes> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The summaries of a folding interval that ended by `now`.
    fn flush_folds(&self, now: palisade_core::Timestamp) -> Vec<Entry> {
        self.fold.lock().unwrap_or_else(PoisonError::into_inner).flush(now)
    }
}

/// The audit record of a ban (the guard's or an operator's): the subject in `ip` or
/// `user`, the term and its reason (the guard's is a violation kind; an operator's is their
/// `--reason`) in `detail`.
pub(crate) fn ban_entry(ban: &Ban, now: palisade_core::Timestamp) -> Entry {
    let until = ban.until.map_or_else(|| "permanent".to_owned(), |t| format!("until_ms={}", t.as_millis()));
    let detail = format!("{} ban {until} strikes={}: {}", ban.source.as_str(), ban.strikes, ban.reason);
    let entry = Entry::new(now, audit::Kind::Ban, &detail);
    match &ban.subject {
        Subject::Ip(ip) => entry.ip(ip),
        Subject::User(user) => entry.user(Some(user)),
    }
}
