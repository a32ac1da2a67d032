//! Client message ids (`send.cid`, docs/PROTOCOL.md §2.1): a client that
//! lost its connection before an `ack` may send the message again with the
//! same `cid`, and the server answers with the first one's `seq` instead
//! of publishing it twice.
//!
//! Remembered per user (a reconnect is a new connection), for
//! `limits.client_id_window`, at most `limits.max_client_ids_per_user` per
//! user (a user past it forgets its own oldest, never another user's) and
//! `limits.max_client_ids` in all (past it new ids are not remembered:
//! the message is still published, only without the guarantee). This is a
//! delivery guarantee, not a security check, so it fails open.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Timestamp;

/// Longest `cid`.
pub const MAX_CID_LEN: usize = 64;

/// The bounds of what is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdLimits {
    /// How long an id is remembered.
    pub window: Duration,
    /// Ids one user has remembered at once.
    pub per_user: usize,
    /// Ids remembered in all.
    pub total: usize,
}

impl Default for ClientIdLimits {
    fn default() -> Self {
        Self { window: Duration::from_secs(300), per_user: 256, total: 100_000 }
    }
}

/// What a `cid` was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// New: remembered as in flight until [`ClientIds::sent`] or
    /// [`ClientIds::forget`].
    New,
    /// Not remembered (the store is full): publish without the guarantee.
    Unrecorded,
    /// Published before in `room` as `seq`.
    Sent {
        /// The room it went to.
        room: Box<str>,
        /// Its `seq`.
        seq: u64,
    },
    /// Another connection of the user is publishing it right now.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    cid: Box<str>,
    sent: Option<(Box<str>, u64)>,
    at: Timestamp,
}

#[derive(Debug, Default)]
struct Book {
    users: HashMap<Box<str>, VecDeque<Entry>>,
    total: usize,
}

impl Book {
    /// Forgets `user`'s ids older than the window.
    fn expire(&mut self, user: &str, window: Duration, now: Timestamp) {
        let Some(entries) = self.users.get_mut(user) else { return };
        while entries.front().is_some_and(|e| e.at.saturating_add(window) <= now) {
            entries.pop_front();
            self.total -= 1;
        }
        if entries.is_empty() {
            self.users.remove(user);
        }
    }
}

/// Every user's recent client message ids.
#[derive(Debug, Default)]
pub struct ClientIds {
    book: Mutex<Book>,
    limits: ClientIdLimits,
}

impl ClientIds {
    /// An empty record within `limits`.
    pub fn new(limits: ClientIdLimits) -> Self {
        Self { book: Mutex::default(), limits }
    }

    /// Looks `cid` up for `user` at `now`, and remembers a new one as in
    /// flight.
    pub fn check(&self, user: &str, cid: &str, now: Timestamp) -> Seen {
        let mut book = self.book();
        book.expire(user, self.limits.window, now);
        if let Some(entry) = book.users.get(user).and_then(|es| es.iter().find(|e| *e.cid == *cid)) {
            return match &entry.sent {
                Some((room, seq)) => Seen::Sent { room: room.clone(), seq: *seq },
                None => Seen::InFlight,
            };
        }
        let mine = book.users.get(user).map_or(0, VecDeque::len);
        if mine >= self.limits.per_user {
            if let Some(entries) = book.users.get_mut(user) {
                entries.pop_front();
            }
            book.total -= 1;
        } else if book.total >= self.limits.total {
            return Seen::Unrecorded;
        }
        book.users.entry(user.into()).or_default().push_back(Entry { cid: cid.into(), sent: None, at: now });
        book.total += 1;
        Seen::New
    }

    /// `user`'s `cid` was published in `room` as `seq`.
    pub fn sent(&self, user: &str, cid: &str, room: &str, seq: u64) {
        let mut book = self.book();
        if let Some(entry) = book.users.get_mut(user).and_then(|es| es.iter_mut().find(|e| *e.cid == *cid)) {
            entry.sent = Some((room.into(), seq));
        }
    }

    /// `user`'s in-flight `cid` was refused: it may be sent again.
    pub fn forget(&self, user: &str, cid: &str) {
        let mut book = self.book();
        let Some(entries) = book.users.get_mut(user) else { return };
        let before = entries.len();
        entries.retain(|e| *e.cid != *cid || e.sent.is_some());
        let removed = before - entries.len();
        if entries.is_empty() {
            book.users.remove(user);
        }
        book.total -= removed;
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Every update leaves the book consistent before it can panic.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    const LIMITS: ClientIdLimits = ClientIdLimits { window: Duration::from_secs(60), per_user: 2, total: 3 };

    #[test]
    fn a_sent_id_answers_with_its_seq_until_the_window_ends() {
        let ids = ClientIds::new(LIMITS);
        assert_eq!(ids.check("alice", "c1", T0), Seen::New);
        assert_eq!(ids.check("alice", "c1", T0), Seen::InFlight, "another connection is sending it");
        ids.sent("alice", "c1", "lobby", 42);
        assert_eq!(ids.check("alice", "c1", T0), Seen::Sent { room: "lobby".into(), seq: 42 });
        assert_eq!(ids.check("bob", "c1", T0), Seen::New, "ids are per user");
        let later = T0.saturating_add(LIMITS.window);
        assert_eq!(ids.check("alice", "c1", later), Seen::New, "forgotten after the window");
    }

    #[test]
    fn a_refused_id_can_be_sent_again() {
        let ids = ClientIds::new(LIMITS);
        assert_eq!(ids.check("alice", "c1", T0), Seen::New);
        ids.forget("alice", "c1");
        assert_eq!(ids.check("alice", "c1", T0), Seen::New);
        ids.sent("alice", "c1", "lobby", 1);
        ids.forget("alice", "c1");
        assert!(matches!(ids.check("alice", "c1", T0), Seen::Sent { .. }), "a sent id is never forgotten early");
    }

    #[test]
    fn a_user_past_its_quota_forgets_its_own_oldest_and_a_full_record_fails_open() {
        let ids = ClientIds::new(LIMITS);
        for cid in ["a", "b", "c"] {
            assert_eq!(ids.check("alice", cid, T0), Seen::New);
        }
        assert_eq!(ids.check("alice", "a", T0), Seen::New, "alice's oldest made room for her third");
        assert_eq!(ids.check("bob", "x", T0), Seen::New);
        assert_eq!(ids.check("carol", "y", T0), Seen::Unrecorded, "three in all: carol's is not kept");
        assert_eq!(ids.check("carol", "y", T0), Seen::Unrecorded, "and not pretended to be in flight");
        assert_eq!(ids.check("bob", "x", T0), Seen::InFlight, "bob's own is still there");
    }
}
