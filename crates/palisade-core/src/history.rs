//! A room's `seq` and the events it keeps for `recover`
//! (docs/PROTOCOL.md §3, "Recovering missed events"; docs/ARCHITECTURE.md,
//! "Room history").
//!
//! Two promises a client builds on: `seq` never goes backwards for a room
//! name (so a `since` never silently matches a different event), and
//! `recover` says whether it replayed everything after `since`. The first
//! comes from [`seed`]: a room that starts (again) on a node takes its
//! first `seq` from the wall clock and from the highest `seq` the node has
//! given, so neither the room emptying nor a restart reuses a number. The
//! second from [`Ring`]: it keeps the newest events within the room's
//! [`HistoryRule`] and knows the `seq` after which nothing was lost.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Timestamp;

/// `seq` numbers a room may use per millisecond of wall clock before a
/// room started later could be seeded below it. One node cannot publish a
/// thousand events per millisecond to one room; a `seq` stays below 2^53
/// (exact in a JavaScript number) until the year 2255.
pub const SEQ_PER_MS: u64 = 1_000;

/// The `seq` a room starts from at `now` (its first event gets the next
/// one): above every `seq` this node gave before (`floor`), and above
/// every `seq` a run before a restart could have given, for those were
/// seeded from an earlier clock.
pub fn seed(now: Timestamp, floor: u64) -> u64 {
    now.as_millis().saturating_mul(SEQ_PER_MS).max(floor)
}

/// How much of a room's history is kept (`rooms."<pattern>".history` and
/// `history_ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRule {
    /// Newest events kept; 0 keeps none.
    pub keep: usize,
    /// How long an event is kept.
    pub ttl: Duration,
}

/// What a `recover` gets: the kept events after `since`, oldest first, and
/// whether they are all the events after `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay<T> {
    /// The events, as they were sent live.
    pub events: Vec<T>,
    /// `false` when events after `since` were lost: older than the ring
    /// or its TTL, dropped for memory, or `since` is not a `seq` this room
    /// gave (another epoch, or a number from the future).
    pub complete: bool,
}

#[derive(Debug)]
struct Kept<T> {
    seq: u64,
    at: Timestamp,
    bytes: usize,
    event: T,
}

/// One room's newest events, bounded by count, bytes and age. `T` is the
/// event as sent live (the server keeps the serialized frame, so a replay
/// is byte for byte what members saw).
#[derive(Debug)]
pub struct Ring<T> {
    events: VecDeque<Kept<T>>,
    /// Every event after this `seq` is in `events`.
    horizon: u64,
    bytes: usize,
}

