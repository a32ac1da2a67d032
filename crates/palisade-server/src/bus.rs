//! The bus in memory (`seams::Bus`, docs/ARCHITECTURE.md, "Seams"): the
//! nodes of one process share a [`Broker`], which hands each event, at
//! once and on the publisher's thread, to every subscribed node's
//! [`Deliver`] (the node's hub). A server is one node on its own broker;
//! the conformance suite puts two on one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Bus, Deliver, Pending};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Where one node's events go.
type Sink = Arc<dyn Deliver<Utf8Bytes>>;

/// Which nodes hear a room.
#[derive(Debug, Default)]
struct Subscribers {
    /// Each subscribed node's count of `subscribe` calls.
    counts: HashMap<usize, usize>,
    /// The subscribed nodes' sinks. Copied when a node comes or goes
    /// (rare), so a publish takes one reference and holds no lock of the
    /// broker while members' queues are filled.
    sinks: Arc<[(usize, Sink)]>,
}

/// The rooms of the nodes of one process.
#[derive(Debug, Default)]
pub(crate) struct Broker {
    rooms: DashMap<Box<str>, Subscribers>,
    nodes: AtomicUsize,
}

/// One node's side of a [`Broker`].
#[derive(Debug)]
pub(crate) struct MemoryBus {
    broker: Arc<Broker>,
    node: usize,
    sink: Sink,
}

impl MemoryBus {
    /// A node on `broker` whose events go to `sink`.
    pub(crate) fn new(broker: Arc<Broker>, sink: Sink) -> Self {
        let node = broker.nodes.fetch_add(1, Ordering::Relaxed);
        Self { broker, node, sink }
    }

    fn subscribe_now(&self, room: &str) {
        let mut subscribers = self.broker.rooms.entry(room.into()).or_default();
        let count = subscribers.counts.entry(self.node).or_insert(0);
        *count += 1;
        if *count == 1 {
            let sinks = subscribers.sinks.iter().cloned().chain([(self.node, Arc::clone(&self.sink))]).collect();
            subscribers.sinks = sinks;
        }
    }
}

#[cfg(test)]
impl Broker {
    /// Whether any node is subscribed to `room`.
    pub(crate) fn is_heard(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }
}

impl Bus for MemoryBus {
    type Frame = Utf8Bytes;

    fn subscribe<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>> {
        self.subscribe_now(room);
        Box::pin(std::future::ready(Ok(())))
    }

    fn unsubscribe(&self, room: &str) {
        let Some(mut subscribers) = self.broker.rooms.get_mut(room) else { return };
        let Some(count) = subscribers.counts.get_mut(&self.node) else { return };
        *count -= 1;
        if *count == 0 {
            subscribers.counts.remove(&self.node);
            let sinks = subscribers.sinks.iter().filter(|(node, _)| *node != self.node).cloned().collect();
            subscribers.sinks = sinks;
        }
        let empty = subscribers.counts.is_empty();
        drop(subscribers);
        if empty {
            self.broker.rooms.remove_if(room, |_, s| s.counts.is_empty());
        }
    }

    fn ready(&self) -> bool {
        true
    }

    fn publish(&self, room: &str, seq: u64, frame: Utf8Bytes) {
        let Some(sinks) = self.broker.rooms.get(room).map(|s| Arc::clone(&s.sinks)) else { return };
        for (_, sink) in sinks.iter() {
            sink.deliver(room, seq, &frame);
        }
    }
}

