//! The bus on Redis (`seams::Bus`, docs/ARCHITECTURE.md, "Cluster
//! mode"): one task per node owns the node's subscriber connection and
//! its subscriptions, takes every call in order (so counts and Redis
//! agree) and hands each message to the node's hub. Events are published
//! by the commit script; [`Bus::publish`] publishes through the same task,
//! in call order. The same connection carries the cluster's control
//! commands (`cluster::channel`) when the node listens for them.
//!
//! When the subscriber connection is lost (closed, or a ping unanswered),
//! the node may have missed events: the hub is told for every room it
//! heard (its members are closed, to reconnect and `recover`), the bus is
//! not ready, and the task reconnects with backoff and subscribes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Bus, Deliver, Pending};
use palisade_core::{Timestamp, clock_skew};
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{error, info, warn};

use super::{ClockCheck, Keys, within};

/// How often the subscriber connection is pinged: a connection that went
/// silent (a peer gone without closing) is found within about this long.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the task that owns the subscriptions is asked.
#[derive(Debug)]
enum Call {
    Subscribe(Box<str>, oneshot::Sender<redis::RedisResult<()>>),
    Unsubscribe(Box<str>),
    Publish(Box<str>, u64, Utf8Bytes),
    /// A control command for the other nodes.
    Control(String),
}

/// What a node does with a control command another node published.
pub(crate) type OnControl = Arc<dyn Fn(&str) + Send + Sync>;

/// One node's side of the Redis bus.
#[derive(Debug)]
pub(crate) struct RedisBus {
    calls: mpsc::UnboundedSender<Call>,
    timeout: Duration,
    ready: Arc<AtomicBool>,
}

impl RedisBus {
    /// Connects a node's subscriber to `client`, delivering to `sink` and
    /// handing other nodes' control commands to `on_control` (if any);
    /// `publisher` publishes. Calls wait at most `timeout`.
    pub(crate) async fn connect(
        client: &redis::Client,
        publisher: ConnectionManager,
        keys: Keys,
        sink: Arc<dyn Deliver<Utf8Bytes>>,
        timeout: Duration,
        on_control: Option<OnControl>,
        clock: Arc<ClockCheck>,
    ) -> redis::RedisResult<Self> {
        let (mut subscriptions, messages) = client.get_async_pubsub().await?.split();
        if on_control.is_some() {
            subscriptions.subscribe(keys.control()).await?;
        }
        let ready = Arc::new(AtomicBool::new(true));
        let (calls, queue) = mpsc::unbounded_channel();
        let owner = Owner {
            client: client.clone(),
            publisher,
            keys,
            sink,
            timeout,
            ready: Arc::clone(&ready),
            counts: HashMap::new(),
            on_control,
            clock,
        };
        tokio::spawn(owner.run(queue, subscriptions, messages));
        Ok(Self { calls, timeout, ready })
    }

    /// Publishes a control command for the other nodes, in call order
    /// with everything else this bus publishes.
    pub(crate) fn control(&self, text: String) {
        // The task ends only when this bus is dropped.
        let _ = self.calls.send(Call::Control(text));
    }
}

/// The task that owns the subscriptions.
struct Owner {
    client: redis::Client,
    publisher: ConnectionManager,
    keys: Keys,
    sink: Arc<dyn Deliver<Utf8Bytes>>,
    timeout: Duration,
    ready: Arc<AtomicBool>,
    /// Each subscribed room's count of `subscribe` calls.
    counts: HashMap<Box<str>, usize>,
    on_control: Option<OnControl>,
    clock: Arc<ClockCheck>,
}

/// Why the subscriber connection is being replaced.
enum Lost {
    Closed,
    Silent,
}