impl<T: Clone> Ring<T> {
    /// An empty ring for a room that starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { events: VecDeque::new(), horizon: seed, bytes: 0 }
    }

    /// Keeps event `seq` (`bytes` long) published at `at`, then drops the
    /// oldest events past `rule.keep` or `max_bytes`.
    pub fn push(&mut self, seq: u64, at: Timestamp, event: T, bytes: usize, rule: HistoryRule, max_bytes: usize) {
        if rule.keep == 0 || bytes > max_bytes {
            // Not kept: nothing up to it can be replayed.
            self.events.clear();
            self.bytes = 0;
            self.horizon = seq;
            return;
        }
        self.events.push_back(Kept { seq, at, bytes, event });
        self.bytes += bytes;
        while self.events.len() > rule.keep || self.bytes > max_bytes {
            self.drop_oldest();
        }
    }

    /// Drops events older than `ttl` at `now`.
    pub fn expire(&mut self, ttl: Duration, now: Timestamp) {
        while self.events.front().is_some_and(|e| e.at.saturating_add(ttl) <= now) {
            self.drop_oldest();
        }
    }

    /// Drops the oldest event; `false` when there was none.
    pub fn drop_oldest(&mut self) -> bool {
        let Some(oldest) = self.events.pop_front() else { return false };
        self.bytes -= oldest.bytes;
        self.horizon = oldest.seq;
        true
    }

    /// The kept events after `since`, when the room's newest `seq` is
    /// `current`.
    pub fn replay(&self, since: u64, current: u64) -> Replay<T> {
        let events = self.events.iter().filter(|e| e.seq > since).map(|e| e.event.clone()).collect();
        Replay { events, complete: since >= self.horizon && since <= current }
    }

    /// Bytes of the events kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_764_806_400_000);
    const KEEP_3: HistoryRule = HistoryRule { keep: 3, ttl: Duration::from_secs(60) };
    const ROOMY: usize = 1 << 20;

    fn ring_with(seqs: std::ops::RangeInclusive<u64>, rule: HistoryRule) -> Ring<u64> {
        let mut ring = Ring::new(seqs.start() - 1);
        for seq in seqs {
            ring.push(seq, T0, seq, 10, rule, ROOMY);
        }
        ring
    }

    #[test]
    fn a_room_started_again_never_reuses_a_seq() {
        // Emptied and started again within the same millisecond, after
        // giving 5 numbers: the node's floor keeps it above them.
        let first = seed(T0, 0);
        let floor = first + 5;
        assert!(seed(T0, floor) >= floor);
        // After a restart the floor is gone, but the clock moved on.
        assert!(seed(T0.saturating_add(Duration::from_millis(1)), 0) > first + 5);
        assert!(seed(T0, 0) < 1 << 53, "exact in a JavaScript number");
    }

    #[test]
    fn a_recover_within_the_ring_is_complete() {
        let ring = ring_with(101..=103, KEEP_3);
        assert_eq!(ring.replay(101, 103), Replay { events: vec![102, 103], complete: true });
        assert_eq!(ring.replay(100, 103), Replay { events: vec![101, 102, 103], complete: true });
        assert_eq!(ring.replay(103, 103), Replay { events: vec![], complete: true });
    }

    #[test]
    fn a_recover_older_than_the_ring_or_from_elsewhere_is_incomplete() {
        let ring = ring_with(101..=105, KEEP_3);
        assert_eq!(ring.replay(101, 105), Replay { events: vec![103, 104, 105], complete: false });
        assert_eq!(ring.replay(102, 105), Replay { events: vec![103, 104, 105], complete: true });
        assert!(!ring.replay(7, 105).complete, "another epoch");
        assert!(!ring.replay(106, 105).complete, "a number this room never gave");
    }

    #[test]
    fn history_is_bounded_by_bytes_and_age() {
        let mut ring = Ring::new(0);
        for seq in 1..=4 {
            ring.push(seq, T0.saturating_add(Duration::from_secs(seq)), seq, 10, KEEP_3, 25);
        }
        assert_eq!((ring.bytes(), ring.replay(0, 4).events), (20, vec![3, 4]));
        ring.expire(Duration::from_secs(10), T0.saturating_add(Duration::from_secs(13)));
        assert_eq!(ring.replay(3, 4), Replay { events: vec![4], complete: true });
        ring.expire(Duration::from_secs(10), T0.saturating_add(Duration::from_secs(14)));
        assert!(ring.is_empty());
        assert_eq!(ring.replay(3, 4), Replay { events: vec![], complete: false });
        assert!(ring.replay(4, 4).complete, "a client that saw the last event missed nothing");
    }

    #[test]
    fn a_room_without_history_keeps_nothing_and_says_so() {
        let ring = ring_with(1..=2, HistoryRule::default());
        assert!(ring.is_empty());
        assert_eq!(ring.replay(1, 2), Replay { events: vec![], complete: false });
        assert!(ring.replay(2, 2).complete);
        let mut big = Ring::new(0);
        big.push(1, T0, 1, 100, KEEP_3, 50);
        assert!(big.is_empty() && !big.replay(0, 1).complete, "an event larger than the room's bytes");
    }
}
