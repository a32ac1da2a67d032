//! The commit step on one node (`seams::Commit`, docs/ARCHITECTURE.md,
//! "Seams"): the event's rate and the replay nonce checked against this
//! process's guard and nonce store (core's `seams::commit::check`), then
//! the hub gives the event the room's next `seq`, keeps it and publishes
//! it on the bus, under the room's lock, so members see `seq` order.
//! It answers at once.

use std::sync::Arc;

use palisade_core::Timestamp;
use palisade_core::guard::Guard;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Bus, Claim, Commit, Committed, Outgoing, Pending, commit};
use palisade_core::store::MemoryNonces;
use palisade_protocol::ServerFrame;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::Hub;

/// The memory commit step.
#[derive(Debug)]
pub(crate) struct LocalCommit {
    pub(crate) hub: Arc<Hub>,
    pub(crate) bus: Arc<dyn Bus<Frame = Utf8Bytes>>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) nonces: MemoryNonces,
}

impl LocalCommit {
    fn commit_now(&self, claim: &Claim<'_>, event: &Outgoing<'_>, now: Timestamp) -> Result<Committed, Refusal> {
        let unenforced = commit::check(claim, &self.guard, &self.nonces, now)?;
        let send = |seq, frame| self.bus.publish(claim.room, seq, frame);
        let render = |seq| {
            let frame = event.frame(claim, seq);
            // Kept for `recover` and shared by every member: without the
            // spare capacity serializing leaves (the buffer grows by
            // doubling; BENCHMARKS.md, room history).
            let mut text = ServerFrame::Event(frame).to_json();
            text.shrink_to_fit();
            Utf8Bytes::from(text)
        };
        let seq = self.hub.publish(claim.room, claim.history, now, render, send);
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

/// The conformance suite every commit step passes with its history and
/// bus, run on two nodes, each with its hub and its three over it: the
/// memory ones, and a cluster's on Redis, whose buses deliver to the hubs.
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
    use palisade_core::seams::{Bus, Claim, Commit, History, NonceClaim, Outgoing};
    use serde_json::value::RawValue;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use crate::control::Control;
    use crate::hub::{Hub, Member, Membership};

    /// Now, by the real clock: a cluster's commit times rates and nonces
    /// by Redis's, so the suite's times must be near it.
    fn t0() -> Timestamp {
        crate::clock::now()
    }

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
                ts: t0(),
                keep_until: t0().saturating_add(Duration::from_secs(60)),
            }),
            history,
        }
    }

    fn seq_of(frame: &str) -> u64 {
        serde_json::from_str::<serde_json::Value>(frame).unwrap()["seq"].as_u64().unwrap()
    }

    /// One node's seams.
    #[derive(Debug)]
    pub(crate) struct Node {
        pub(crate) commit: Box<dyn Commit>,
        pub(crate) history: Box<dyn History<Frame = Utf8Bytes>>,
        pub(crate) bus: Arc<dyn Bus<Frame = Utf8Bytes>>,
    }

    /// A member of room `room` on `hub`, joined through `bus`.
    async fn member<'h>(
        hub: &'h Hub,
        bus: &'h dyn Bus<Frame = Utf8Bytes>,
        room: &str,
    ) -> (Membership<'h>, Arc<Control>) {
        let control = Arc::new(Control::new(16));
        let member = Member { control: Arc::clone(&control) };
        let mut membership =
            Membership::new(hub, bus, member, IpKey::of(std::net::Ipv4Addr::LOCALHOST.into()), "m", t0());
        membership.join(room).await.unwrap();
        (membership, control)
    }

    /// The `seq`s of the next `n` events `member` gets (a bus may deliver
    /// later than the commit answers).
    async fn next_seqs(member: &Control, n: usize) -> Vec<u64> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            let frame = tokio::time::timeout(Duration::from_secs(5), member.events.next()).await.unwrap();
            seqs.push(seq_of(frame.as_str()));
        }
        seqs
    }

    /// Runs every case against two nodes.
    pub(crate) async fn run(nodes: [(Arc<Hub>, Node); 2]) {
        let [(hub, Node { commit, history, bus }), (other_hub, other)] = nodes;
        let data = RawValue::from_string(r#"{"content":"hi"}"#.to_owned()).unwrap();
        let event = Outgoing { from_id: "u1", from_name: "u1", data: &data, ts: t0() };

        // Members see every event, in `seq` order, and each is kept
        // before its `seq` is known.
        let (membership, rx) = member(&hub, &*bus, "c").await;
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let committed = commit.commit(claim("c", KEEP, None, None), event, t0()).await.unwrap();
            let kept = history.range("c", committed.seq - 1, t0()).await.unwrap();
            assert_eq!(kept.replay.events.len(), 1, "kept by the time the seq is known");
            seqs.push(committed.seq);
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(next_seqs(&rx, 3).await, seqs, "delivered in seq order");
        let all = history.range("c", seqs[0] - 1, t0()).await.unwrap();
        assert_eq!((all.seq, all.replay.events.len(), all.replay.complete), (seqs[2], 3, true));
        assert_eq!(history.head("c", t0()).await.unwrap(), seqs[2], "the head is the newest seq");
        let fresh = history.head("fresh", t0()).await.unwrap();
        let first_in_fresh = commit.commit(claim("fresh", NONE, None, None), event, t0()).await.unwrap().seq;
        assert!(first_in_fresh > fresh, "an event after a head read is above it");
        let beyond = history.range("c", seqs[2] + 1, t0()).await.unwrap();
        assert!(!beyond.replay.complete, "a since from the future is not complete");

        // A refused rate publishes nothing and spends no nonce.
        let once = Rate::parse("1/min").unwrap();
        commit.commit(claim("r", KEEP, Some(once), Some("n1")), event, t0()).await.unwrap();
        let refused = commit.commit(claim("r", KEEP, Some(once), Some("n2")), event, t0()).await.unwrap_err();
        assert_eq!(refused.kind, Kind::RateExcess);
        commit.commit(claim("r", KEEP, None, Some("n2")), event, t0()).await.expect("n2 was not spent");
        let replayed = commit.commit(claim("r", KEEP, None, Some("n1")), event, t0()).await.unwrap_err();
        assert_eq!(replayed.kind, Kind::Replay);
        assert_eq!(history.range("r", 0, t0()).await.unwrap().replay.events.len(), 2, "two published");

        // A cleared room (deleted) keeps nothing, and its `seq` goes on.
        let head = history.head("r", t0()).await.unwrap();
        history.clear("r").await.unwrap();
        let cleared = history.range("r", 0, t0()).await.unwrap();
        assert!(cleared.replay.events.is_empty() && !cleared.replay.complete, "nothing kept");
        assert!(cleared.seq >= head, "the seq does not go back");
        let next = commit.commit(claim("r", KEEP, None, None), event, t0()).await.unwrap().seq;
        assert!(next > head, "nor does the next event's");

        // A room nobody is in and that keeps nothing still never goes back.
        let first = commit.commit(claim("g", NONE, None, None), event, t0()).await.unwrap().seq;
        let second = commit.commit(claim("g", NONE, None, None), event, t0()).await.unwrap().seq;
        assert!(second > first);
        drop(membership);

        // A commit on one node reaches the room's members on another, in
        // `seq` order, and its own node's.
        let (here, here_rx) = member(&hub, &*bus, "x").await;
        let (there, there_rx) = member(&other_hub, &*other.bus, "x").await;
        let mut seqs = Vec::new();
        for _ in 0..3 {
            seqs.push(commit.commit(claim("x", NONE, None, None), event, t0()).await.unwrap().seq);
        }
        assert_eq!(next_seqs(&there_rx, 3).await, seqs, "the other node's member, in seq order");
        assert_eq!(next_seqs(&here_rx, 3).await, seqs, "and this node's");
        drop((here, there));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use palisade_core::seams::Deliver;

    use super::*;
    use crate::bus::{Broker, MemoryBus};
    use crate::config::{Config, Source};
    use crate::history::LocalHistory;
    use crate::hub::Hub;

    #[tokio::test]
    async fn the_local_commit_and_history_pass_the_conformance_suite() {
        let config = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
        let settings = config.abuse.settings().unwrap();
        let broker = Arc::new(Broker::default());
        let node = || {
            let hub = Arc::new(Hub::default());
            let bus: Arc<dyn Bus<Frame = Utf8Bytes>> =
                Arc::new(MemoryBus::new(Arc::clone(&broker), Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>));
            let commit = LocalCommit {
                hub: Arc::clone(&hub),
                bus: Arc::clone(&bus),
                guard: Arc::new(Guard::new(settings.clone())),
                nonces: MemoryNonces::new(100, 10),
            };
            let history = Box::new(LocalHistory { hub: Arc::clone(&hub) });
            (hub, conformance::Node { commit: Box::new(commit), history, bus })
        };
        conformance::run([node(), node()]).await;
    }
}
