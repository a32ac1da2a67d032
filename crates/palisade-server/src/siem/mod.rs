//! The SIEM stream (docs/OPERATIONS.md, "Sending the audit trail to a
//! SIEM"): every audit record, in chain order, as RFC 5424 syslog to
//! `siem.syslog`. What a record becomes is `core::audit::siem`'s.
//!
//! One task follows the chain in the store (woken by the audit writer, and
//! every half second for what other processes append: `palisade ban`, a
//! CLI user change), so it sees every record with its `seq` and hash, never
//! touching the writer or the message path. It queues them for one sender
//! task in a bounded drop-oldest queue, as `crate::alerts` queues alerts:
//! while the receiver is down the queue fills and the oldest records are
//! dropped and counted. Nothing is lost silently: the sender, once
//! connected again (or when it has caught up), writes a gap record into
//! the audit log naming how many records the SIEM lost and between which
//! `seq`s, and that record reaches the SIEM like any other.

mod follow;
mod sender;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use palisade_core::Timestamp;
use palisade_core::audit::{Entry, Kind, Record};
use tokio::sync::Notify;

use crate::config::SiemSettings;

pub(crate) use follow::{Parts, start};

/// Records the SIEM did not get, not yet told in a gap record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lost {
    first: u64,
    last: u64,
    count: u64,
}

/// The queue and its counters.
#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<Record>,
    untold: Option<Lost>,
}

/// The SIEM stream of one server: its settings, queue and counters.
#[derive(Debug)]
pub(crate) struct Siem {
    settings: SiemSettings,
    queue: Mutex<Queue>,
    /// Woken when a record is queued.
    wake: Notify,
    sent: AtomicU64,
    dropped: AtomicU64,
    connected: AtomicBool,
    sent_metric: ::metrics::Counter,
    dropped_metric: ::metrics::Counter,
    connected_metric: ::metrics::Gauge,
}

impl Siem {
    /// The stream `settings` describe (registered after the metrics
    /// recorder is installed).
    pub(crate) fn new(settings: SiemSettings) -> Self {
        Self {
            settings,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            sent_metric: ::metrics::counter!("palisade_siem_sent_total"),
            dropped_metric: ::metrics::counter!("palisade_siem_dropped_total"),
            connected_metric: ::metrics::gauge!("palisade_siem_connected"),
        }
    }

    /// Records sent so far (written to the socket).
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records the SIEM lost so far (dropped from a full queue, or removed
    /// from the store before they were read).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the sender holds a connection to the receiver (UDP: a
    /// socket it could send on).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `record`; when full, the oldest gives way and is counted.
    fn push(&self, record: Record) {
        let mut queue = self.lock();
        if queue.records.len() >= self.settings.queue
            && let Some(oldest) = queue.records.pop_front()
        {
            self.lose(&mut queue, oldest.seq, oldest.seq, 1);
        }
        queue.records.push_back(record);
        drop(queue);
        self.wake.notify_one();
    }

    /// Counts `count` records between `first` and `last` as lost and
    /// remembers them for the next gap record.
    fn lose(&self, queue: &mut Queue, first: u64, last: u64, count: u64) {
        queue.untold = Some(match queue.untold {
            Some(told) => Lost { first: told.first.min(first), last: told.last.max(last), count: told.count + count },
            None => Lost { first, last, count },
        });
        self.dropped.fetch_add(count, Ordering::Relaxed);
        self.dropped_metric.increment(count);
    }

    /// Records `first..=last` were removed from the store before the
    /// follower read them.
    fn skipped(&self, first: u64, last: u64) {
        let mut queue = self.lock();
        self.lose(&mut queue, first, last, last.saturating_sub(first).saturating_add(1));
    }

    fn pop(&self) -> Option<Record> {
        self.lock().records.pop_front()
    }

    /// Puts back `record`, which could not be sent, as the oldest; if the
    /// queue filled meanwhile it is the one that gives way.
    fn unpop(&self, record: Record) {
        let mut queue = self.lock();
        if queue.records.len() >= self.settings.queue {
            self.lose(&mut queue, record.seq, record.seq, 1);
        } else {
            queue.records.push_front(record);
        }
    }

    /// Counts every queued record as lost, at shutdown; how many.
    fn abandon(&self) -> u64 {
        let mut queue = self.lock();
        let (Some(first), Some(last)) = (queue.records.front(), queue.records.back()) else { return 0 };
        let (first, last, count) = (first.seq, last.seq, queue.records.len() as u64);
        queue.records.clear();
        self.lose(&mut queue, first, last, count);
        count
    }

    fn delivered(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.sent_metric.increment(1);
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.connected_metric.set(if connected { 1.0 } else { 0.0 });
    }

    /// The gap record for what was lost since the last one, if anything
    /// was; taking it marks it told.
    fn gap(&self, now: Timestamp) -> Option<Entry> {
        let lost = self.lock().untold.take()?;
        let detail = format!(
            "siem: {} records between seq {} and {} were not sent to the SIEM \
             (siem.queue full while the receiver was unreachable or slow)",
            lost.count, lost.first, lost.last
        );
        Some(Entry::new(now, Kind::Gap, &detail))
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::GENESIS;

    use super::*;
    use crate::config::Transport;

    fn siem(queue: usize) -> Siem {
        Siem::new(SiemSettings {
            transport: Transport::Tcp,
            host: "127.0.0.1".into(),
            port: 1,
            body: palisade_core::audit::siem::Body::Json,
            queue,
            app_name: "palisade".into(),
            hostname: "n1".into(),
            ca_file: None,
        })
    }

    fn record(seq: u64) -> Record {
        Entry::new(Timestamp::from_millis(seq), Kind::Ban, "").chain(seq, GENESIS)
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_one_gap_record_tells_them_all() {
        let siem = siem(2);
        for seq in 1..=5 {
            siem.push(record(seq));
        }
        assert_eq!(siem.dropped(), 3);
        let gap = siem.gap(Timestamp::from_millis(9)).unwrap();
        assert_eq!(gap.kind, Kind::Gap);
        assert!(gap.detail.starts_with("siem: 3 records between seq 1 and 3 "), "{}", gap.detail);
        assert_eq!(siem.gap(Timestamp::from_millis(9)), None, "told once");
        assert_eq!(siem.pop().map(|r| r.seq), Some(4));
        // One that could not be sent goes back first, or is lost if the
        // queue filled meanwhile.
        siem.unpop(record(4));
        assert_eq!(siem.dropped(), 3);
        siem.unpop(record(3));
        assert_eq!(siem.dropped(), 4);
        siem.skipped(6, 9);
        let gap = siem.gap(Timestamp::from_millis(9)).unwrap();
        assert!(gap.detail.starts_with("siem: 5 records between seq 3 and 9 "), "{}", gap.detail);
        assert_eq!([siem.pop(), siem.pop(), siem.pop()].map(|r| r.map(|r| r.seq)), [Some(4), Some(5), None]);
    }
}
