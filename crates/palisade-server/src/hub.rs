//! Rooms and fan-out.
//!
//! Each room has its own lock; there is no lock across rooms on the message
//! path (the room map is sharded). Publishing takes the room's lock, assigns
//! the next `seq`, serializes the event once and hands the same bytes to
//! every member's bounded queue with `try_send`: a full queue marks that
//! member a slow consumer (closed with 4009) and never delays the others.
//!
//! A room keeps its newest events for `recover` (`core::history::Ring`,
//! within its rule's `history` and the `limits.max_history_bytes*` budgets)
//! and outlives its last member while it keeps any; its `seq` is seeded by
//! `core::history::seed`, so it never goes backwards for a room name
//! (docs/ARCHITECTURE.md, "Room history").

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::guard::Subject;
use palisade_core::history::{self, HistoryRule, Replay, Ring};
use palisade_protocol::{CloseCode, RemovedReason};
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

#[derive(Debug)]
struct Room {
    seq: u64,
    members: HashMap<ConnId, Member>,
    history: Ring<Utf8Bytes>,
    /// The rule the room was last published under: its TTL expires the
    /// ring when nobody publishes.
    rule: HistoryRule,
    /// Taken out of the hub: whoever still holds it must look again.
    gone: bool,
}

impl Room {
    fn new(seed: u64) -> Self {
        Self { seq: seed, members: HashMap::new(), history: Ring::new(seed), rule: HistoryRule::default(), gone: false }
    }

    /// Whether the room can go: nobody in it and nothing kept.
    fn is_idle(&self) -> bool {
        self.members.is_empty() && self.history.is_empty()
    }
}

/// The history budgets (`limits.max_history_bytes_per_room`,
/// `limits.max_history_bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistoryBudget {
    pub(crate) per_room: usize,
    pub(crate) total: usize,
}

impl Default for HistoryBudget {
    fn default() -> Self {
        Self { per_room: 1 << 20, total: 64 << 20 }
    }
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

/// Which of this process's connections [`Hub::ask`] reaches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who<'a> {
    /// Every connection of an address or a user.
    Subject(&'a Subject),
    /// One connection.
    Conn(ConnId),
    /// Every connection.
    All,
}

/// All rooms and connections of this process.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    rooms: DashMap<Box<str>, Arc<std::sync::Mutex<Room>>>,
    conns: DashMap<ConnId, Peer>,
    next_conn: AtomicU64,
    /// The highest `seq` of a room this process let go: a room started
    /// again starts above it.
    seq_floor: AtomicU64,
    /// Bytes of history kept by every room.
    history_bytes: AtomicUsize,
    budget: HistoryBudget,
}

impl Hub {
    /// A hub keeping history within `budget`.
    pub(crate) fn new(budget: HistoryBudget) -> Self {
        Self { budget, ..Self::default() }
    }

