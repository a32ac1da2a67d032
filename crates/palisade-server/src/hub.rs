//! Rooms and fan-out.
//!
//! Each room has its own lock; there is no lock across rooms on the message
//! path (the room map is sharded). Publishing takes the room's lock, assigns
//! the next `seq`, serializes the event once and hands the same bytes to
//! every member's bounded queue with `try_send`: a full queue marks that
//! member a slow consumer (closed with 4009) and never delays the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::guard::Subject;
use palisade_protocol::CloseCode;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::control::Control;

/// Identifies a connection within this process.
pub(crate) type ConnId = u64;

/// What a room needs to reach one member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) tx: mpsc::Sender<Utf8Bytes>,
    pub(crate) control: Arc<Control>,
}

#[derive(Debug, Default)]
struct Room {
    seq: u64,
    members: HashMap<ConnId, Member>,
}

/// Who a live connection is, for closing every connection of a banned
/// address or user, and for the admin API's list (never a payload).
#[derive(Debug)]
struct Peer {
    ip: IpKey,
    user: Box<str>,
    control: Arc<Control>,
    /// The rooms it is in: the server's one record of them, kept by
    /// [`Membership`] (the core session keeps its own, to decide by).
    rooms: Vec<Box<str>>,
    connected_at: Timestamp,
}

/// One live connection as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnInfo {
    pub(crate) id: ConnId,
    pub(crate) user: Box<str>,
    pub(crate) ip: IpKey,
    pub(crate) rooms: Vec<Box<str>>,
    pub(crate) connected_at: Timestamp,
}

/// Which connections the admin API lists: every given filter must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnFilter {
    pub(crate) user: Option<String>,
    pub(crate) ip: Option<IpKey>,
    pub(crate) room: Option<String>,
}

impl ConnFilter {
    fn matches(&self, peer: &Peer) -> bool {
        self.user.as_deref().is_none_or(|u| *peer.user == *u)
            && self.ip.is_none_or(|ip| peer.ip == ip)
            && self.room.as_deref().is_none_or(|r| peer.rooms.iter().any(|p| **p == *r))
    }
}

/// All rooms and connections of this process.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    rooms: DashMap<Box<str>, Arc<std::sync::Mutex<Room>>>,
    conns: DashMap<ConnId, Peer>,
    next_conn: AtomicU64,
}

impl Hub {
    /// A fresh connection id.
    fn conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a member; joining twice is harmless.
    fn join(&self, room: &str, id: ConnId, member: Member) {
        // The shard stays locked while the member is added, so `leave`
        // cannot drop the room between lookup and insert.
        let entry = self.rooms.entry(room.into()).or_default();
        lock(&entry).members.insert(id, member);
    }

    /// Removes a member; an empty room is dropped.
    fn leave(&self, room: &str, id: ConnId) {
        if let Some(entry) = self.rooms.get(room) {
            lock(&entry).members.remove(&id);
        }
        self.rooms.remove_if(room, |_, r| lock(r).members.is_empty());
    }

    /// Publishes to every member of `room`; `render` turns the assigned seq
    /// into the frame, once. Returns the seq, or `None` if the room is gone.
    pub(crate) fn publish(&self, room: &str, render: impl FnOnce(u64) -> Utf8Bytes) -> Option<u64> {
        let room = Arc::clone(self.rooms.get(room)?.value());
        let mut room = lock(&room);
        room.seq += 1;
        let seq = room.seq;
        let frame = render(seq);
        for member in room.members.values() {
            match member.tx.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => member.control.close(CloseCode::SlowConsumer),
                // The connection is shutting down and will leave on its own.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        Some(seq)
    }

    /// Asks every live connection of `subject` to close with `code`;
    /// returns how many were asked. Bans are rare, so a scan is fine.
    pub(crate) fn close_all(&self, subject: &Subject, code: CloseCode) -> usize {
        let mut asked = 0;
        for conn in &self.conns {
            let matches = match subject {
                Subject::Ip(ip) => conn.ip == *ip,
                Subject::User(user) => conn.user == *user,
            };
            if matches {
                conn.control.close(code);
                asked += 1;
            }
        }
        asked
    }

    /// The connections `filter` matches whose id is above `after`, in id
    /// order, at most `limit`; and whether there are more. A scan of every
    /// connection that holds one shard's read lock at a time, never the
    /// message path's room locks.
    pub(crate) fn list(&self, filter: &ConnFilter, after: Option<ConnId>, limit: usize) -> (Vec<ConnInfo>, bool) {
        // Ids first, and only a page's worth of entries copied: a page of
        // 100 out of 20,000 connections is an O(n) selection and 100 clones,
        // not 20,000 clones and a sort.
        let mut ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| after.is_none_or(|a| *c.key() > a) && filter.matches(c.value()))
            .map(|c| *c.key())
            .collect();
        let more = ids.len() > limit;
        if more {
            ids.select_nth_unstable(limit);
            ids.truncate(limit);
        }
        ids.sort_unstable();
        // A connection that closed since is left out; the cursor (the last
        // id returned) still never overlaps the next page.
        let found = ids
            .iter()
            .filter_map(|id| {
                self.conns.get(id).map(|c| ConnInfo {
                    id: *id,
                    user: c.user.clone(),
                    ip: c.ip,
                    rooms: c.rooms.clone(),
                    connected_at: c.connected_at,
                })
            })
            .collect();
        (found, more)
    }

