//! The writer task: takes entries from both lanes in batches (operators'
//! first), writes a gap record for what was lost, appends after checking
//! the record it signed last, signs checkpoints, and applies
//! `audit.retention`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use palisade_core::audit::{self, Checkpoint, Entry, Hash, Rewritten};
use palisade_core::store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Audit, Lanes};
use crate::alerts::Alerts;
use crate::clock::Clock;
use crate::config::{AuditConfig, AuditKey};
use crate::gateway::Store;
use crate::telemetry::Metrics;

/// Most entries written in one transaction: a flood becomes few, larger
/// transactions instead of one `fsync` per record.
const BATCH: usize = 256;

/// How often `audit.retention` is applied (and once at start).
const RETAIN_EVERY: Duration = Duration::from_secs(60);

/// What the writer works with, handed over by the assembly once.
pub(crate) struct Parts {
    /// The queue it drains, and whose health it reports.
    pub(crate) audit: Arc<Audit>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Arc<Metrics>,
    /// Where a chain break or a gap raises an operator alert.
    pub(crate) alerts: Arc<Alerts>,
    pub(crate) clock: Clock,
    /// `[audit]`, with `checkpoint_file` already resolved against the
    /// config's directory.
    pub(crate) config: AuditConfig,
    pub(crate) checkpoint_file: Option<PathBuf>,
    pub(crate) key: Option<AuditKey>,
}

/// Starts the writer, if the log is on; it runs until `stop` is cancelled,
/// then writes what is queued and a last checkpoint.
pub(crate) fn spawn_writer(parts: Parts, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let lanes = parts.audit.take_receivers()?;
    // Set before the task first runs, cleared when its future is dropped:
    // when it returns, panics, or is never polled.
    parts.audit.alive.store(true, Ordering::Release);
    let alive = Alive(Arc::clone(&parts.audit));
    Some(tokio::spawn(async move {
        writer(Arc::new(parts), lanes, stop).await;
        drop(alive);
    }))
}

/// Marks the writer stopped when dropped.
struct Alive(Arc<Audit>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
    }
}

/// The writer's state between batches.
struct Writer {
    state: Arc<Parts>,
    key: Option<AuditKey>,
    file: Option<PathBuf>,
    every: u64,
    /// Records written since the last checkpoint.
    pending: u64,
    /// The chain's head as last written or read.
    head: Option<(u64, Hash)>,
    /// The record this writer signed last (at start: the head it found,
    /// which it continues): every append first checks it is still there.
    /// `None` once the chain was found rewritten: nothing is signed again.
    signed: Option<(u64, Hash)>,
    /// Drops and store failures already told in a gap record.
    lost_told: (u64, u64),
}

async fn writer(state: Arc<Parts>, mut lanes: Lanes, stop: CancellationToken) {
    let config = &state.config;
    let store = Arc::clone(&state.store);
    // The chain goes on from the head in the store; every append chains in
    // its transaction, and checks that the last checkpoint signed (by an
    // earlier run, from the checkpoint file, else this head) is still there,
    // so a chain rewritten while the server was down is not signed either.
    let file = state.checkpoint_file.clone();
    let key = state.key.clone();
    let last_signed = match (&file, &key) {
        (Some(path), Some(key)) => last_checkpoint(path.clone(), key.clone()).await,
        _ => None,
    };
    let head = match crate::gateway::call("audit_head", &store, |store| store.head()).await {
        Ok(head) => head,
        Err(e) => {
            error!(error = %e, "cannot read the audit log's head");
            None
        }
    };
    let mut w = Writer {
        key,
        file,
        every: config.checkpoint_every,
        pending: 0,
        head,
        signed: last_signed.or(head),
        lost_told: (0, 0),
        state: Arc::clone(&state),
    };
    let mut tick = tokio::time::interval(config.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // Zero is folding off; the tick then only has nothing to flush.
    let mut folds = tokio::time::interval(config.aggregate_interval.max(Duration::from_secs(1)));
    folds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retain = tokio::time::interval(RETAIN_EVERY);
    retain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    let mut refusals = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            // Operators' records first: a flood of refusals never delays them.
            biased;
            received = lanes.urgent.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
            }
            received = lanes.refusals.recv_many(&mut refusals, BATCH) => {
                if received == 0 {
                    break;
                }
                batch.append(&mut refusals);
            }
            _ = folds.tick() => batch.extend(state.audit.flush_folds(state.clock.now())),
            _ = tick.tick() => {
                if w.pending > 0 {
                    w.checkpoint().await;
                }
                continue;
            }
            _ = retain.tick() => {
                w.retain().await;
                continue;
            }
            () = stop.cancelled() => break,
        }
        w.write(&mut batch).await;
        if w.pending >= w.every {
            w.checkpoint().await;
        }
    }
    // What was queued before the stop is written; then the head is anchored.
    while let Ok(entry) = lanes.urgent.try_recv() {
        batch.push(entry);
    }
    while let Ok(entry) = lanes.refusals.try_recv() {
        batch.push(entry);
    }
    batch.extend(state.audit.flush_folds(palisade_core::Timestamp::from_millis(u64::MAX)));
    for chunk in std::mem::take(&mut batch).chunks(BATCH) {
        w.write(&mut chunk.to_vec()).await;
    }
    w.checkpoint().await;
}

