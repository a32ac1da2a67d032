//! Who owns which room (docs/POLICY.md, "Room owners").
//!
//! A room rule with `owners` gives each room it covers at most one owner:
//! the first joiner, or whoever sends `create`. The owner (or a role with
//! the rule's `moderate` permission) may delete the room, remove members,
//! and publish events declared `owner = true`.
//!
//! [`Owners`] is the one record of owners the session decides by. It is
//! bounded (`limits.max_owned_rooms_per_user`, `limits.max_owned_rooms`)
//! because every claim is made by a client. It keeps, per room, the last
//! change not yet written, for one writer to take and store: changes to
//! different rooms commute, and a room's last change is its state, so a
//! claim and a release of one room by two connections can never reach the
//! disk in the other order.
//!
//! On a cluster the record is each node's view of a shared one
//! ([`Owners::shared`]): the shared store decides every claim, the node's
//! view learns the outcome ([`Owners::settle`]) and other nodes' changes
//! ([`Owners::set`]), and nothing is kept for a writer.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use palisade_protocol::ErrorCode;

use crate::Timestamp;
use crate::policy::Denied;

/// A room's owner as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    /// Room name.
    pub room: Box<str>,
    /// The owner's user id.
    pub owner: Box<str>,
    /// When the room was claimed.
    pub since: Timestamp,
}

/// A room's change to write to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerChange {
    /// The room has this owner now.
    Claimed(OwnerRecord),
    /// The room has no owner any more (it was deleted).
    Released(Box<str>),
}

/// The bounds on owner records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerLimits {
    /// Rooms one user may own at once.
    pub per_user: usize,
    /// Rooms with an owner, in all.
    pub total: usize,
}

impl Default for OwnerLimits {
    fn default() -> Self {
        Self { per_user: 100, total: 100_000 }
    }
}

/// What a claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerClaim {
    /// The room had no owner; the claimant owns it now.
    Claimed,
    /// The claimant owned it already.
    AlreadyOwner,
}

#[derive(Debug, Default)]
struct Book {
    owner_of: HashMap<Box<str>, OwnerRecord>,
    owned_by: HashMap<Box<str>, usize>,
    /// Per room, its last change not yet taken.
    unwritten: HashMap<Box<str>, OwnerChange>,
}

impl Book {
    /// Gives `room` the owner `holder` (or none), keeping the per-user
    /// counts; the owner it had.
    fn replace(&mut self, room: &str, holder: Option<OwnerRecord>) -> Option<OwnerRecord> {
        let old = match holder {
            Some(record) => {
                *self.owned_by.entry(record.owner.clone()).or_default() += 1;
                self.owner_of.insert(room.into(), record)
            }
            None => self.owner_of.remove(room),
        };
        if let Some(old) = &old
            && let Some(count) = self.owned_by.get_mut(&old.owner)
        {
            *count -= 1;
            if *count == 0 {
                self.owned_by.remove(&old.owner);
            }
        }
        old
    }
}

/// Every room's owner, and the changes not yet written.
#[derive(Debug)]
pub struct Owners {
    book: Mutex<Book>,
    limits: OwnerLimits,
    /// Whether changes are kept for a writer (one node's record).
    journal: bool,
}

impl Default for Owners {
    fn default() -> Self {
        Self::new(OwnerLimits::default())
    }
}

impl Owners {
    /// An empty record within `limits`, keeping its changes for a writer.
    pub fn new(limits: OwnerLimits) -> Self {
        Self { book: Mutex::default(), limits, journal: true }
    }

    /// An empty view of a cluster's shared record: a claim here is only
    /// provisional until the shared store settles it, and nothing is kept
    /// for a writer (the shared store is written as it decides).
    pub fn shared(limits: OwnerLimits) -> Self {
        Self { book: Mutex::default(), limits, journal: false }
    }