impl Owner {
    /// Serves calls and messages until the bus is dropped, replacing the
    /// subscriber connection whenever it is lost.
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Call>, sink: PubSubSink, messages: PubSubStream) {
        let (mut subscriptions, mut messages) = (sink, messages);
        loop {
            let lost = match self.serve(&mut queue, &mut subscriptions, &mut messages).await {
                Some(lost) => lost,
                None => return,
            };
            self.ready.store(false, Ordering::Release);
            let why = match lost {
                Lost::Closed => "closed",
                Lost::Silent => "did not answer a ping",
            };
            error!(
                rooms = self.counts.len(),
                "redis: the bus's subscriber connection {why}; its rooms' members are closed to recover"
            );
            for room in self.counts.keys() {
                self.sink.lost(room);
            }
            let Some((sink, stream)) = self.reconnect(&mut queue).await else { return };
            (subscriptions, messages) = (sink, stream);
            self.ready.store(true, Ordering::Release);
            info!(rooms = self.counts.len(), "redis: the bus's subscriber connection is back");
        }
    }

    /// Serves until the connection is lost (`Some`) or the bus is dropped.
    async fn serve(
        &mut self,
        queue: &mut mpsc::UnboundedReceiver<Call>,
        subscriptions: &mut PubSubSink,
        messages: &mut PubSubStream,
    ) -> Option<Lost> {
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                call = queue.recv() => match call {
                    Some(call) => self.call(call, Some(subscriptions)).await,
                    None => return None,
                },
                message = messages.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return Some(Lost::Closed),
                },
                _ = ping.tick() => {
                    // Any answer: a subscribed connection answers a
                    // PING with an array, not "PONG".
                    let answered: Result<redis::RedisResult<redis::Value>, _> =
                        tokio::time::timeout(self.timeout.max(PING_EVERY), subscriptions.ping()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        return Some(Lost::Silent);
                    }
                    // The commands' connection too: a failed ping has it
                    // reconnect before a client's call finds it broken.
                    let commands = self.commands_answer().await;
                    self.ready.store(commands, Ordering::Release);
                }
            }
        }
    }

    /// Whether the connection the commit step and history reads use
    /// answers in time; its answer (Redis's clock) measures this node's.
    async fn commands_answer(&mut self) -> bool {
        let command = redis::cmd("TIME");
        let sent = crate::clock::now();
        let time = command.query_async::<(u64, u64)>(&mut self.publisher);
        let Ok(Ok((secs, micros))) = tokio::time::timeout(self.timeout.max(PING_EVERY), time).await else {
            return false;
        };
        let remote = Timestamp::from_millis(secs.saturating_mul(1000).saturating_add(micros / 1000));
        let skew = clock_skew(sent, crate::clock::now(), remote);
        if skew > self.clock.max {
            // Once a second while it lasts: an operator's NTP problem, and
            // the node is not ready until it is fixed.
            error!(skew_ms = skew.as_millis(), "this node's clock is off Redis's by more than store.max_clock_skew");
        }
        self.clock.record(skew);
        true
    }

    fn deliver(&self, message: &redis::Msg) {
        if let Some(on_control) = &self.on_control
            && message.get_channel_name() == self.keys.control()
        {
            match std::str::from_utf8(message.get_payload_bytes()) {
                Ok(text) => on_control(text),
                Err(_) => warn!("redis: a control command that is not UTF-8"),
            }
            return;
        }
        let room = self.keys.room_of_channel(message.get_channel_name());
        match (room, parse(message.get_payload_bytes())) {
            (Some(room), Some((seq, frame))) => self.sink.deliver(room, seq, &frame),
            _ => warn!(channel = message.get_channel_name(), "redis: a message the bus cannot read"),
        }
    }

    /// Connects again with backoff and subscribes to every counted room;
    /// calls meanwhile are answered without Redis (subscribes refused).
    /// `None` when the bus is dropped first.
    async fn reconnect(&mut self, queue: &mut mpsc::UnboundedReceiver<Call>) -> Option<(PubSubSink, PubSubStream)> {
        let mut wait = Duration::from_millis(100);
        loop {
            let retry = tokio::time::sleep(wait);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    () = &mut retry => break,
                    call = queue.recv() => self.call(call?, None).await,
                }
            }
            wait = (wait * 2).min(MAX_BACKOFF);
            let connected = async {
                let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
                let mut channels: Vec<String> = self.counts.keys().map(|room| self.keys.events(room)).collect();
                if self.on_control.is_some() {
                    channels.push(self.keys.control());
                }
                if !channels.is_empty() {
                    sink.subscribe(channels).await?;
                }
                Ok::<_, redis::RedisError>((sink, stream))
            };
            match tokio::time::timeout(self.timeout.max(PING_EVERY), connected).await {
                Ok(Ok(pair)) if self.commands_answer().await => return Some(pair),
                Ok(Ok(_)) => warn!("redis: the bus cannot reconnect yet: commands get no answer"),
                Ok(Err(e)) => warn!(error = %e, "redis: the bus cannot reconnect yet"),
                Err(_) => warn!("redis: the bus cannot reconnect yet: no answer"),
            }
        }
    }

    /// Performs one call; without a connection, a subscribe is refused and
    /// the rest is kept in the counts only.
    async fn call(&mut self, call: Call, subscriptions: Option<&mut PubSubSink>) {
        match call {
            Call::Subscribe(room, answer) => {
                let mut subscriptions = subscriptions;
                let subscribed = match subscriptions.as_deref_mut() {
                    Some(subscriptions) => self.subscribe(subscriptions, &room).await,
                    None => Err(redis::RedisError::from((redis::ErrorKind::Io, "the bus is reconnecting"))),
                };
                // A caller that stopped waiting counts nothing.
                if let Err(Ok(())) = answer.send(subscribed) {
                    self.unsubscribe(subscriptions, &room).await;
                }
            }
            Call::Unsubscribe(room) => self.unsubscribe(subscriptions, &room).await,
            Call::Publish(room, seq, frame) => {
                let payload = format!("{seq} {}", frame.as_str());
                let published: redis::RedisResult<()> = self.publisher.publish(self.keys.events(&room), payload).await;
                if let Err(e) = published {
                    error!(error = %e, room = %room, "redis: publish failed");
                }
            }
            Call::Control(text) => {
                let published: redis::RedisResult<()> = self.publisher.publish(self.keys.control(), text).await;
                if let Err(e) = published {
                    error!(error = %e, "redis: a control command could not be published");
                }
            }
        }
    }

    async fn subscribe(&mut self, subscriptions: &mut PubSubSink, room: &str) -> redis::RedisResult<()> {
        if let Some(count) = self.counts.get_mut(room) {
            *count += 1;
            return Ok(());
        }
        subscriptions.subscribe(self.keys.events(room)).await?;
        self.counts.insert(room.into(), 1);
        Ok(())
    }

    async fn unsubscribe(&mut self, subscriptions: Option<&mut PubSubSink>, room: &str) {
        let Some(count) = self.counts.get_mut(room) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.counts.remove(room);
        if let Some(subscriptions) = subscriptions
            && let Err(e) = subscriptions.unsubscribe(self.keys.events(room)).await
        {
            error!(error = %e, room = %room, "redis: unsubscribe failed");
        }
    }
}

