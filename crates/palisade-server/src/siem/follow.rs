//! Following the audit chain in the store, from the head found at start,
//! into the SIEM's queue; and starting and stopping both tasks.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::store::StoreError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::Siem;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::gateway::Store;

/// Records read from the store at a time.
const PAGE: usize = 256;

/// How often the store is read without a wake-up from the writer: what
/// other processes append (the CLI) reaches the SIEM within this.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// What the SIEM's tasks work with, handed over by the assembly once.
pub(crate) struct Parts {
    pub(crate) siem: Arc<Siem>,
    /// Where the writer says it appended, and where gap records go.
    pub(crate) audit: Arc<Audit>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
}

/// The running tasks, to stop after the audit writer.
pub(crate) struct Running {
    siem: Arc<Siem>,
    stop_follow: CancellationToken,
    follow: JoinHandle<()>,
    stop_sending: CancellationToken,
    sender: JoinHandle<()>,
}

/// Reads the chain's head, then starts following it and sending: records
/// from the next one on are streamed. (What the store held before the
/// start was an earlier run's to send; `palisade audit export` has it.)
pub(crate) async fn start(parts: Parts) -> Running {
    let next = match crate::gateway::call("siem_read", &parts.store, |store| store.head()).await {
        Ok(head) => head.map_or(1, |(seq, _)| seq + 1),
        Err(e) => {
            // From the start, then: a SIEM may get records twice, never miss one.
            error!(error = %e, "cannot read the audit log's head; the SIEM stream starts at its first record");
            1
        }
    };
    let (stop_follow, stop_sending) = (CancellationToken::new(), CancellationToken::new());
    let Parts { siem, audit, store, clock } = parts;
    let follow = tokio::spawn(follow(Arc::clone(&siem), Arc::clone(&audit), store, next, stop_follow.clone()));
    let sender = tokio::spawn(super::sender::send(Arc::clone(&siem), audit, clock, stop_sending.clone()));
    Running { siem, stop_follow, follow, stop_sending, sender }
}

impl Running {
    /// Reads what the writer appended last, then sends what is queued if
    /// the receiver is connected, within `grace`; what is left is counted
    /// as dropped.
    pub(crate) async fn finish(self, grace: Duration) {
        self.stop_follow.cancel();
        let _ = self.follow.await;
        self.stop_sending.cancel();
        let mut sender = self.sender;
        if tokio::time::timeout(grace, &mut sender).await.is_err() {
            sender.abort();
        }
        let left = self.siem.abandon();
        if left > 0 {
            warn!(records = left, "the SIEM did not get the last audit records before the server stopped");
        }
    }
}

/// Reads new records whenever the writer appended, and every
/// [`POLL_EVERY`], until `stop` (then once more).
async fn follow(siem: Arc<Siem>, audit: Arc<Audit>, store: Arc<dyn Store>, mut next: u64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            () = audit.appended() => false,
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        match read_new(&siem, &store, &mut next).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "cannot read the audit log for the SIEM; retrying");
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}

/// Queues every record from `next` on, and moves `next` past them.
async fn read_new(siem: &Siem, store: &Arc<dyn Store>, next: &mut u64) -> Result<(), StoreError> {
    loop {
        let from = *next;
        let page = crate::gateway::call("siem_read", store, move |store| store.range(from, PAGE)).await?;
        if page.is_empty() {
            // The chain ends before `next`: its end was cut (a database
            // restored from a backup). Records appended now take those
            // `seq`s again, and must be sent.
            let head = crate::gateway::call("siem_read", store, |store| store.head()).await?;
            let last = head.map_or(0, |(seq, _)| seq);
            if last.saturating_add(1) < *next {
                warn!(from = *next, to = last + 1, "the audit log's head went back; the SIEM stream follows it");
                *next = last + 1;
            }
            return Ok(());
        }
        let full = page.len() == PAGE;
        for record in page {
            if record.seq > *next {
                // Removed (`audit.retention`) before they were read.
                siem.skipped(*next, record.seq - 1);
            }
            *next = record.seq + 1;
            siem.push(record);
        }
        if !full {
            return Ok(());
        }
    }
}
