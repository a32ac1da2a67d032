//! The audit log's writer (docs/ARCHITECTURE.md, "Audit log"): decision
//! points hand an unchained [`Entry`] to [`Audit::record`], which never
//! waits (a full queue drops the entry and counts it); one task takes them
//! in batches, has the store chain and write them off the runtime's
//! workers, and signs checkpoints of the head into the server log (and
//! `audit.checkpoint_file`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use palisade_core::audit::{self, Checkpoint, Entry, Hash};
use palisade_core::guard::{Ban, Subject};
use palisade_core::store::StoreError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::AuditKey;
use crate::state::{AppState, Store};

/// Most entries written in one transaction: a flood becomes few, larger
/// transactions instead of one `fsync` per record.
const BATCH: usize = 256;

/// The sending side of the audit log, shared by every task.
#[derive(Debug)]
pub(crate) struct Audit {
    /// `None` when `audit.enabled` is off.
    tx: Option<mpsc::Sender<Entry>>,
    /// The receiving side, until the writer takes it.
    rx: Mutex<Option<mpsc::Receiver<Entry>>>,
    /// Entries dropped because the queue was full (or the writer gone).
    dropped: AtomicU64,
    /// Entries durably written.
    written: AtomicU64,
    /// Entries the store failed to write.
    failed: AtomicU64,
    /// Whether the writer task is running (for `/readyz`).
    alive: AtomicBool,
    /// Counts drops for `/metrics` too (registered after the recorder is
    /// installed: `AppState::new` builds its metrics first).
    dropped_metric: ::metrics::Counter,
}

impl Audit {
    /// The log's queue of `queue` entries, or an off switch.
    pub(crate) fn new(enabled: bool, queue: usize) -> Self {
        let (tx, rx) = if enabled {
            let (tx, rx) = mpsc::channel(queue.max(1));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            tx,
            rx: Mutex::new(rx),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            alive: AtomicBool::new(false),
            dropped_metric: ::metrics::counter!("palisade_audit_records_dropped_total"),
        }
    }

    /// Queues `entry` for the writer. Never waits: on the message path a
    /// slow disk must cost a counted drop, not latency.
    pub(crate) fn record(&self, entry: Entry) {
        if let Some(tx) = &self.tx
            && tx.try_send(entry).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_metric.increment(1);
        }
    }

    /// Whether the writer task is running.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
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

    fn take_receiver(&self) -> Option<mpsc::Receiver<Entry>> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()
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

/// Starts the writer, if the log is on; it runs until `stop` is cancelled,
/// then writes what is queued and a last checkpoint.
pub(crate) fn spawn_writer(state: &Arc<AppState>, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let rx = state.audit.take_receiver()?;
    // Set before the task first runs, cleared when its future is dropped:
    // when it returns, panics, or is never polled.
    state.audit.alive.store(true, Ordering::Release);
    let alive = Alive(Arc::clone(state));
    Some(tokio::spawn(async move {
        writer(Arc::clone(&alive.0), rx, stop).await;
        drop(alive);
    }))
}

/// Marks the writer stopped when dropped.
struct Alive(Arc<AppState>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.audit.alive.store(false, Ordering::Release);
    }
}

/// Where checkpoints go, and when.
struct Checkpoints {
    key: Option<AuditKey>,
    file: Option<PathBuf>,
    every: u64,
    /// Records written since the last checkpoint.
    pending: u64,
    /// The chain's head as last written or read.
    head: Option<(u64, Hash)>,
}

async fn writer(state: Arc<AppState>, mut rx: mpsc::Receiver<Entry>, stop: CancellationToken) {
    let config = &state.settings.config.audit;
    let store = Arc::clone(&state.store);
    // The chain goes on from the head in the store; read here only for the
    // shutdown checkpoint, since every append chains in its transaction.
    let head = match tokio::task::spawn_blocking(move || store.head()).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            error!(error = %e, "cannot read the audit log's head");
            None
        }
        Err(e) => {
            error!(error = %e, "audit head reader failed");
            None
        }
    };
    let mut checkpoints = Checkpoints {
        key: state.settings.audit_key.clone(),
        file: config.checkpoint_path(&state.settings.config.base_dir),
        every: config.checkpoint_every,
        pending: 0,
        head,
    };
    let mut tick = tokio::time::interval(config.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                write(&state, &mut batch, &mut checkpoints).await;
                if checkpoints.pending >= checkpoints.every {
                    checkpoint(&mut checkpoints).await;
                }
            }
            _ = tick.tick() => {
                if checkpoints.pending > 0 {
                    checkpoint(&mut checkpoints).await;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    // What was queued before the stop is written; then the head is anchored.
    while let Ok(entry) = rx.try_recv() {
        batch.push(entry);
        if batch.len() == BATCH {
            write(&state, &mut batch, &mut checkpoints).await;
        }
    }
    write(&state, &mut batch, &mut checkpoints).await;
    checkpoint(&mut checkpoints).await;
}

/// Appends `batch` (emptying it) on a blocking thread.
async fn write(state: &AppState, batch: &mut Vec<Entry>, checkpoints: &mut Checkpoints) {
    if batch.is_empty() {
        return;
    }
    let entries = std::mem::take(batch);
    let count = entries.len() as u64;
    let store: Arc<dyn Store> = Arc::clone(&state.store);
    let appended = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let appended = store.append(&entries);
        crate::admin::metrics::store_call(started, &appended);
        appended
    })
    .await
    .map_err(|e| StoreError(format!("audit writer task failed: {e}")))
    .and_then(|r| r);
    match appended {
        Ok(head) => {
            state.audit.written.fetch_add(count, Ordering::Relaxed);
            state.metrics.audit_written.increment(count);
            checkpoints.head = head;
            checkpoints.pending += count;
        }
        Err(e) => {
            state.audit.failed.fetch_add(count, Ordering::Relaxed);
            error!(error = %e, records = count, "could not write audit records; they are lost");
        }
    }
}

/// Signs the head and writes the checkpoint line to the log and the
/// checkpoint file.
async fn checkpoint(checkpoints: &mut Checkpoints) {
    let (Some(key), Some((seq, hash))) = (&checkpoints.key, checkpoints.head) else { return };
    checkpoints.pending = 0;
    let checkpoint = match Checkpoint::sign(key.bytes(), seq, hash) {
        Ok(checkpoint) => checkpoint,
        Err(e) => {
            error!(error = %e, "cannot sign an audit checkpoint");
            return;
        }
    };
    info!("audit checkpoint {checkpoint}");
    let Some(path) = checkpoints.file.clone() else { return };
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
