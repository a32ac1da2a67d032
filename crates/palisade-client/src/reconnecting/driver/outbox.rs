//! Published messages on their way: each with its client id (`cid`),
//! sent, kept when its socket drops before the answer and sent again with
//! the same `cid`, asked again after a `duplicate` without `seq`, and
//! failed once its deadline passes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Driver, Pending};
use crate::ClientError;
use crate::reconnecting::{Published, Reply};

/// A message `publish` handed over, until it is answered or fails.
pub(in crate::reconnecting) struct Outgoing {
    pub(super) room: String,
    pub(super) event: String,
    pub(super) data: Value,
    pub(super) reply: Reply<Published>,
    pub(super) deadline: Instant,
    /// The client message id, the same on every resend.
    pub(super) cid: String,
    /// When it first went out on a socket.
    pub(super) first_sent: Option<Instant>,
    /// The request id it last went out with (sends are resent in order).
    pub(super) order: u64,
}

impl Outgoing {
    /// A message to publish, with a fresh `cid`.
    pub(in crate::reconnecting) fn new(room: String, event: String, data: Value, reply: Reply<Published>) -> Self {
        Self { room, event, data, reply, deadline: Instant::now(), cid: new_cid(), first_sent: None, order: 0 }
    }
}

/// How long after a `duplicate` ack without `seq` the message is sent again.
const ASK_AGAIN: Duration = Duration::from_millis(200);

impl Driver {
    pub(super) async fn transmit(&mut self, mut msg: Outgoing) {
        let id = self.id();
        let mut frame = json!({"type": "send", "id": id, "room": msg.room, "event": msg.event, "data": msg.data,
                               "cid": msg.cid});
        self.stamp(&mut frame);
        msg.order = self.next_id;
        msg.first_sent.get_or_insert_with(Instant::now);
        self.pending.insert(id, Pending::Send(msg));
        self.raw(frame).await;
    }

    /// Sends again a message that went out before, with its `cid`, while the
    /// server still remembers it; later it fails with `Disconnected`.
    pub(super) async fn resend(&mut self, msg: Outgoing) {
        let window_over = msg.first_sent.is_some_and(|t| t + self.options.client_id_window <= Instant::now());
        if window_over {
            let _ = msg.reply.send(Err(ClientError::Disconnected));
        } else if self.ready {
            self.transmit(msg).await;
        } else {
            self.unacked.push_back(msg);
        }
    }

    /// A `duplicate` answer without `seq`: the first copy is still being
    /// published; ask again in a moment for its `seq`.
    pub(super) fn ask_later(&mut self, msg: Outgoing) {
        self.later.push((Instant::now() + ASK_AGAIN, msg));
    }

    /// The `duplicate` answers without `seq` whose time has come.
    pub(super) async fn ask_again(&mut self) {
        let now = Instant::now();
        let (due, kept): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|(at, _)| *at <= now);
        self.later = kept;
        for (_, msg) in due {
            self.resend(msg).await;
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let sent = self.pending.values().filter_map(|p| match p {
            Pending::Send(m) => Some(m.deadline),
            _ => None,
        });
        let later = self.later.iter().map(|(at, m)| (*at).min(m.deadline));
        self.queue.iter().chain(&self.unacked).map(|m| m.deadline).chain(sent).chain(later).min()
    }

    pub(super) fn expire(&mut self) {
        let now = Instant::now();
        let (late, kept): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|m| m.deadline <= now);
        self.queue = kept.into();
        let (late_unacked, kept): (Vec<_>, Vec<_>) = self.unacked.drain(..).partition(|m| m.deadline <= now);
        self.unacked = kept.into();
        let (late_later, kept): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|(_, m)| m.deadline <= now);
        self.later = kept;
        for msg in late.into_iter().chain(late_unacked).chain(late_later.into_iter().map(|(_, m)| m)) {
            let _ = msg.reply.send(Err(ClientError::Timeout));
        }
        let late: Vec<String> = self
            .pending
            .iter()
            .filter_map(|(id, p)| match p {
                Pending::Send(m) if m.deadline <= now => Some(id.clone()),
                _ => None,
            })
            .collect();
        for id in late {
            if let Some(Pending::Send(msg)) = self.pending.remove(&id) {
                let _ = msg.reply.send(Err(ClientError::Timeout));
            }
        }
    }
}

/// A client message id: 16 random bytes in hex. From the process's hash
/// randomness, never from `ReconnectOptions::seed` (seeded clients of one
/// user must not share ids); not a secret, only unique.
fn new_cid() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u128(nanos);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}
