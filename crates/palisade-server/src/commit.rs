//! The commit step on one node (`seams::Commit`, docs/ARCHITECTURE.md,
//! "Seams"): the event's rate and the replay nonce checked against this
//! process's guard and nonce store (core's `seams::commit::check`), then
//! the hub gives the event the room's next `seq`, keeps it and queues it
//! for every member, under the room's lock, so members see `seq` order.
//! It answers at once: awaiting it never holds a connection's queue.

use std::sync::Arc;

use palisade_core::Timestamp;
use palisade_core::guard::Guard;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Claim, Commit, Committed, Outgoing, Pending, commit};
use palisade_core::store::MemoryNonces;
use palisade_protocol::{EventFrame, Identity, ServerFrame};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::Hub;

/// The memory commit step.
#[derive(Debug)]
pub(crate) struct LocalCommit {
    pub(crate) hub: Arc<Hub>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) nonces: MemoryNonces,
}

impl LocalCommit {
    fn commit_now(&self, claim: &Claim<'_>, event: &Outgoing<'_>, now: Timestamp) -> Result<Committed, Refusal> {
        let unenforced = commit::check(claim, &self.guard, &self.nonces, now)?;
        let seq = self.hub.publish(claim.room, claim.history, now, |seq| {
            let frame = EventFrame {
                room: claim.room,
                seq,
                event: claim.event,
                from: Identity { id: event.from_id, name: event.from_name },
                data: event.data,
                ts: event.ts.as_millis(),
            };
            // Kept for `recover` and shared by every member: without the
            // spare capacity serializing leaves (the buffer grows by
            // doubling; BENCHMARKS.md, room history).
            let mut text = ServerFrame::Event(frame).to_json();
            text.shrink_to_fit();
            Utf8Bytes::from(text)
        });
        Ok(Committed { seq, unenforced })
    }
}

impl Commit for LocalCommit {
    fn commit<'a>(
        &'a self,
        claim: Claim<'a>,
        event: Outgoing<'a>,
        now: Timestamp,
    ) -> Pending<'a, Result<Committed, Refusal>> {
        Box::pin(std::future::ready(self.commit_now(&claim, &event, now)))
    }
}

/// The conformance suite every commit step passes with its history, given
/// a way to make both over a hub of this node: the memory ones now, and
/// unchanged a cluster's, whose deliveries to this node reach the same hub.
/// The commit's guard must take `1/min` as a rate of one a minute, and its
/// nonce store must start empty.
#[cfg(test)]
pub(crate) mod conformance {
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::Duration;

    use palisade_core::Timestamp;
    use palisade_core::addr::IpKey;
    use palisade_core::guard::Rate;
    use palisade_core::history::HistoryRule;
    use palisade_core::refusal::Kind;
    use palisade_core::seams::{Claim, Commit, History, NonceClaim, Outgoing};
    use serde_json::value::RawValue;
    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use crate::control::Control;
    use crate::hub::{Hub, Member, Membership};

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
    const KEEP: HistoryRule = HistoryRule { keep: 10, ttl: Duration::from_secs(600) };
    const NONE: HistoryRule = HistoryRule { keep: 0, ttl: Duration::from_secs(600) };

    fn claim<'a>(room: &'a str, history: HistoryRule, rate: Option<Rate>, nonce: Option<&'a str>) -> Claim<'a> {
        Claim {
            user: "u1",
            restricted: false,
            room,
            event: "chat.message",
            rate,
            nonce: nonce.map(|n| NonceClaim {
                nonce: Cow::Borrowed(n),
                ts: T0,
                keep_until: T0.saturating_add(Duration::from_secs(60)),
            }),
            history,
        }
    }

    fn seq_of(frame: &str) -> u64 {
        serde_json::from_str::<serde_json::Value>(frame).unwrap()["seq"].as_u64().unwrap()
    }

    /// Runs every case against the pair `make` builds.
    pub(crate) async fn run(make: impl Fn(Arc<Hub>) -> (Box<dyn Commit>, Box<dyn History<Frame = Utf8Bytes>>)) {
        let hub = Arc::new(Hub::default());
        let (commit, history) = make(Arc::clone(&hub));
        let data = RawValue::from_string(r#"{"content":"hi"}"#.to_owned()).unwrap();
        let event = Outgoing { from_id: "u1", from_name: "u1", data: &data, ts: T0 };

        // Members see every event, in `seq` order, and each is kept
        // before its `seq` is known.
        let (tx, mut rx) = mpsc::channel(16);
        let member = Member { tx, control: Arc::new(Control::default()) };
        let mut membership = Membership::new(&hub, member, IpKey::of(std::net::Ipv4Addr::LOCALHOST.into()), "m", T0);
        membership.join("c", T0);
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let committed = commit.commit(claim("c", KEEP, None, None), event, T0).await.unwrap();
            let kept = history.range("c", committed.seq - 1, T0).await.unwrap();
            assert_eq!(kept.replay.events.len(), 1, "kept by the time the seq is known");
            seqs.push(committed.seq);
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let delivered: Vec<u64> = (0..3).map(|_| seq_of(rx.try_recv().unwrap().as_str())).collect();
        assert_eq!(delivered, seqs, "delivered in seq order");
        let all = history.range("c", seqs[0] - 1, T0).await.unwrap();
        assert_eq!((all.seq, all.replay.events.len(), all.replay.complete), (seqs[2], 3, true));
        let beyond = history.range("c", seqs[2] + 1, T0).await.unwrap();
        assert!(!beyond.replay.complete, "a since from the future is not complete");

        // A refused rate publishes nothing and spends no nonce.
        let once = Rate::parse("1/min").unwrap();
        commit.commit(claim("r", KEEP, Some(once), Some("n1")), event, T0).await.unwrap();
        let refused = commit.commit(claim("r", KEEP, Some(once), Some("n2")), event, T0).await.unwrap_err();
        assert_eq!(refused.kind, Kind::RateExcess);
        commit.commit(claim("r", KEEP, None, Some("n2")), event, T0).await.expect("n2 was not spent");
        let replayed = commit.commit(claim("r", KEEP, None, Some("n1")), event, T0).await.unwrap_err();
        assert_eq!(replayed.kind, Kind::Replay);
        assert_eq!(history.range("r", 0, T0).await.unwrap().replay.events.len(), 2, "two published");

        // A room nobody is in and that keeps nothing still never goes back.
        let first = commit.commit(claim("g", NONE, None, None), event, T0).await.unwrap().seq;
        let second = commit.commit(claim("g", NONE, None, None), event, T0).await.unwrap().seq;
        assert!(second > first);
        drop(membership);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Config, Source};
    use crate::history::LocalHistory;

    #[tokio::test]
    async fn the_local_commit_and_history_pass_the_conformance_suite() {
        let config = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
        let settings = config.abuse.settings().unwrap();
        conformance::run(|hub| {
            let commit = LocalCommit {
                hub: Arc::clone(&hub),
                guard: Arc::new(Guard::new(settings.clone())),
                nonces: MemoryNonces::new(100, 10),
            };
            (Box::new(commit), Box::new(LocalHistory { hub }))
        })
        .await;
    }
}