    /// Replaces what is known with `records` (read from the store at start).
    /// Records beyond the limits are kept: they were accepted under the
    /// limits of their day, and dropping them would hand rooms to others.
    pub fn load(&self, records: Vec<OwnerRecord>) {
        let mut book = self.book();
        book.owner_of.clear();
        book.owned_by.clear();
        for record in records {
            *book.owned_by.entry(record.owner.clone()).or_default() += 1;
            book.owner_of.insert(record.room.clone(), record);
        }
    }

    /// `room`'s owner, if it has one.
    pub fn owner(&self, room: &str) -> Option<Box<str>> {
        self.book().owner_of.get(room).map(|r| r.owner.clone())
    }

    /// Makes `user` the owner of `room` at `now` if it has none. Refused
    /// when someone else owns it, or a bound is reached.
    pub fn claim(&self, room: &str, user: &str, now: Timestamp) -> Result<OwnerClaim, Denied> {
        let mut book = self.book();
        if let Some(record) = book.owner_of.get(room) {
            return if *record.owner == *user {
                Ok(OwnerClaim::AlreadyOwner)
            } else {
                Err(Denied::new(ErrorCode::Forbidden, "room has another owner"))
            };
        }
        if book.owned_by.get(user).copied().unwrap_or(0) >= self.limits.per_user {
            return Err(Denied::new(ErrorCode::Forbidden, "user owns limits.max_owned_rooms_per_user rooms"));
        }
        if book.owner_of.len() >= self.limits.total {
            return Err(Denied::new(ErrorCode::Forbidden, "limits.max_owned_rooms reached"));
        }
        let record = OwnerRecord { room: room.into(), owner: user.into(), since: now };
        book.replace(room, Some(record.clone()));
        if self.journal {
            book.unwritten.insert(record.room.clone(), OwnerChange::Claimed(record));
        }
        Ok(OwnerClaim::Claimed)
    }

    /// Forgets `room`'s owner; the owner it had.
    pub fn release(&self, room: &str) -> Option<OwnerRecord> {
        let mut book = self.book();
        let record = book.replace(room, None)?;
        if self.journal {
            book.unwritten.insert(record.room.clone(), OwnerChange::Released(record.room.clone()));
        }
        Some(record)
    }

    /// What the shared store decided on `user`'s claim of `room`: `holder`
    /// owns it (`None`: nobody, as when the claim could not be made). Only
    /// replaces the claim this node made for `user`; a change the node
    /// learnt meanwhile is newer and stays.
    pub fn settle(&self, room: &str, user: &str, holder: Option<OwnerRecord>) {
        let mut book = self.book();
        if book.owner_of.get(room).is_some_and(|r| *r.owner == *user) {
            book.replace(room, holder);
        }
    }

    /// `room`'s owner is `holder` now: another node's change, in the shared
    /// store's order. Never kept for a writer.
    pub fn set(&self, room: &str, holder: Option<OwnerRecord>) {
        self.book().replace(room, holder);
    }

    /// Each changed room's last change since the previous call, for the one
    /// writer that stores them.
    pub fn take_changes(&self) -> Vec<OwnerChange> {
        self.book().unwritten.drain().map(|(_, change)| change).collect()
    }