/// A published message: `<seq> <frame>`.
fn parse(payload: &[u8]) -> Option<(u64, Utf8Bytes)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (seq, frame) = text.split_once(' ')?;
    Some((seq.parse().ok()?, Utf8Bytes::from(frame.to_owned())))
}

impl Bus for RedisBus {
    type Frame = Utf8Bytes;

    fn subscribe<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            let closed = || redis::RedisError::from((redis::ErrorKind::Io, "the bus stopped"));
            self.calls
                .send(Call::Subscribe(room.into(), answer))
                .map_err(|_| super::unavailable("subscribe", &closed()))?;
            within(self.timeout, "subscribe", async { answered.await.unwrap_or_else(|_| Err(closed())) }).await
        })
    }

    fn unsubscribe(&self, room: &str) {
        // The task ends only when this bus is dropped.
        let _ = self.calls.send(Call::Unsubscribe(room.into()));
    }

    fn publish(&self, room: &str, seq: u64, frame: Utf8Bytes) {
        let _ = self.calls.send(Call::Publish(room.into(), seq, frame));
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::conformance;
    use crate::cluster::testing::RedisServer;

    #[tokio::test]
    async fn two_redis_nodes_pass_the_bus_conformance_suite() {
        let Some(server) = RedisServer::start() else { return };
        let client = redis::Client::open(server.url()).unwrap();
        let publisher = ConnectionManager::new(client.clone()).await.unwrap();
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let (sink, heard) = conformance::recorder();
            let bus = RedisBus::connect(
                &client,
                publisher.clone(),
                Keys::new("bus"),
                sink,
                Duration::from_secs(5),
                None,
                Arc::new(ClockCheck::new(Duration::from_secs(1))),
            );
            nodes.push((Box::new(bus.await.unwrap()) as Box<dyn Bus<Frame = Utf8Bytes>>, heard));
        }
        conformance::run(nodes.try_into().unwrap()).await;
    }
}
