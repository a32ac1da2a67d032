//! The control channel on Redis (`seams::ControlChannel`,
//! docs/ARCHITECTURE.md, "Cluster mode"): a command is performed on this
//! node at once, as on one node, and published on the cluster's control
//! channel for the others, which perform it on their own connections
//! when the bus's subscriber hands it to them. A command for a
//! connection of this node stays here.

use std::sync::Arc;

use palisade_core::guard::Subject;
use palisade_core::node::{NodeId, parse_conn_id};
use palisade_core::seams::{Command, ControlChannel, Leaving, Target};
use palisade_protocol::CloseCode;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::bus::RedisBus;
use crate::channel::LocalChannel;

/// A command as it travels between nodes.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Wire {
    /// The node that sent it (which performed it already).
    from: String,
    /// `all`, `conn:<node>-<n>`, or a subject (`ip:…`, `user:…`).
    to: String,
    /// `close:<code>`, `revalidate`, `recheck`, or for a `room`: `delete`
    /// (to `all`) or `remove` (to a user).
    #[serde(rename = "do")]
    act: String,
    /// The room a `delete` or a `remove` is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
}

impl Wire {
    fn new(from: &NodeId, target: Target<'_>, command: Command) -> Self {
        let to = match target {
            Target::All => "all".to_owned(),
            Target::Conn(id) => format!("conn:{id}"),
            Target::Subject(subject) => subject.to_string(),
        };
        let act = match command {
            Command::Close(code) => format!("close:{}", code.code()),
            Command::Revalidate => "revalidate".to_owned(),
            Command::Recheck => "recheck".to_owned(),
        };
        Self { from: from.to_string(), to, act, room: None }
    }

    fn leaving(from: &NodeId, room: &str, who: Leaving<'_>) -> Self {
        let (to, act) = match who {
            Leaving::Everyone => ("all".to_owned(), "delete"),
            Leaving::User(user) => (Subject::User(user.into()).to_string(), "remove"),
        };
        Self { from: from.to_string(), to, act: act.to_owned(), room: Some(room.to_owned()) }
    }

    /// Performs it through `local`, unless this node sent it.
    fn perform(&self, node: &NodeId, local: &LocalChannel) -> Option<usize> {
        if self.from == node.to_string() {
            return Some(0);
        }
        if let Some(room) = &self.room {
            return match (self.act.as_str(), self.to.as_str()) {
                ("delete", "all") => Some(local.leave(room, Leaving::Everyone)),
                ("remove", to) => match to.parse().ok()? {
                    Subject::User(user) => Some(local.leave(room, Leaving::User(&user))),
                    Subject::Ip(_) => None,
                },
                _ => None,
            };
        }
        let command = match self.act.as_str() {
            "revalidate" => Command::Revalidate,
            "recheck" => Command::Recheck,
            other => Command::Close(CloseCode::from_code(other.strip_prefix("close:")?.parse().ok()?)?),
        };
        let subject: Subject;
        let target = match (self.to.as_str(), self.to.strip_prefix("conn:")) {
            ("all", _) => Target::All,
            (_, Some(id)) => Target::Conn(id),
            (to, None) => {
                subject = to.parse().ok()?;
                Target::Subject(&subject)
            }
        };
        Some(local.send(target, command))
    }
}

/// The Redis control channel.
#[derive(Debug)]
pub(crate) struct RedisChannel {
    local: Arc<LocalChannel>,
    bus: Arc<RedisBus>,
}

impl RedisChannel {
    pub(crate) fn new(local: Arc<LocalChannel>, bus: Arc<RedisBus>) -> Self {
        Self { local, bus }
    }
}

