//! Rooms and fan-out.
//!
//! Each room has its own locks; there is no lock across rooms on the
//! message path (the room maps are sharded). Publishing takes the room's
//! lock, assigns the next `seq`, serializes the event once and hands it to
//! the bus, which brings it back to the hub of every node with members
//! (this one's too, docs/ARCHITECTURE.md, "Seams"): [`Deliver`] hands the
//! same bytes to every member's bounded queue with `try_send`, under the
//! room's member lock. A full queue marks that member a slow consumer
//! (closed with 4009) and never delays the others.
//!
//! The locks are always taken in this order, so they cannot deadlock: a
//! shard of `rooms`, a room's lock, a shard of `members`, a member set.
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
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Bus, Deliver};
use palisade_protocol::{CloseCode, RemovedReason};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::control::Control;

/// Identifies a connection within this process.
pub(crate) type ConnId = u64;

/// What a room needs to reach one member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) control: Arc<Control>,
}

/// A room's `seq` and what it keeps: what the commit step and history
/// reads share (a cluster keeps them on Redis).
#[derive(Debug)]
struct Room {
    seq: u64,
    history: Ring<Utf8Bytes>,
    /// The rule the room was last published under: its TTL expires the
    /// ring when nobody publishes.
    rule: HistoryRule,
    /// Taken out of the hub: whoever still holds it must look again.
    gone: bool,
}

impl Room {
    fn new(seed: u64) -> Self {
        Self { seq: seed, history: Ring::new(seed), rule: HistoryRule::default(), gone: false }
    }
}

/// This node's members of one room, and the last `seq` the bus brought
/// them: a connection that joins gets every event after it.
#[derive(Debug, Default)]
struct MemberSet {
    delivered: u64,
    members: HashMap<ConnId, Member>,
}

type Members = std::sync::Mutex<MemberSet>;

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

/// One room of [`Hub::rooms`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomInfo {
    pub(crate) name: Box<str>,
    /// This node's connections in it.
    pub(crate) members: usize,
    /// The last `seq` delivered to them (0: none yet).
    pub(crate) seq: u64,
}