/// The last checkpoint in `path` if it is `key`'s: what an earlier run
/// signed last. A missing, unreadable or unsigned file gives `None` (the
/// writer then continues the head it finds), with a warning for the last
/// two.
async fn last_checkpoint(path: PathBuf, key: AuditKey) -> Option<(u64, Hash)> {
    let read = tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
        Ok(text) => {
            let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
            match Checkpoint::parse(line) {
                Ok(c) if c.is_signed_by(key.bytes()) => Some((c.seq, c.hash)),
                _ => {
                    warn!("the last line of audit.checkpoint_file is not a checkpoint signed by the key; ignored");
                    None
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            warn!(error = %e, "cannot read audit.checkpoint_file; continuing from the store's head");
            None
        }
    });
    read.await.ok().flatten()
}

impl Writer {
    /// Appends `batch` (emptying it) on a blocking thread, after a gap
    /// record if records were lost since the last one.
    async fn write(&mut self, batch: &mut Vec<Entry>) {
        let lost = (self.state.audit.dropped(), self.state.audit.failed());
        let gap = lost != self.lost_told;
        if gap {
            let (dropped, failed) = (lost.0 - self.lost_told.0, lost.1 - self.lost_told.1);
            let detail = format!(
                "{} records lost before this one: {dropped} dropped on a full queue (audit.queue), \
                 {failed} the store failed to write",
                dropped + failed
            );
            let now = self.state.clock.now();
            self.state.alerts.raise(now, "audit_gap", "warning", detail.clone());
            batch.insert(0, Entry::new(now, audit::Kind::Gap, &detail));
        }
        if batch.is_empty() {
            return;
        }
        let entries = std::mem::take(batch);
        let count = entries.len() as u64;
        match self.append(entries).await {
            Ok(()) => {
                self.lost_told = lost;
                self.state.audit.written.fetch_add(count, Ordering::Relaxed);
                self.state.metrics.audit_written.increment(count);
                self.pending += count;
                self.state.audit.appended.notify_one();
            }
            Err(e) => {
                // The gap record is not counted as lost: the next one tells
                // these records and what it told.
                let lost_now = count - u64::from(gap);
                self.state.audit.failed.fetch_add(lost_now, Ordering::Relaxed);
                error!(error = %e, records = lost_now, "could not write audit records; they are lost");
            }
        }
    }