    /// Puts back changes a failed write took; a room changed since keeps
    /// its newer change.
    pub fn restore_changes(&self, changes: Vec<OwnerChange>) {
        let mut book = self.book();
        for change in changes {
            let room = match &change {
                OwnerChange::Claimed(r) => r.room.clone(),
                OwnerChange::Released(room) => room.clone(),
            };
            book.unwritten.entry(room).or_insert(change);
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Every update leaves the book consistent before it can panic.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    fn changes(owners: &Owners) -> Vec<OwnerChange> {
        let mut taken = owners.take_changes();
        taken.sort_by_key(|c| match c {
            OwnerChange::Claimed(r) => r.room.clone(),
            OwnerChange::Released(room) => room.clone(),
        });
        taken
    }

    #[test]
    fn the_first_claim_wins_and_claiming_again_is_harmless() {
        let owners = Owners::default();
        assert_eq!(owners.claim("team:a", "alice", T0), Ok(OwnerClaim::Claimed));
        assert_eq!(owners.claim("team:a", "alice", T0), Ok(OwnerClaim::AlreadyOwner));
        assert_eq!(owners.claim("team:a", "bob", T0).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(owners.owner("team:a").as_deref(), Some("alice"));
        let record = OwnerRecord { room: "team:a".into(), owner: "alice".into(), since: T0 };
        assert_eq!(changes(&owners), [OwnerChange::Claimed(record)], "one change, for the first claim");
        assert!(changes(&owners).is_empty(), "taken once");
        owners.claim("team:b", "alice", T0).unwrap();
        // The write of the claim fails while the room is released.
        let failed = owners.take_changes();
        owners.release("team:b");
        owners.restore_changes(failed);
        assert_eq!(changes(&owners), [OwnerChange::Released("team:b".into())], "the newer change stays");
    }

    #[test]
    fn a_release_frees_the_room_and_the_owners_quota() {
        let owners = Owners::new(OwnerLimits { per_user: 1, total: 10 });
        owners.claim("a", "alice", T0).unwrap();
        assert!(owners.claim("b", "alice", T0).is_err(), "alice owns her one room");
        assert!(owners.release("a").is_some());
        assert!(owners.release("a").is_none(), "nothing left to release");
        assert_eq!(owners.claim("b", "alice", T0), Ok(OwnerClaim::Claimed));
        assert!(owners.release("b").is_some());
        let record = |room: &str, owner: &str| OwnerRecord { room: room.into(), owner: owner.into(), since: T0 };
        assert_eq!(owners.claim("a", "bob", T0), Ok(OwnerClaim::Claimed), "a released room is anyone's");
        assert_eq!(
            changes(&owners),
            [OwnerChange::Claimed(record("a", "bob")), OwnerChange::Released("b".into())],
            "each room's last change"
        );
    }

    #[test]
    fn a_shared_view_settles_its_claims_and_keeps_newer_changes() {
        let owners = Owners::shared(OwnerLimits { per_user: 1, total: 10 });
        let record = |room: &str, owner: &str| OwnerRecord { room: room.into(), owner: owner.into(), since: T0 };
        owners.claim("a", "alice", T0).unwrap();
        owners.settle("a", "alice", Some(record("a", "bob")));
        assert_eq!(owners.owner("a").as_deref(), Some("bob"), "the shared store gave it to bob");
        assert_eq!(owners.claim("b", "alice", T0), Ok(OwnerClaim::Claimed), "alice's quota is free again");
        // Another node's change arrives before the store's answer on b.
        owners.set("b", Some(record("b", "carol")));
        owners.settle("b", "alice", None);
        assert_eq!(owners.owner("b").as_deref(), Some("carol"), "the newer change stays");
        owners.set("b", None);
        owners.claim("c", "alice", T0).unwrap();
        assert!(owners.release("c").is_some());
        assert!(owners.take_changes().is_empty(), "nothing is kept for a writer");
        assert_eq!(owners.claim("c", "bob", T0).unwrap_err().code, ErrorCode::Forbidden, "bob owns a");
    }

    #[test]
    fn the_total_bound_refuses_new_rooms_but_keeps_loaded_ones() {
        let owners = Owners::new(OwnerLimits { per_user: 10, total: 2 });
        let record = |room: &str| OwnerRecord { room: room.into(), owner: "old".into(), since: T0 };
        owners.load(vec![record("x"), record("y"), record("z")]);
        assert_eq!(owners.owner("z").as_deref(), Some("old"), "loaded beyond the bound, kept");
        assert!(owners.claim("new", "alice", T0).is_err());
        assert!(changes(&owners).is_empty(), "loading is not a change");
        owners.release("x");
        assert!(owners.claim("new", "alice", T0).is_err(), "still at the bound: y and z count");
        owners.release("y");
        assert_eq!(owners.claim("new", "alice", T0), Ok(OwnerClaim::Claimed));
    }
}