    /// Asks the connection `id` to close with `code`; `false` if there is
    /// no such connection.
    pub(crate) fn close(&self, id: ConnId, code: CloseCode) -> bool {
        self.conns.get(&id).map(|c| c.control.close(code)).is_some()
    }

    /// Asks every live connection to check its token against the
    /// revocations; returns how many were asked.
    pub(crate) fn revalidate_all(&self) -> usize {
        let mut asked = 0;
        for conn in &self.conns {
            conn.control.revalidate();
            asked += 1;
        }
        asked
    }

    /// Asks every member of every room to re-check its rooms against the
    /// policy (after a reload). Connections in no room have nothing to lose.
    pub(crate) fn recheck_all(&self) {
        for room in &self.rooms {
            for member in lock(room.value()).members.values() {
                member.control.recheck();
            }
        }
    }
}

/// One connection's place in the hub: the rooms it joined, left on drop.
///
/// Owned by the connection task, so the rooms are left however the task
/// ends (returns, is cancelled, or panics) and a room never keeps a member
/// whose task is gone. The rooms are those of the connection's entry in
/// the hub; only this task changes that entry.
#[derive(Debug)]
pub(crate) struct Membership<'h> {
    hub: &'h Hub,
    id: ConnId,
    member: Member,
}

impl<'h> Membership<'h> {
    /// Registers a connection of `user` from `ip` in `hub` at `now`, in no
    /// room yet.
    pub(crate) fn new(hub: &'h Hub, member: Member, ip: IpKey, user: &str, now: Timestamp) -> Self {
        let id = hub.conn_id();
        let peer =
            Peer { ip, user: user.into(), control: Arc::clone(&member.control), rooms: Vec::new(), connected_at: now };
        hub.conns.insert(id, peer);
        Self { hub, id, member }
    }

    /// This connection's id.
    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    /// Joins `room`; joining twice is harmless.
    pub(crate) fn join(&mut self, room: &str) {
        let joined = self.hub.conns.get(&self.id).is_some_and(|peer| peer.rooms.iter().any(|r| **r == *room));
        if joined {
            return;
        }
        // Not under the entry's lock: no path holds a connection's entry
        // and a room's lock at once, so the two can never deadlock.
        self.hub.join(room, self.id, self.member.clone());
        if let Some(mut peer) = self.hub.conns.get_mut(&self.id) {
            peer.rooms.push(room.into());
        }
    }

    /// Leaves `room`.
    pub(crate) fn leave(&mut self, room: &str) {
        self.hub.leave(room, self.id);
        if let Some(mut peer) = self.hub.conns.get_mut(&self.id) {
            peer.rooms.retain(|r| **r != *room);
        }
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if let Some((_, peer)) = self.hub.conns.remove(&self.id) {
            for room in &peer.rooms {
                self.hub.leave(room, self.id);
            }
        }
    }
}