/// All rooms and connections of this process.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    rooms: DashMap<Box<str>, Arc<std::sync::Mutex<Room>>>,
    /// Kept apart from `rooms`: the bus delivers here, within a publish
    /// that holds the room's lock.
    members: DashMap<Box<str>, Arc<Members>>,
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

    /// Whether this node has members in `name`.
    fn has_members(&self, name: &str) -> bool {
        self.members.get(name).is_some_and(|set| !lock(&set).members.is_empty())
    }

    /// Drops `name` if it is idle: nobody in it and nothing kept. Its
    /// `seq` becomes the floor before the shard is unlocked, so a room
    /// started again after it starts above.
    fn let_go(&self, name: &str) {
        self.members.remove_if(name, |_, set| lock(set).members.is_empty());
        self.rooms.remove_if(name, |_, room| {
            let mut room = lock(room);
            if room.history.is_empty() && !self.has_members(name) {
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

    /// Adds a member; joining twice is harmless. Returns the last `seq`
    /// the bus brought the room's members here (0: none yet): the member
    /// gets every event after it.
    fn join(&self, name: &str, id: ConnId, member: Member) -> u64 {
        // The shard stays locked while the member is added, so `leave`
        // cannot drop the set between lookup and insert.
        let entry = self.members.entry(name.into()).or_default();
        let mut set = lock(&entry);
        set.members.insert(id, member);
        set.delivered
    }

    /// Room `name`'s newest `seq` at `now` (`seams::History::head` on one
    /// node); a room that is neither kept nor joined is let go after.
    pub(crate) fn head(&self, name: &str, now: Timestamp) -> u64 {
        let entry = Arc::clone(self.room(name, now).value());
        let (seq, idle) = {
            let room = lock(&entry);
            (room.seq, room.history.is_empty() && !self.has_members(name))
        };
        if idle {
            self.let_go(name);
        }
        seq
    }

    /// Room `name`'s `seq` and the events it keeps after `since`, at `now`
    /// (`seams::History` on one node). A room nobody is in and that keeps
    /// nothing is started for the answer and let go after.
    pub(crate) fn range(&self, name: &str, since: u64, now: Timestamp) -> (u64, Replay<Utf8Bytes>) {
        let entry = Arc::clone(self.room(name, now).value());
        let (seq, replay, idle) = {
            let room = lock(&entry);
            (room.seq, room.history.replay(since, room.seq), room.history.is_empty() && !self.has_members(name))
        };
        if idle {
            self.let_go(name);
        }
        (seq, replay)
    }

    /// Removes a member; an idle room is dropped.
    fn leave(&self, room: &str, id: ConnId) {
        if let Some(set) = self.members.get(room).map(|set| Arc::clone(set.value())) {
            lock(&set).members.remove(&id);
        }
        self.let_go(room);
    }

    /// Publishes an event in room `name` at `now`, kept in its history as
    /// `rule` says; `render` turns the assigned seq into the frame, once,
    /// and `send` hands it on (to the bus), under the room's lock so events
    /// leave in `seq` order. Returns the seq. A room nobody is in still
    /// takes the event: it has a `seq`, and may keep it for a `recover`.
    pub(crate) fn publish(
        &self,
        name: &str,
        rule: HistoryRule,
        now: Timestamp,
        render: impl FnOnce(u64) -> Utf8Bytes,
        send: impl FnOnce(u64, Utf8Bytes),
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
            room.seq += 1;
            let seq = room.seq;
            let frame = render(seq);
            self.keep(&mut room, seq, &frame, rule, now);
            send(seq, frame);
            let idle = room.history.is_empty() && !self.has_members(name);
            drop(room);
            if idle {
                self.let_go(name);
            }
            return seq;
        }
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

    /// Drops what room `name` keeps (it was deleted). Its `seq` goes on: a
    /// room of the same name created later starts above.
    pub(crate) fn clear_history(&self, name: &str) {
        if let Some(entry) = self.rooms.get(name).map(|r| Arc::clone(r.value())) {
            let mut room = lock(&entry);
            let before = room.history.bytes();
            while room.history.drop_oldest() {}
            self.history_bytes.fetch_sub(before - room.history.bytes(), Ordering::Relaxed);
        }
        self.let_go(name);
    }

    /// Asks every member of room `name` to leave it (`removed`, reason
    /// `deleted`); how many were asked.
    pub(crate) fn delete(&self, name: &str) -> usize {
        let members: Vec<Arc<Control>> = match self.members.get(name).map(|set| Arc::clone(set.value())) {
            Some(set) => lock(&set).members.values().map(|m| Arc::clone(&m.control)).collect(),
            None => Vec::new(),
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
        let Some(set) = self.members.get(name).map(|set| Arc::clone(set.value())) else { return 0 };
        // The members first, then their users: no path holds a member set
        // and a connection's entry at once.
        let members: Vec<(ConnId, Arc<Control>)> =
            lock(&set).members.iter().map(|(id, m)| (*id, Arc::clone(&m.control))).collect();
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

    /// Rooms with members on this node whose name starts with `prefix` and
    /// sorts after `after`, in name order, at most `limit`, each with its
    /// member count and the last `seq` the bus brought its members here
    /// (two reads apart give the room's message rate); and whether there
    /// are more. Counted from the connections' own room lists, like
    /// [`Hub::list`], never under the rooms' locks; the `seq` is read
    /// under each listed room's member-set lock, for an instant.
    pub(crate) fn rooms(&self, prefix: &str, after: Option<&str>, limit: usize) -> (Vec<RoomInfo>, bool) {
        let mut counts: std::collections::BTreeMap<Box<str>, usize> = std::collections::BTreeMap::new();
        for conn in &self.conns {
            for room in conn.rooms.iter().filter(|r| r.starts_with(prefix) && after.is_none_or(|a| &***r > a)) {
                // A name is copied once per room, not once per member:
                // 19,000 members of 100 rooms are 100 allocations.
                match counts.get_mut(&**room) {
                    Some(count) => *count += 1,
                    None => drop(counts.insert(room.clone(), 1)),
                }
            }
        }
        let more = counts.len() > limit;
        let page = counts
            .into_iter()
            .take(limit)
            .map(|(name, members)| {
                // The map's shard is let go before the set is locked.
                let set = self.members.get(&*name).map(|set| Arc::clone(set.value()));
                let seq = set.map_or(0, |set| lock(&set).delivered);
                RoomInfo { name, members, seq }
            })
            .collect();
        (page, more)
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

impl Deliver<Utf8Bytes> for Hub {
    /// Queues an event the bus brings for every member of its room here.
    fn deliver(&self, room: &str, seq: u64, frame: &Utf8Bytes) {
        let Some(set) = self.members.get(room).map(|set| Arc::clone(set.value())) else { return };
        let mut set = lock(&set);
        set.delivered = set.delivered.max(seq);
        for member in set.members.values() {
            if member.control.events.push(frame.clone()).is_err() {
                member.control.close(CloseCode::SlowConsumer);
            }
        }
    }

    fn lost(&self, room: &str) {
        self.close_members(room);
    }
}

impl Hub {
    /// Closes every member of `room` here (1011): the node may have missed
    /// some of its events, and a client that reconnects and `recover`s
    /// gets them, or is told they are lost.
    fn close_members(&self, room: &str) {
        let Some(set) = self.members.get(room).map(|set| Arc::clone(set.value())) else { return };
        for member in lock(&set).members.values() {
            member.control.close(CloseCode::Internal);
        }
    }
}

/// One connection's place in the hub and on the bus: the rooms it joined,
/// left on drop.
///
/// Owned by the connection task, so the rooms are left however the task
/// ends (returns, is cancelled, or panics) and a room never keeps a member
/// whose task is gone. The rooms are those of the connection's entry in
/// the hub; only this task changes that entry.
#[derive(Debug)]
pub(crate) struct Membership<'h> {
    hub: &'h Hub,
    bus: &'h dyn Bus<Frame = Utf8Bytes>,
    id: ConnId,
    member: Member,
}

impl<'h> Membership<'h> {
    /// Registers a connection of `user` from `ip` in `hub` at `now`, in no
    /// room yet; its rooms' events come through `bus`.
    pub(crate) fn new(
        hub: &'h Hub,
        bus: &'h dyn Bus<Frame = Utf8Bytes>,
        member: Member,
        ip: IpKey,
        user: &str,
        now: Timestamp,
    ) -> Self {
        let id = hub.conn_id();
        let peer =
            Peer { ip, user: user.into(), control: Arc::clone(&member.control), rooms: Vec::new(), connected_at: now };
        hub.conns.insert(id, peer);
        Self { hub, bus, id, member }
    }

    /// Whether this connection is in `room`.
    fn is_in(&self, room: &str) -> bool {
        self.hub.conns.get(&self.id).is_some_and(|peer| peer.rooms.iter().any(|r| **r == *room))
    }

    /// This connection's id.
    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    /// Joins `room` (joining twice is harmless). The node is subscribed to
    /// the room on the bus first; returns the last `seq` the bus brought
    /// here before the connection was added: it gets every event after
    /// that one and after the room's `seq` read from now on
    /// (docs/ARCHITECTURE.md, "Seams").
    pub(crate) async fn join(&mut self, room: &str) -> Result<u64, Refusal> {
        let joined = self.is_in(room);
        if !joined {
            self.bus.subscribe(room).await?;
        }
        // Not under the entry's lock: no path holds a connection's entry
        // and a member set's lock at once, so the two can never deadlock.
        let seq = self.hub.join(room, self.id, self.member.clone());
        if !joined && let Some(mut peer) = self.hub.conns.get_mut(&self.id) {
            peer.rooms.push(room.into());
        }
        Ok(seq)
    }

    /// Leaves `room`.
    pub(crate) fn leave(&mut self, room: &str) {
        if !self.is_in(room) {
            return;
        }
        self.hub.leave(room, self.id);
        if let Some(mut peer) = self.hub.conns.get_mut(&self.id) {
            peer.rooms.retain(|r| **r != *room);
        }
        self.bus.unsubscribe(room);
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if let Some((_, peer)) = self.hub.conns.remove(&self.id) {
            for room in &peer.rooms {
                self.hub.leave(room, self.id);
                self.bus.unsubscribe(room);
            }
        }
    }
}

/// Locks a room or a member set.
fn lock<T>(room: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a room lock cannot leave the room inconsistent
    // (every update is a single insert, remove or increment), so poisoning
    // is ignored rather than taking the room down.
    room.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
