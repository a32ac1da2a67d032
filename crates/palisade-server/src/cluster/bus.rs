//! The bus on Redis (`seams::Bus`, docs/ARCHITECTURE.md, "Cluster
//! mode"): one subscriber connection per node, whose messages a reader
//! task hands to the node's hub, and one task that owns the subscriptions
//! and takes every call in order, so counts and Redis agree. Events are
//! published by the commit script; [`Bus::publish`] publishes through the
//! same task, in call order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Bus, Deliver, Pending};
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{error, warn};

use super::{Keys, within};

/// What the task that owns the subscriptions is asked.
#[derive(Debug)]
enum Call {
    Subscribe(Box<str>, oneshot::Sender<redis::RedisResult<()>>),
    Unsubscribe(Box<str>),
    Publish(Box<str>, u64, Utf8Bytes),
}

/// One node's side of the Redis bus.
#[derive(Debug)]
pub(crate) struct RedisBus {
    calls: mpsc::UnboundedSender<Call>,
    timeout: Duration,
}

impl RedisBus {
    /// Connects a node's subscriber to `client`, delivering to `sink`;
    /// `publisher` publishes. Subscriptions wait at most `timeout`.
    pub(crate) async fn connect(
        client: &redis::Client,
        publisher: ConnectionManager,
        keys: Keys,
        sink: Arc<dyn Deliver<Utf8Bytes>>,
        timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let (subscriptions, mut messages) = client.get_async_pubsub().await?.split();
        let reader_keys = keys.clone();
        let reader = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let room = reader_keys.room_of_channel(message.get_channel_name());
                match (room, parse(message.get_payload_bytes())) {
                    (Some(room), Some((seq, frame))) => sink.deliver(room, seq, &frame),
                    _ => warn!(channel = message.get_channel_name(), "redis: a message the bus cannot read"),
                }
            }
            error!("redis: the bus's subscriber connection closed");
        });
        let (calls, queue) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            Owner { subscriptions, publisher, keys, counts: HashMap::new() }.run(queue).await;
            reader.abort();
        });
        Ok(Self { calls, timeout })
    }
}

/// The task that owns the subscriptions.
struct Owner {
    subscriptions: PubSubSink,
    publisher: ConnectionManager,
    keys: Keys,
    /// Each subscribed room's count of `subscribe` calls.
    counts: HashMap<Box<str>, usize>,
}

impl Owner {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Call>) {
        while let Some(call) = queue.recv().await {
            match call {
                Call::Subscribe(room, answer) => {
                    let subscribed = self.subscribe(&room).await;
                    // A caller that stopped waiting counts nothing.
                    if let Err(Ok(())) = answer.send(subscribed) {
                        self.unsubscribe(&room).await;
                    }
                }
                Call::Unsubscribe(room) => self.unsubscribe(&room).await,
                Call::Publish(room, seq, frame) => {
                    let payload = format!("{seq} {}", frame.as_str());
                    let published: redis::RedisResult<()> =
                        self.publisher.publish(self.keys.events(&room), payload).await;
                    if let Err(e) = published {
                        error!(error = %e, room = %room, "redis: publish failed");
                    }
                }
            }
        }
    }

    async fn subscribe(&mut self, room: &str) -> redis::RedisResult<()> {
        if let Some(count) = self.counts.get_mut(room) {
            *count += 1;
            return Ok(());
        }
        self.subscriptions.subscribe(self.keys.events(room)).await?;
        self.counts.insert(room.into(), 1);
        Ok(())
    }

    async fn unsubscribe(&mut self, room: &str) {
        let Some(count) = self.counts.get_mut(room) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.counts.remove(room);
        if let Err(e) = self.subscriptions.unsubscribe(self.keys.events(room)).await {
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
            let bus = RedisBus::connect(&client, publisher.clone(), Keys::new("bus"), sink, Duration::from_secs(5));
            nodes.push((Box::new(bus.await.unwrap()) as Box<dyn Bus<Frame = Utf8Bytes>>, heard));
        }
        conformance::run(nodes.try_into().unwrap()).await;
    }
}