fn lock(room: &std::sync::Mutex<Room>) -> std::sync::MutexGuard<'_, Room> {
    // A panic while holding a room lock cannot leave the room inconsistent
    // (every update is a single insert, remove or increment), so poisoning
    // is ignored rather than taking the room down.
    room.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn loopback() -> IpKey {
        IpKey::of(std::net::Ipv4Addr::LOCALHOST.into())
    }

    fn member(cap: usize) -> (Member, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(cap);
        (Member { tx, control: Arc::new(Control::default()) }, rx)
    }

    #[tokio::test]
    async fn publish_assigns_increasing_seq_and_shares_one_frame() {
        let hub = Hub::default();
        let (a, mut ra) = member(8);
        let (b, mut rb) = member(8);
        hub.join("r", 1, a);
        hub.join("r", 2, b);
        let mut renders = 0;
        for expected in 1..=3 {
            let seq = hub.publish("r", |seq| {
                renders += 1;
                Utf8Bytes::from(format!("{seq}"))
            });
            assert_eq!(seq, Some(expected));
        }
        assert_eq!(renders, 3);
        for rx in [&mut ra, &mut rb] {
            for expected in ["1", "2", "3"] {
                assert_eq!(rx.recv().await.unwrap().as_str(), expected);
            }
        }
    }

    #[tokio::test]
    async fn a_full_queue_marks_only_that_member_slow() {
        let hub = Hub::default();
        let (slow, _keep) = member(1);
        let slow_control = Arc::clone(&slow.control);
        let (fast, mut rf) = member(8);
        hub.join("r", 1, slow);
        hub.join("r", 2, fast);
        hub.publish("r", |_| Utf8Bytes::from_static("a"));
        hub.publish("r", |_| Utf8Bytes::from_static("b"));
        assert_eq!(slow_control.closed().await, CloseCode::SlowConsumer);
        assert_eq!(rf.recv().await.unwrap().as_str(), "a");
        assert_eq!(rf.recv().await.unwrap().as_str(), "b");
    }

    #[tokio::test]
    async fn a_panicking_connection_task_leaves_its_rooms() {
        // 'static, as a spawned task needs; leaked once per test run.
        let hub: &'static Hub = Box::leak(Box::default());
        let (m, _rx) = member(1);
        let (other, _other_rx) = member(1);
        let mut bystander = Membership::new(hub, other, loopback(), "b", T0);
        bystander.join("shared");
        let task = tokio::spawn(async move {
            let mut rooms = Membership::new(hub, m, loopback(), "a", T0);
            rooms.join("shared");
            rooms.join("own");
            panic!("a bug in the connection task");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(hub.rooms.get("own").is_none(), "the room only the panicked task was in is gone");
        assert_eq!(
            lock(&hub.rooms.get("shared").unwrap()).members.keys().copied().collect::<Vec<_>>(),
            [bystander.id()]
        );
        drop(bystander);
        assert!(hub.rooms.is_empty());
        assert!(hub.conns.is_empty(), "and no connection stays registered");
    }

    #[tokio::test]
    async fn close_all_reaches_every_connection_of_the_subject_and_no_other() {
        let hub = Hub::default();
        let (a, _ra) = member(1);
        let (b, _rb) = member(1);
        let (c, _rc) = member(1);
        let (ca, cb, cc) = (Arc::clone(&a.control), Arc::clone(&b.control), Arc::clone(&c.control));
        let other = IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 3).into());
        let _a = Membership::new(&hub, a, loopback(), "alice", T0);
        let _b = Membership::new(&hub, b, other, "alice", T0);
        let _c = Membership::new(&hub, c, other, "bob", T0);
        assert_eq!(hub.close_all(&Subject::User("alice".into()), CloseCode::Revoked), 2);
        assert_eq!(ca.closed().await, CloseCode::Revoked);
        assert_eq!(cb.closed().await, CloseCode::Revoked);
        assert_eq!(hub.close_all(&Subject::Ip(loopback()), CloseCode::TooManyViolations), 1);
        let bob = tokio::time::timeout(std::time::Duration::from_millis(20), cc.closed()).await;
        assert!(bob.is_err(), "bob shares neither the user nor the first address");
    }

    #[test]
    fn the_list_filters_pages_in_id_order_and_closes_by_id() {
        let hub = Hub::default();
        let other = IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 3).into());
        let mut held = Vec::new();
        for (i, (ip, user)) in [(loopback(), "alice"), (other, "alice"), (other, "bob")].into_iter().enumerate() {
            let (m, rx) = member(1);
            let mut membership = Membership::new(&hub, m, ip, user, T0);
            if i > 0 {
                membership.join("lobby");
            }
            held.push((membership, rx));
        }
        let all = ConnFilter::default();
        let (first, more) = hub.list(&all, None, 2);
        assert!(more);
        let (rest, more) = hub.list(&all, first.last().map(|c| c.id), 2);
        assert!(!more);
        let ids: Vec<ConnId> = first.iter().chain(&rest).map(|c| c.id).collect();
        assert_eq!(ids, held.iter().map(|(m, _)| m.id()).collect::<Vec<_>>(), "disjoint pages, in id order");
        let alice = ConnFilter { user: Some("alice".into()), ..ConnFilter::default() };
        assert_eq!(hub.list(&alice, None, 10).0.len(), 2);
        let alice_in_lobby = ConnFilter { room: Some("lobby".into()), ..alice };
        let (found, _) = hub.list(&alice_in_lobby, None, 10);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].ip, &*found[0].rooms), (other, &["lobby".into()][..]));
        held[1].0.leave("lobby");
        assert!(hub.list(&alice_in_lobby, None, 10).0.is_empty(), "leaving updates the list");
        let by_ip = ConnFilter { ip: Some(loopback()), ..ConnFilter::default() };
        assert_eq!(hub.list(&by_ip, None, 10).0[0].user.as_ref(), "alice");
        assert!(hub.close(held[2].0.id(), CloseCode::Revoked));
        assert!(!hub.close(9999, CloseCode::Revoked));
    }

    #[test]
    fn empty_rooms_are_dropped() {
        let hub = Hub::default();
        let (m, _rx) = member(1);
        hub.join("r", 1, m);
        hub.leave("r", 1);
        assert!(hub.rooms.is_empty());
        assert_eq!(hub.publish("r", |_| Utf8Bytes::from_static("x")), None);
    }
}
