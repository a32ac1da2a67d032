//! The commit step: what must be decided once per accepted message against
//! state every node shares (docs/ARCHITECTURE.md, "The pipeline for one
//! message", steps 8 and 11, and "Seams"): the event's rate per user, the
//! replay nonce, the room's next `seq`, the history append and the
//! publish, as one call that accepts with a `seq` or refuses.
//!
//! The session's pipeline makes every other check and produces the
//! [`Claim`]; the server performs it through [`Commit`] and hands the
//! outcome back to the session (`Session::committed`), so a refusal feeds
//! the scores like any other.

use palisade_protocol::{EventFrame, Identity};
use serde_json::value::RawValue;

use super::Pending;
use crate::Timestamp;
use crate::guard::{Guard, Rate, Verdict};
use crate::history::HistoryRule;
use crate::refusal::Refusal;
use crate::replay::NonceClaim;
use crate::store::NonceStore;

/// What the commit step checks and does for one message.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The sender ("" for a backend's `/api/publish`, which has no rate or
    /// nonce to check).
    pub user: &'a str,
    /// The sender's standing is restricted (its rates are divided).
    pub restricted: bool,
    /// The room.
    pub room: &'a str,
    /// The event.
    pub event: &'a str,
    /// The event's own rate, per user (step 8).
    pub rate: Option<Rate>,
    /// The replay nonce to spend (step 11).
    pub nonce: Option<NonceClaim<'a>>,
    /// How much of the room's history keeps the event.
    pub history: HistoryRule,
}

/// The event a commit publishes, but for its `seq`, which the commit gives.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The sender's id (`from.id`).
    pub from_id: &'a str,
    /// The sender's name (`from.name`).
    pub from_name: &'a str,
    /// The sanitized data, serialized once.
    pub data: &'a RawValue,
    /// When the server accepted it.
    pub ts: Timestamp,
}

impl<'a> Outgoing<'a> {
    /// The `event` frame `claim`'s event goes out as, with `seq`.
    pub fn frame(&self, claim: &Claim<'a>, seq: u64) -> EventFrame<'a> {
        EventFrame {
            room: claim.room,
            seq,
            event: claim.event,
            from: Identity { id: self.from_id, name: self.from_name },
            data: self.data,
            ts: self.ts.as_millis(),
        }
    }
}

/// An accepted commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The `seq` the room gave the event.
    pub seq: u64,
    /// Under `abuse.dry_run`, what a check would have refused.
    pub unenforced: Option<Refusal>,
}

/// The commit step, performed against the state a node (or a cluster)
/// shares. An implementation must keep this contract:
/// - the checks come first, in pipeline order (rate, then nonce), and a
///   refusal publishes nothing and consumes nothing further (a refused
///   rate spends no nonce);
/// - an accepted event gets its room's next `seq`, above every `seq` the
///   room gave before, under any name reuse or restart;
/// - it is kept as `claim.history` says before it is published, so a
///   `recover` that sees the `seq` finds the event;
/// - every member of the room, on every node, receives the events of the
///   room in `seq` order.
pub trait Commit: Send + Sync + std::fmt::Debug {
    /// Checks `claim` and, when it passes, publishes `event` in its room.
    fn commit<'a>(
        &'a self,
        claim: Claim<'a>,
        event: Outgoing<'a>,
        now: Timestamp,
    ) -> Pending<'a, Result<Committed, Refusal>>;
}

/// The checks of `claim` against one node's guard and nonce store, in
/// pipeline order: what the memory commit makes. `Ok` carries what
/// `abuse.dry_run` let through.
pub fn check(
    claim: &Claim<'_>,
    guard: &Guard,
    nonces: &dyn NonceStore,
    now: Timestamp,
) -> Result<Option<Refusal>, Refusal> {
    let mut unenforced = None;
    if let Some(rate) = claim.rate {
        match guard.event(claim.restricted, claim.user, claim.event, rate, now) {
            Verdict::Pass => {}
            Verdict::Refuse(refusal) => return Err(refusal),
            Verdict::WouldRefuse(refusal) => unenforced = Some(refusal),
        }
    }
    if let Some(nonce) = &claim.nonce {
        nonce.record(nonces, claim.user, now)?;
    }
    Ok(unenforced)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::refusal::Kind;
    use crate::store::MemoryNonces;
    use crate::testkit::{T0, guard_settings};

    fn claim(rate: Option<Rate>, nonce: Option<&str>) -> Claim<'static> {
        Claim {
            user: "u1",
            restricted: false,
            room: "r",
            event: "quiz.answer",
            rate,
            nonce: nonce.map(|n| NonceClaim {
                nonce: Cow::Owned(n.to_owned()),
                ts: T0,
                keep_until: T0.saturating_add(std::time::Duration::from_secs(60)),
            }),
            history: HistoryRule::default(),
        }
    }

    #[test]
    fn the_rate_comes_before_the_nonce_so_a_refused_rate_spends_nothing() {
        let guard = Guard::new(guard_settings());
        let nonces = MemoryNonces::new(100, 10);
        let once = Rate::parse("1/min").unwrap();
        assert_eq!(check(&claim(Some(once), Some("n1")), &guard, &nonces, T0), Ok(None));
        let refused = check(&claim(Some(once), Some("n2")), &guard, &nonces, T0).unwrap_err();
        assert_eq!(refused.kind, Kind::RateExcess);
        assert_eq!(check(&claim(None, Some("n2")), &guard, &nonces, T0), Ok(None), "n2 was not spent");
        assert_eq!(check(&claim(None, Some("n1")), &guard, &nonces, T0).unwrap_err().kind, Kind::Replay);
    }

    #[test]
    fn a_dry_run_lets_the_rate_through_and_says_so() {
        let guard = Guard::new(crate::guard::GuardSettings { dry_run: true, ..guard_settings() });
        let nonces = MemoryNonces::new(100, 10);
        let once = Rate::parse("1/min").unwrap();
        assert_eq!(check(&claim(Some(once), None), &guard, &nonces, T0), Ok(None));
        let through = check(&claim(Some(once), None), &guard, &nonces, T0).unwrap();
        assert_eq!(through.map(|r| r.kind), Some(Kind::RateExcess));
    }
}