/// The conformance suite every bus passes, run on two nodes' buses: two
/// memory nodes on one broker, and two nodes of a cluster on Redis. Deliveries may come later than the
/// call that caused them, so the suite waits for them (a few seconds at
/// most), and shows that something did not arrive by a later event of the
/// same publisher that did.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;
    use std::time::Duration;

    use palisade_core::seams::{Bus, Deliver};
    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    /// A sink that records what it is handed.
    #[derive(Debug)]
    struct Recorder(mpsc::UnboundedSender<(String, u64, String)>);

    impl Deliver<Utf8Bytes> for Recorder {
        fn deliver(&self, room: &str, seq: u64, frame: &Utf8Bytes) {
            // The receiver lives as long as the suite.
            let _ = self.0.send((room.to_owned(), seq, frame.as_str().to_owned()));
        }

        fn lost(&self, room: &str) {
            let _ = self.0.send((room.to_owned(), 0, String::new()));
        }
    }

    /// What a node's sink was handed.
    pub(crate) type Heard = mpsc::UnboundedReceiver<(String, u64, String)>;

    /// A sink for a node under test, and what it is handed.
    pub(crate) fn recorder() -> (Arc<dyn Deliver<Utf8Bytes>>, Heard) {
        let (to, heard) = mpsc::unbounded_channel();
        (Arc::new(Recorder(to)), heard)
    }

    async fn next(heard: &mut Heard) -> (String, u64, String) {
        tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("a delivery within 5 s")
            .expect("the sink lives")
    }

    /// Waits until the node's earlier unsubscribes took effect: a later
    /// subscribe resolves after them (the contract).
    async fn barrier(bus: &dyn Bus<Frame = Utf8Bytes>) {
        bus.subscribe("barrier").await.unwrap();
        bus.unsubscribe("barrier");
    }

    fn publish(bus: &dyn Bus<Frame = Utf8Bytes>, room: &str, seq: u64) {
        bus.publish(room, seq, Utf8Bytes::from(format!("{room}#{seq}")));
    }

    /// Runs every case against two nodes' buses, each with what its sink
    /// (made by [`recorder`]) was handed.
    pub(crate) async fn run(nodes: [(Box<dyn Bus<Frame = Utf8Bytes>>, Heard); 2]) {
        let [(a, mut a_heard), (b, mut b_heard)] = nodes;

        // Both subscribed: each event reaches both, the publisher's own
        // node through its sink, and both hear one order, in which each
        // publisher's events keep theirs. (Two nodes' publishes race each
        // other to the broker; the commit step is what orders a room's
        // events, by publishing under its `seq`.)
        a.subscribe("r").await.unwrap();
        b.subscribe("r").await.unwrap();
        publish(&*a, "r", 1);
        publish(&*b, "r", 2);
        publish(&*a, "r", 3);
        let mut orders = Vec::new();
        for heard in [&mut a_heard, &mut b_heard] {
            let events = [next(heard).await, next(heard).await, next(heard).await];
            assert!(events.contains(&("r".to_owned(), 2, "r#2".to_owned())), "the frame as published: {events:?}");
            let seqs = events.map(|(_, seq, _)| seq);
            let at = |seq| seqs.iter().position(|s| *s == seq);
            assert!(at(1) < at(3) && at(2).is_some(), "a's events in a's order: {seqs:?}");
            orders.push(seqs);
        }
        assert_eq!(orders[0], orders[1], "one order for both nodes");

        // Only subscribers hear a room: `b` is not in `s`, and its own
        // later event in `r` shows it would have heard by then.
        a.subscribe("s").await.unwrap();
        publish(&*b, "s", 10);
        publish(&*b, "r", 4);
        assert_eq!(next(&mut b_heard).await.1, 4, "b heard nothing of s");
        assert_eq!(next(&mut a_heard).await, ("s".to_owned(), 10, "s#10".to_owned()));
        assert_eq!(next(&mut a_heard).await.1, 4);

        // Subscriptions count: two subscribes need two unsubscribes.
        b.subscribe("r").await.unwrap();
        b.unsubscribe("r");
        publish(&*a, "r", 5);
        assert_eq!(next(&mut b_heard).await.1, 5, "still subscribed once");
        b.unsubscribe("r");
        barrier(&*b).await;
        publish(&*a, "r", 6);
        publish(&*a, "s", 11);
        assert_eq!(next(&mut a_heard).await.1, 5);
        assert_eq!(next(&mut a_heard).await.1, 6);
        assert_eq!(next(&mut a_heard).await.1, 11);
        b.subscribe("s").await.unwrap();
        publish(&*a, "s", 12);
        assert_eq!(next(&mut b_heard).await.1, 12, "b heard nothing of r after it left");
        assert_eq!(next(&mut a_heard).await.1, 12);

        // Unsubscribing what was never subscribed changes nothing.
        b.unsubscribe("never");
        a.unsubscribe("s");
        barrier(&*a).await;
        publish(&*b, "s", 13);
        assert_eq!(next(&mut b_heard).await.1, 13);
        publish(&*b, "r", 7);
        assert_eq!(next(&mut a_heard).await.1, 7, "a heard nothing of s after it left, and is still in r");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_memory_nodes_on_one_broker_pass_the_conformance_suite() {
        let broker = Arc::new(Broker::default());
        let node = |(sink, heard)| {
            (Box::new(MemoryBus::new(Arc::clone(&broker), sink)) as Box<dyn Bus<Frame = Utf8Bytes>>, heard)
        };
        conformance::run([node(conformance::recorder()), node(conformance::recorder())]).await;
        assert_eq!(broker.rooms.len(), 2, "r and s are heard; rooms nobody hears (barrier) are dropped");
    }

    #[tokio::test]
    async fn a_room_nobody_hears_is_dropped() {
        #[derive(Debug)]
        struct Nowhere;
        impl Deliver<Utf8Bytes> for Nowhere {
            fn deliver(&self, _: &str, _: u64, _: &Utf8Bytes) {}
            fn lost(&self, _: &str) {}
        }
        let broker = Arc::new(Broker::default());
        let bus = MemoryBus::new(Arc::clone(&broker), Arc::new(Nowhere));
        bus.subscribe("r").await.unwrap();
        bus.subscribe("r").await.unwrap();
        bus.unsubscribe("r");
        assert!(broker.is_heard("r"));
        bus.unsubscribe("r");
        assert!(!broker.is_heard("r"));
    }
}
