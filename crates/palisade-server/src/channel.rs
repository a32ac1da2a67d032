//! The control channel on one node (`seams::ControlChannel`,
//! docs/ARCHITECTURE.md, "Seams"): a command reaches this process's
//! connections through their control handles, at once. Another node's
//! connection id reaches nothing here.

use std::sync::Arc;

use palisade_core::node::{NodeId, parse_conn_id};
use palisade_core::seams::{Command, ControlChannel, Leaving, Target};

use crate::hub::{Hub, Who};

/// The memory control channel.
#[derive(Debug)]
pub(crate) struct LocalChannel {
    pub(crate) hub: Arc<Hub>,
    pub(crate) node: NodeId,
}

impl ControlChannel for LocalChannel {
    fn send(&self, target: Target<'_>, command: Command) -> usize {
        let who = match target {
            Target::Subject(subject) => Who::Subject(subject),
            Target::All => Who::All,
            Target::Conn(id) => match parse_conn_id(id) {
                Some((node, n)) if node == self.node => Who::Conn(n),
                _ => return 0,
            },
        };
        self.hub.ask(who, |control| match command {
            Command::Close(code) => control.close(code),
            Command::Revalidate => control.revalidate(),
            Command::Recheck => control.recheck(),
        })
    }

    fn leave(&self, room: &str, who: Leaving<'_>) -> usize {
        match who {
            Leaving::Everyone => self.hub.delete(room),
            Leaving::User(user) => self.hub.remove_user(room, user),
        }
    }
}

/// The conformance suite every control channel passes, given one over a
/// hub of node `n1`: the memory one, and the cluster's on Redis, whose
/// commands for this node come back to the same hub.
#[cfg(test)]
pub(crate) mod conformance {
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;

    use palisade_core::Timestamp;
    use palisade_core::addr::IpKey;
    use palisade_core::guard::Subject;
    use palisade_core::seams::{Command, ControlChannel, Deliver, Target};
    use palisade_protocol::CloseCode;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use crate::bus::MemoryBus;
    use crate::control::{Control, Request};
    use crate::hub::{Hub, Member, Membership};

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn ip(last: u8) -> IpKey {
        IpKey::of(Ipv4Addr::new(127, 0, 0, last).into())
    }

    async fn asked(control: &Control) -> Option<Request> {
        tokio::time::timeout(Duration::from_millis(20), control.requested()).await.ok()
    }

    /// Runs every case against `channel`, which asks `hub`'s connections.
    pub(crate) async fn run(hub: Arc<Hub>, channel: Box<dyn ControlChannel>) {
        // The connections join no room: which bus does not matter.
        let bus = MemoryBus::new(Arc::default(), Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>);
        let mut held = Vec::new();
        let mut controls = Vec::new();
        for (ip, user) in [(ip(1), "alice"), (ip(3), "alice"), (ip(3), "bob")] {
            let control = Arc::new(Control::new(1));
            let member = Member { control: Arc::clone(&control) };
            held.push(Membership::new(&hub, &bus, member, ip, user, T0));
            controls.push(control);
        }
        let ids: Vec<String> = held.iter().map(|m| format!("n1-{}", m.id())).collect();

        // A subject: every connection of it, and no other.
        let alice = Subject::User("alice".into());
        assert_eq!(channel.send(Target::Subject(&alice), Command::Revalidate), 2);
        assert_eq!(asked(&controls[0]).await, Some(Request::Revalidate));
        assert_eq!(asked(&controls[1]).await, Some(Request::Revalidate));
        assert_eq!(asked(&controls[2]).await, None, "bob is not alice");
        let address = Subject::Ip(ip(3));
        assert_eq!(channel.send(Target::Subject(&address), Command::Recheck), 2);
        assert_eq!(
            (asked(&controls[1]).await, asked(&controls[2]).await),
            (Some(Request::Recheck), Some(Request::Recheck))
        );

        // One connection by id; another node's id and garbage reach nothing.
        assert_eq!(channel.send(Target::Conn(&ids[2]), Command::Close(CloseCode::Revoked)), 1);
        assert_eq!(controls[2].closed().await, CloseCode::Revoked);
        for other in ["n2-0", "n1-999999", "nonsense"] {
            assert_eq!(channel.send(Target::Conn(other), Command::Close(CloseCode::Revoked)), 0, "{other}");
        }
        assert_eq!(asked(&controls[0]).await, None);

        // Everyone.
        assert_eq!(channel.send(Target::All, Command::Recheck), 3);
        assert_eq!(asked(&controls[0]).await, Some(Request::Recheck));
        drop(held);
        assert_eq!(channel.send(Target::All, Command::Recheck), 0, "gone connections are not asked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_channel_passes_the_conformance_suite() {
        let node = NodeId::parse("n1").unwrap();
        let hub = Arc::new(Hub::default());
        conformance::run(Arc::clone(&hub), Box::new(LocalChannel { hub, node })).await;
    }
}
