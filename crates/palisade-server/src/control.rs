//! A handle other tasks use to reach a connection: to queue its rooms'
//! events, and to ask it to close, to re-check its rooms after the policy
//! changed, or to leave a room its owner deleted or removed it from.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Mutex, PoisonError};

use palisade_protocol::{CloseCode, RemovedReason};
use tokio::sync::Notify;

use crate::outbox::Outbox;

/// What another task asked of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Close with this code.
    Close(CloseCode),
    /// The policy was reloaded: leave the rooms it no longer allows.
    Recheck,
    /// The revocations changed: close with 4003 if the token is revoked.
    Revalidate,
    /// Leave the rooms [`Control::take_removals`] gives.
    Remove,
}

/// Events and requests for one connection. The first close request wins;
/// later ones are ignored, so a slow consumer that is also kicked closes
/// once. Re-check requests made before the connection gets to them count
/// as one.
#[derive(Debug)]
pub(crate) struct Control {
    /// Its rooms' events, on their way to the socket. Here rather than
    /// apart, so a connection's handle is one allocation.
    pub(crate) events: Outbox,
    code: AtomicU16,
    recheck: AtomicBool,
    revalidate: AtomicBool,
    /// Rooms to leave, once each: at most the rooms the connection is in
    /// (`limits.max_rooms_per_connection`) plus those asked twice before
    /// it got to them.
    removals: Mutex<Vec<(Box<str>, RemovedReason)>>,
    notify: Notify,
}

impl Control {
    /// A connection's handle, queueing up to `outbound_queue` events.
    pub(crate) fn new(outbound_queue: usize) -> Self {
        Self {
            events: Outbox::new(outbound_queue),
            code: AtomicU16::default(),
            recheck: AtomicBool::default(),
            revalidate: AtomicBool::default(),
            removals: Mutex::default(),
            notify: Notify::new(),
        }
    }

    /// Asks the connection to close with `code`.
    pub(crate) fn close(&self, code: CloseCode) {
        if self.code.compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // `notify_one` stores a permit, so a request made while the
            // connection is busy is seen at its next wait.
            self.notify.notify_one();
        }
    }

    /// Asks the connection to re-check its rooms against the policy.
    pub(crate) fn recheck(&self) {
        if !self.recheck.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Asks the connection to check its token against the revocations.
    pub(crate) fn revalidate(&self) {
        if !self.revalidate.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Asks the connection to leave `room`, telling its client why.
    pub(crate) fn remove(&self, room: &str, reason: RemovedReason) {
        let mut removals = self.removals.lock().unwrap_or_else(PoisonError::into_inner);
        if !removals.iter().any(|(r, _)| **r == *room) {
            removals.push((room.into(), reason));
            drop(removals);
            self.notify.notify_one();
        }
    }

    /// The rooms to leave, and why.
    pub(crate) fn take_removals(&self) -> Vec<(Box<str>, RemovedReason)> {
        std::mem::take(&mut *self.removals.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves with the next request; a close comes first, then a token
    /// check, then removals, then a room re-check.
    pub(crate) async fn requested(&self) -> Request {
        loop {
            if let Some(code) = self.close_code() {
                return Request::Close(code);
            }
            if self.revalidate.swap(false, Ordering::AcqRel) {
                return Request::Revalidate;
            }
            if !self.removals.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                return Request::Remove;
            }
            if self.recheck.swap(false, Ordering::AcqRel) {
                return Request::Recheck;
            }
            self.notify.notified().await;
        }
    }

    /// Resolves when a close was requested; re-checks wait for the
    /// connection loop.
    pub(crate) async fn closed(&self) -> CloseCode {
        loop {
            if let Some(code) = self.close_code() {
                return code;
            }
            self.notify.notified().await;
        }
    }

    fn close_code(&self) -> Option<CloseCode> {
        CloseCode::from_code(self.code.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_close_wins_over_a_recheck_and_rechecks_coalesce() {
        let control = Control::new(1);
        control.recheck();
        control.recheck();
        assert_eq!(control.requested().await, Request::Recheck);
        control.recheck();
        control.close(CloseCode::SlowConsumer);
        control.close(CloseCode::GoingAway);
        assert_eq!(control.requested().await, Request::Close(CloseCode::SlowConsumer));
        assert_eq!(control.closed().await, CloseCode::SlowConsumer);
    }

    #[tokio::test]
    async fn removals_come_once_per_room_with_the_first_reason() {
        let control = Control::new(1);
        control.remove("a", RemovedReason::Deleted);
        control.remove("a", RemovedReason::RemovedByOwner);
        control.remove("b", RemovedReason::RemovedByOwner);
        assert_eq!(control.requested().await, Request::Remove);
        let taken = control.take_removals();
        assert_eq!(taken, [("a".into(), RemovedReason::Deleted), ("b".into(), RemovedReason::RemovedByOwner)]);
        assert!(control.take_removals().is_empty());
    }

    #[tokio::test]
    async fn waiting_for_a_close_ignores_rechecks() {
        let control = Control::new(1);
        control.recheck();
        let closed = tokio::time::timeout(std::time::Duration::from_millis(20), control.closed()).await;
        assert!(closed.is_err(), "a recheck is not a close");
        assert_eq!(control.requested().await, Request::Recheck, "and it is still there for the loop");
    }
}