    /// Appends `entries` after checking the signed record; if the chain
    /// was rewritten under it, records the break first and stops signing.
    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let signed = self.signed;
        let first = self
            .store_call("audit_append", move |store| store.append_after(signed, &entries).map(|r| (r, entries)))
            .await?;
        let entries = match first {
            (Ok(head), _) => {
                self.head = head;
                return Ok(());
            }
            (Err(rewritten), entries) => {
                self.broken(&rewritten);
                let detail = format!("{rewritten}; checkpoints stopped");
                let note = Entry::new(self.state.clock.now(), audit::Kind::ChainBreak, &detail);
                std::iter::once(note).chain(entries).collect::<Vec<_>>()
            }
        };
        let (appended, _) =
            self.store_call("audit_append", move |store| store.append_after(None, &entries).map(|r| (r, ()))).await?;
        self.head = appended.map_err(|e| StoreError(e.to_string()))?;
        Ok(())
    }

    /// The chain was rewritten under the record this writer signed: never
    /// sign again (the head now continues a forgery), say so loudly, and
    /// fail `/readyz` until an operator looks.
    fn broken(&mut self, rewritten: &Rewritten) {
        self.signed = None;
        self.state.audit.broken.store(true, Ordering::Release);
        self.state.audit.breaks_metric.increment(1);
        error!(
            error = %rewritten,
            "the audit log was rewritten in the database: checkpoints stopped; \
             run `palisade audit verify --checkpoints` and restore the database from a backup"
        );
        // After the error line: the log says what happened before the alert.
        self.state.alerts.raise(
            self.state.clock.now(),
            "audit_chain_break",
            "critical",
            format!("audit chain broken ({rewritten}); checkpoints stopped until restart"),
        );
    }

    async fn store_call<T: Send + 'static>(
        &self,
        op: &'static str,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        crate::gateway::call(op, &self.state.store, move |store| call(store)).await
    }

    /// Signs the head and writes the checkpoint line to the log and the
    /// checkpoint file; nothing once the chain was found rewritten.
    async fn checkpoint(&mut self) {
        if self.state.audit.is_broken() {
            return;
        }
        let (Some(key), Some((seq, hash))) = (&self.key, self.head) else { return };
        self.pending = 0;
        let checkpoint = match Checkpoint::sign(key.bytes(), seq, hash) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                error!(error = %e, "cannot sign an audit checkpoint");
                return;
            }
        };
        self.signed = Some((seq, hash));
        info!("audit checkpoint {checkpoint}");
        let Some(path) = self.file.clone() else { return };
        let line = format!("{checkpoint}\n");
        let appended = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(line.as_bytes())?;
            file.sync_data()
        })
        .await;
        match appended {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot append to audit.checkpoint_file; the checkpoint is in this log"),
            Err(e) => warn!(error = %e, "checkpoint file writer failed"),
        }
    }

    /// Removes what `audit.retention` no longer keeps: every record up to
    /// one before the record signed last, replaced by a `retention` record
    /// carrying the signed checkpoint of the last one removed, so what is
    /// kept still verifies from there.
    async fn retain(&mut self) {
        let retention = self.state.config.retention.clone();
        let (Some(key), Some(signed)) = (self.key.clone(), self.signed) else { return };
        let below = signed.0;
        if !retention.prunes() || self.state.audit.is_broken() {
            return;
        }
        let now = self.state.clock.now();
        let older_than = (!retention.max_age.is_zero()).then(|| now.saturating_sub(retention.max_age));
        let keep = (retention.max_records > 0).then_some(retention.max_records);
        let point = self.store_call("audit_prune", move |store| store.prune_point(older_than, keep, below)).await;
        let (seq, hash) = match point {
            Ok(Some(point)) => point,
            Ok(None) => return,
            Err(e) => return warn!(error = %e, "could not apply audit.retention; will retry"),
        };
        let anchor = match Checkpoint::sign(key.bytes(), seq, hash) {
            Ok(anchor) => anchor,
            Err(e) => return error!(error = %e, "cannot sign the audit retention anchor"),
        };
        let note = audit::retention_entry(now, &anchor);
        match self.store_call("audit_prune", move |store| store.prune_through(signed, (seq, hash), note)).await {
            Ok(Ok(head)) => {
                self.head = head;
                self.pending += 1;
                self.state.audit.appended.notify_one();
                info!(through = seq, "audit.retention removed the oldest records; anchor {anchor}");
            }
            Ok(Err(rewritten)) => self.broken(&rewritten),
            Err(e) => warn!(error = %e, "could not apply audit.retention; will retry"),
        }
    }
}