impl ControlChannel for RedisChannel {
    fn send(&self, target: Target<'_>, command: Command) -> usize {
        let here = self.local.send(target, command);
        let only_here =
            matches!(target, Target::Conn(id) if parse_conn_id(id).is_some_and(|(node, _)| node == self.local.node));
        if !only_here {
            let wire = Wire::new(&self.local.node, target, command);
            // Serializing three strings cannot fail.
            if let Ok(text) = serde_json::to_string(&wire) {
                self.bus.control(text);
            }
        }
        here
    }

    fn leave(&self, room: &str, who: Leaving<'_>) -> usize {
        let here = self.local.leave(room, who);
        // Serializing strings cannot fail.
        if let Ok(text) = serde_json::to_string(&Wire::leaving(&self.local.node, room, who)) {
            self.bus.control(text);
        }
        here
    }
}

/// What a node does with a command another node published: performs it on
/// its own connections through `local`.
pub(crate) fn perform(local: &LocalChannel, text: &str) {
    match serde_json::from_str::<Wire>(text).ok().and_then(|wire| wire.perform(&local.node, local)) {
        Some(_) => {}
        None => warn!("redis: a control command this node cannot read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_redis_channel_passes_the_conformance_suite() {
        use std::time::Duration;

        use palisade_core::seams::Deliver;
        use redis::aio::ConnectionManager;
        use tokio_tungstenite::tungstenite::Utf8Bytes;

        use crate::cluster::testing::RedisServer;
        use crate::cluster::{ClockCheck, Keys};
        use crate::hub::Hub;

        let Some(server) = RedisServer::start() else { return };
        let client = redis::Client::open(server.url()).unwrap();
        let conn = ConnectionManager::new(client.clone()).await.unwrap();
        let hub = Arc::new(Hub::default());
        let local = Arc::new(LocalChannel { hub: Arc::clone(&hub), node: NodeId::parse("n1").unwrap() });
        let performer = Arc::clone(&local);
        let on_control: crate::cluster::bus::OnControl = Arc::new(move |text: &str| perform(&performer, text));
        let sink = Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>;
        let clock = Arc::new(ClockCheck::new(Duration::from_secs(1)));
        let timeout = Duration::from_secs(5);
        let bus = RedisBus::connect(&client, conn, Keys::new("channel"), sink, timeout, Some(on_control), clock);
        let channel = RedisChannel::new(local, Arc::new(bus.await.unwrap()));
        crate::channel::conformance::run(hub, Box::new(channel)).await;
    }

    #[test]
    fn commands_travel_as_they_were_sent() {
        let node = NodeId::parse("a").unwrap();
        let subject: Subject = "ip:127.0.0.3".parse().unwrap();
        for (target, command, to, act) in [
            (Target::All, Command::Recheck, "all", "recheck"),
            (Target::Conn("b-5"), Command::Close(CloseCode::Revoked), "conn:b-5", "close:4003"),
            (Target::Subject(&subject), Command::Revalidate, "ip:127.0.0.3", "revalidate"),
        ] {
            let wire = Wire::new(&node, target, command);
            assert_eq!((wire.to.as_str(), wire.act.as_str()), (to, act));
        }
        let hub = Arc::new(crate::hub::Hub::default());
        let local = LocalChannel { hub, node: NodeId::parse("b").unwrap() };
        for (who, to, act) in [(Leaving::Everyone, "all", "delete"), (Leaving::User("bob"), "user:bob", "remove")] {
            let wire = Wire::leaving(&node, "team", who);
            assert_eq!((wire.to.as_str(), wire.act.as_str(), wire.room.as_deref()), (to, act, Some("team")));
            let text = serde_json::to_string(&wire).unwrap();
            let back: Wire = serde_json::from_str(&text).unwrap();
            assert_eq!(back.perform(&local.node, &local), Some(0), "read back and performed: nobody is in the room");
        }
        let odd = Wire { from: "a".into(), to: "ip:127.0.0.3".into(), act: "remove".into(), room: Some("team".into()) };
        assert_eq!(odd.perform(&local.node, &local), None, "only users are removed from rooms");
    }
}
