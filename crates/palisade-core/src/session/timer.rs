//! The heartbeat half of the session's timers: when to ping, and when a
//! silent peer counts as gone.
//!
//! Like quinn-proto's timer table, the deadlines live in the state machine
//! and the driver only asks for the next one and reports when it passed, so
//! a test steps a virtual clock instead of sleeping. The expiry and CSRF
//! deadlines are derived from the identity and the CSRF token, which
//! `refresh` and rotation update, so they are computed where those live
//! ([`super::Session::next_timer`]) rather than stored here.

use std::time::Duration;

use crate::Timestamp;

/// What the heartbeat asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Beat {
    /// Send a WebSocket ping.
    Ping,
    /// Nothing was heard for the whole silence limit.
    Silent,
}

/// Ping and silence deadlines of one connection.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Duration,
    silence: Duration,
    next_ping: Timestamp,
    heard: Timestamp,
}

impl Heartbeat {
    /// Pings every `interval` from `now`; silent for `silence` means gone.
    pub(super) fn new(interval: Duration, silence: Duration, now: Timestamp) -> Self {
        Self { interval, silence, next_ping: now.saturating_add(interval), heard: now }
    }

    /// A frame arrived at `now`: the silence deadline moves, pings keep
    /// their rhythm (a busy connection then needs no re-arming of the
    /// driver's timer per frame: the next ping stays the earliest deadline).
    pub(super) fn heard(&mut self, now: Timestamp) {
        self.heard = self.heard.max(now);
    }

    /// The earlier of the next ping and the silence deadline.
    pub(super) fn next(&self) -> Timestamp {
        self.next_ping.min(self.silent_at())
    }

    /// What is due at `now`, if anything; a ping is due once per interval.
    pub(super) fn poll(&mut self, now: Timestamp) -> Option<Beat> {
        if now >= self.silent_at() {
            return Some(Beat::Silent);
        }
        if now >= self.next_ping {
            self.next_ping = now.saturating_add(self.interval);
            return Some(Beat::Ping);
        }
        None
    }

    fn silent_at(&self) -> Timestamp {
        self.heard.saturating_add(self.silence)
    }
}