    /// The room named `name`, started at `now` if there is none.
    fn room(
        &self,
        name: &str,
        now: Timestamp,
    ) -> dashmap::mapref::one::RefMut<'_, Box<str>, Arc<std::sync::Mutex<Room>>> {
        self.rooms.entry(name.into()).or_insert_with(|| {
            let seed = history::seed(now, self.seq_floor.load(Ordering::Relaxed));
            Arc::new(std::sync::Mutex::new(Room::new(seed)))
        })
    }

    /// Drops `name` if it is idle. Its `seq` becomes the floor before the
    /// shard is unlocked, so a room started again after it starts above.
    fn let_go(&self, name: &str) {
        self.rooms.remove_if(name, |_, room| {
            let mut room = lock(room);
            if room.is_idle() {
                room.gone = true;
                self.seq_floor.fetch_max(room.seq, Ordering::Relaxed);
            }
            room.gone
        });
    }

    /// Bytes of history kept now, in every room.
    pub(crate) fn history_bytes(&self) -> usize {
        self.history_bytes.load(Ordering::Relaxed)
    }

    /// Expires history past its rooms' TTL and lets idle rooms go; called
    /// periodically, not on the message path.
    pub(crate) fn sweep(&self, now: Timestamp) {
        let names: Vec<Box<str>> = self.rooms.iter().map(|r| r.key().clone()).collect();
        for name in names {
            let Some(room) = self.rooms.get(&name).map(|r| Arc::clone(r.value())) else { continue };
            {
                let mut room = lock(&room);
                let before = room.history.bytes();
                let ttl = room.rule.ttl;
                room.history.expire(ttl, now);
                self.history_bytes.fetch_sub(before - room.history.bytes(), Ordering::Relaxed);
            }
            self.let_go(&name);
        }
    }

    /// A fresh connection id.
    fn conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a member at `now`; joining twice is harmless. Returns the
    /// room's `seq`.
    fn join(&self, room: &str, id: ConnId, member: Member, now: Timestamp) -> u64 {
        // The shard stays locked while the member is added, so `leave`
        // cannot drop the room between lookup and insert.
        let entry = self.room(room, now);
        let mut room = lock(&entry);
        room.members.insert(id, member);
        room.seq
    }

    /// Room `name`'s `seq` and the events it keeps after `since`, at `now`
    /// (`seams::History` on one node). A room nobody is in and that keeps
    /// nothing is started for the answer and let go after.
    pub(crate) fn range(&self, name: &str, since: u64, now: Timestamp) -> (u64, Replay<Utf8Bytes>) {
        let entry = Arc::clone(self.room(name, now).value());
        let (seq, replay, idle) = {
            let room = lock(&entry);
            (room.seq, room.history.replay(since, room.seq), room.is_idle())
        };
        if idle {
            self.let_go(name);
        }
        (seq, replay)
    }

    /// Removes a member; an idle room is dropped.
    fn leave(&self, room: &str, id: ConnId) {
        if let Some(entry) = self.rooms.get(room) {
            lock(&entry).members.remove(&id);
        }
        self.let_go(room);
    }

    /// Publishes to every member of room `name` at `now`, kept in its
    /// history as `rule` says; `render` turns the assigned seq into the
    /// frame, once. Returns the seq. A room nobody is in still takes the
    /// event: it has a `seq`, and may keep it for a later `recover`.
    pub(crate) fn publish(
        &self,
        name: &str,
        rule: HistoryRule,
        now: Timestamp,
        render: impl FnOnce(u64) -> Utf8Bytes,
    ) -> u64 {
        loop {
            // A read lock on the shard when the room exists, as on the
            // message path, where the publisher is a member.
            let found = self.rooms.get(name).map(|r| Arc::clone(r.value()));
            let entry = found.unwrap_or_else(|| Arc::clone(self.room(name, now).value()));
            let mut room = lock(&entry);
            if room.gone {
                continue;
            }
            let seq = self.deliver(&mut room, rule, now, render);
            let idle = room.is_idle();
            drop(room);
            if idle {
                self.let_go(name);
            }
            return seq;
        }
    }

    /// Assigns the next seq in `room`, keeps the event and queues it for
    /// every member.
    fn deliver(
        &self,
        room: &mut Room,
        rule: HistoryRule,
        now: Timestamp,
        render: impl FnOnce(u64) -> Utf8Bytes,
    ) -> u64 {
        room.seq += 1;
        let seq = room.seq;
        let frame = render(seq);
        self.keep(room, seq, &frame, rule, now);
        for member in room.members.values() {
            match member.tx.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => member.control.close(CloseCode::SlowConsumer),
                // The connection is shutting down and will leave on its own.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        seq
    }

    /// Keeps `frame` in `room`'s history within the budgets: the room's
    /// own bytes, then the process's, by dropping the room's oldest events
    /// (never another room's: one busy room cannot erase the others).
    fn keep(&self, room: &mut Room, seq: u64, frame: &Utf8Bytes, rule: HistoryRule, now: Timestamp) {
        room.rule = rule;
        let before = room.history.bytes();
        room.history.expire(rule.ttl, now);
        room.history.push(seq, now, frame.clone(), frame.len(), rule, self.budget.per_room);
        let after = room.history.bytes();
        if after >= before {
            self.history_bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.history_bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
        while self.history_bytes.load(Ordering::Relaxed) > self.budget.total {
            let size = room.history.bytes();
            if !room.history.drop_oldest() {
                break;
            }
            self.history_bytes.fetch_sub(size - room.history.bytes(), Ordering::Relaxed);
        }
    }

    /// Deletes room `name`: drops its history and asks every member to
    /// leave it (`removed`, reason `deleted`); how many were asked. Its
    /// `seq` goes on: a room of the same name created later starts above.
    pub(crate) fn delete(&self, name: &str) -> usize {
        let Some(entry) = self.rooms.get(name).map(|r| Arc::clone(r.value())) else { return 0 };
        let members: Vec<Arc<Control>> = {
            let mut room = lock(&entry);
            let before = room.history.bytes();
            while room.history.drop_oldest() {}
            self.history_bytes.fetch_sub(before - room.history.bytes(), Ordering::Relaxed);
            room.members.values().map(|m| Arc::clone(&m.control)).collect()
        };
        for control in &members {
            control.remove(name, RemovedReason::Deleted);
        }
        self.let_go(name);
        members.len()
    }

    /// Asks every connection of `user` in room `name` to leave it
    /// (`removed`, reason `removed_by_owner`); how many were asked.
    pub(crate) fn remove_user(&self, name: &str, user: &str) -> usize {
        let Some(entry) = self.rooms.get(name).map(|r| Arc::clone(r.value())) else { return 0 };
        // The members first, then their users: no path holds a room's lock
        // and a connection's entry at once.
        let members: Vec<(ConnId, Arc<Control>)> =
            lock(&entry).members.iter().map(|(id, m)| (*id, Arc::clone(&m.control))).collect();
        let mut asked = 0;
        for (id, control) in members {
            if self.conns.get(&id).is_some_and(|peer| *peer.user == *user) {
                control.remove(name, RemovedReason::RemovedByOwner);
                asked += 1;
            }
        }
        asked
    }

    /// Hands the control handle of every live connection `who` names to
    /// `ask`; how many. Naming a subject scans every connection: bans and
    /// revocations are rare.
    pub(crate) fn ask(&self, who: Who<'_>, ask: impl Fn(&Control)) -> usize {
        let mut asked = 0;
        let mut one = |control: &Control| {
            ask(control);
            asked += 1;
        };
        match who {
            Who::Conn(id) => {
                if let Some(conn) = self.conns.get(&id) {
                    one(&conn.control);
                }
            }
            Who::Subject(subject) => {
                for conn in &self.conns {
                    let matches = match subject {
                        Subject::Ip(ip) => conn.ip == *ip,
                        Subject::User(user) => conn.user == *user,
                    };
                    if matches {
                        one(&conn.control);
                    }
                }
            }
            Who::All => {
                for conn in &self.conns {
                    one(&conn.control);
                }
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

    /// Joins `room` at `now` (joining twice is harmless); the room's `seq`.
    pub(crate) fn join(&mut self, room: &str, now: Timestamp) -> u64 {
        // Not under the entry's lock: no path holds a connection's entry
        // and a room's lock at once, so the two can never deadlock.
        let seq = self.hub.join(room, self.id, self.member.clone(), now);
        if let Some(mut peer) = self.hub.conns.get_mut(&self.id)
            && !peer.rooms.iter().any(|r| **r == *room)
        {
            peer.rooms.push(room.into());
        }
        seq
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

/// What a join found.
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
    const NONE: HistoryRule = HistoryRule { keep: 0, ttl: std::time::Duration::from_secs(60) };
    const KEEP_2: HistoryRule = HistoryRule { keep: 2, ttl: std::time::Duration::from_secs(60) };

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
        hub.join("r", 1, a, T0);
        hub.join("r", 2, b, T0);
        let mut renders = 0;
        let start = history::seed(T0, 0);
        for n in 1..=3 {
            let seq = hub.publish("r", NONE, T0, |seq| {
                renders += 1;
                Utf8Bytes::from(format!("{seq}"))
            });
            assert_eq!(seq, start + n);
        }
        assert_eq!(renders, 3);
        for rx in [&mut ra, &mut rb] {
            for n in 1..=3 {
                assert_eq!(rx.recv().await.unwrap().as_str(), (start + n).to_string());
            }
        }
    }

    #[tokio::test]
    async fn a_full_queue_marks_only_that_member_slow() {
        let hub = Hub::default();
        let (slow, _keep) = member(1);
        let slow_control = Arc::clone(&slow.control);
        let (fast, mut rf) = member(8);
        hub.join("r", 1, slow, T0);
        hub.join("r", 2, fast, T0);
        hub.publish("r", NONE, T0, |_| Utf8Bytes::from_static("a"));
        hub.publish("r", NONE, T0, |_| Utf8Bytes::from_static("b"));
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
        bystander.join("shared", T0);
        let task = tokio::spawn(async move {
            let mut rooms = Membership::new(hub, m, loopback(), "a", T0);
            rooms.join("shared", T0);
            rooms.join("own", T0);
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

    #[test]
    fn the_list_filters_and_pages_in_id_order() {
        let hub = Hub::default();
        let other = IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 3).into());
        let mut held = Vec::new();
        for (i, (ip, user)) in [(loopback(), "alice"), (other, "alice"), (other, "bob")].into_iter().enumerate() {
            let (m, rx) = member(1);
            let mut membership = Membership::new(&hub, m, ip, user, T0);
            if i > 0 {
                membership.join("lobby", T0);
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
    }

    #[test]
    fn a_rooms_seq_never_goes_backwards_when_it_empties() {
        let hub = Hub::default();
        let (m, _rx) = member(8);
        let first = hub.join("r", 1, m.clone(), T0);
        let last = (0..5).map(|_| hub.publish("r", NONE, T0, |_| Utf8Bytes::from_static("e"))).last();
        hub.leave("r", 1);
        assert!(hub.rooms.is_empty(), "nothing kept, so the room goes");
        // Started again within the same millisecond: above every seq given.
        let again = hub.join("r", 1, m, T0);
        assert_eq!(last, Some(first + 5));
        assert!(again >= first + 5, "{again} after {first} + 5");
    }

    #[tokio::test]
    async fn a_recover_replays_what_the_room_kept_and_then_the_live_events() {
        let hub = Hub::default();
        let (publisher, _p) = member(8);
        let start = hub.join("r", 1, publisher, T0);
        for _ in 0..3 {
            hub.publish("r", KEEP_2, T0, |seq| Utf8Bytes::from(format!("e{}", seq - start)));
        }
        let (late, mut rx) = member(8);
        hub.join("r", 2, late, T0);
        let (seq, replay) = hub.range("r", start + 1, T0);
        assert_eq!(replay.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(), ["e2", "e3"]);
        assert!(replay.complete, "the ring holds everything after since");
        assert_eq!(seq, start + 3);
        let (_, older) = hub.range("r", start, T0);
        assert!(!older.complete, "e1 is gone");
        hub.publish("r", KEEP_2, T0, |_| Utf8Bytes::from_static("live"));
        assert_eq!(rx.recv().await.unwrap().as_str(), "live", "live events follow in the member's queue");
    }

    #[test]
    fn history_outlives_the_last_member_until_it_expires() {
        let hub = Hub::default();
        let (m, _rx) = member(8);
        let start = hub.join("r", 1, m, T0);
        hub.publish("r", KEEP_2, T0, |_| Utf8Bytes::from_static("kept"));
        hub.leave("r", 1);
        assert_eq!(hub.history_bytes(), 4);
        hub.sweep(T0.saturating_add(KEEP_2.ttl - std::time::Duration::from_millis(1)));
        let (_, back) = hub.range("r", start, T0);
        assert_eq!((back.events.len(), back.complete), (1, true), "kept while nobody was in the room");
        hub.leave("r", 1);
        hub.sweep(T0.saturating_add(KEEP_2.ttl));
        assert!(hub.rooms.is_empty() && hub.history_bytes() == 0, "expired, then let go");
    }

    #[test]
    fn a_full_history_budget_costs_a_room_its_own_events_never_another_rooms() {
        let hub = Hub::new(HistoryBudget { per_room: 100, total: 10 });
        let (m, _rx) = member(64);
        hub.join("quiet", 1, m.clone(), T0);
        hub.join("busy", 1, m, T0);
        hub.publish("quiet", KEEP_2, T0, |_| Utf8Bytes::from_static("12345678"));
        for _ in 0..10 {
            hub.publish("busy", KEEP_2, T0, |_| Utf8Bytes::from_static("abcdef"));
        }
        assert!(hub.history_bytes() <= 10, "{}", hub.history_bytes());
        let quiet = lock(&hub.rooms.get("quiet").unwrap()).history.bytes();
        assert_eq!(quiet, 8, "the quiet room keeps its event");
    }

    #[tokio::test]
    async fn deleting_a_room_drops_its_history_and_asks_every_member_to_leave() {
        let hub = Hub::default();
        let (a, _ra) = member(8);
        let (b, _rb) = member(8);
        let (ca, cb) = (Arc::clone(&a.control), Arc::clone(&b.control));
        let mut alice = Membership::new(&hub, a, loopback(), "alice", T0);
        let mut bob = Membership::new(&hub, b, loopback(), "bob", T0);
        alice.join("team", T0);
        bob.join("team", T0);
        let last = hub.publish("team", KEEP_2, T0, |_| Utf8Bytes::from_static("kept"));
        assert_eq!(hub.remove_user("team", "bob"), 1);
        assert_eq!(cb.take_removals(), [("team".into(), RemovedReason::RemovedByOwner)]);
        assert!(ca.take_removals().is_empty(), "alice stays");
        assert_eq!(hub.delete("team"), 2);
        assert_eq!(hub.history_bytes(), 0);
        assert_eq!(ca.take_removals(), [("team".into(), RemovedReason::Deleted)]);
        alice.leave("team");
        bob.leave("team");
        assert!(hub.rooms.is_empty(), "gone once its members left");
        let again = alice.join("team", T0);
        let (_, replay) = hub.range("team", last - 1, T0);
        assert!(again >= last, "a room of the same name goes on from the deleted one's seq");
        assert!(!replay.complete, "and does not pretend to have its events");
    }

    #[test]
    fn empty_rooms_are_dropped() {
        let hub = Hub::default();
        let (m, _rx) = member(1);
        hub.join("r", 1, m, T0);
        hub.leave("r", 1);
        assert!(hub.rooms.is_empty());
    }

    #[test]
    fn a_room_nobody_is_in_takes_an_event_and_keeps_it_only_with_history() {
        let hub = Hub::default();
        let first = hub.publish("r", NONE, T0, |_| Utf8Bytes::from_static("x"));
        assert!(hub.rooms.is_empty(), "nothing to keep, nobody to tell: let go");
        let second = hub.publish("r", KEEP_2, T0, |_| Utf8Bytes::from_static("kept"));
        assert!(second > first, "above the floor the first left");
        let (seq, back) = hub.range("r", first, T0);
        assert_eq!((seq, back.events.len()), (second, 1));
    }
}
