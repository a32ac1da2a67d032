//! Which socket gives way when a listener's places are full.
//!
//! An honest client sends its request within milliseconds of connecting;
//! a socket that has waited longest is the likeliest to be holding a seat
//! for nothing. So a full listener makes room by evicting its oldest
//! waiting socket, never by refusing the newcomer: whoever holds the places
//! must renew them faster than honest clients arrive, instead of filling
//! them once and renewing them at leisure.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::Timestamp;
use crate::addr::IpKey;

/// A request a socket sent, as far as its place is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A health or readiness probe: answered at once, from the reserved
    /// places if it must.
    Probe,
    /// Anything else.
    Other,
}

/// Why a newcomer found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its address holds its most places already.
    Peer,
    /// Every place is held by a request being answered.
    Listener,
}

/// A socket that gave way to a newcomer.
#[derive(Debug)]
pub struct Evicted<T> {
    /// The address it counted under.
    pub key: IpKey,
    /// How long it had been waiting.
    pub waited: Duration,
    /// What the caller stored with it (e.g. the handle that closes it).
    pub item: T,
}

/// A socket's place in a [`WaitList`]; hand it back to [`WaitList::leave`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a seat not handed back stays counted until it is evicted"]
pub struct Seat(u64);

#[derive(Debug)]
struct Waiter<T> {
    key: IpKey,
    since: Timestamp,
    serving: Option<RequestKind>,
    item: T,
}

/// The sockets of one listener that hold a seat, oldest first. A socket
/// whose request is being answered is not evicted (its answer is under
/// way); one that only waits (for its first byte, its request head, or its
/// next keep-alive request) may be.
#[derive(Debug)]
pub struct WaitList<T> {
    places: usize,
    per_key: usize,
    /// Places that only probes may be answered in.
    reserved: usize,
    next: u64,
    /// By order of entry, which is by age: entries come in at `now`, and
    /// `now` does not go back.
    waiters: BTreeMap<u64, Waiter<T>>,
    keys: HashMap<IpKey, usize>,
    /// Requests other than probes being answered.
    serving: usize,
}

impl<T> WaitList<T> {
    /// At most `places` sockets, at most `per_key` of one address (`None`
    /// for no such cap), and `reserved` of the places kept for probes:
    /// other requests are answered only while they hold fewer than
    /// `places - reserved`.
    pub fn new(places: usize, per_key: Option<usize>, reserved: usize) -> Self {
        Self {
            places,
            per_key: per_key.unwrap_or(usize::MAX),
            reserved,
            next: 0,
            waiters: BTreeMap::new(),
            keys: HashMap::new(),
            serving: 0,
        }
    }

    /// A place for a socket from `key` accepted at `now`, with the oldest
    /// waiting socket evicted to make room if the list is full; or why
    /// there is none (its address is at its cap, or every place is taken
    /// by a request being answered).
    pub fn enter(&mut self, key: IpKey, item: T, now: Timestamp) -> Result<(Seat, Option<Evicted<T>>), Full> {
        if self.keys.get(&key).copied().unwrap_or(0) >= self.per_key {
            return Err(Full::Peer);
        }
        let evicted = if self.waiters.len() >= self.places {
            let oldest = self.waiters.iter().find(|(_, w)| w.serving.is_none()).map(|(&id, _)| id);
            let waiter = oldest.and_then(|id| self.remove(id)).ok_or(Full::Listener)?;
            Some(Evicted { key: waiter.key, waited: waiter.since.until(now), item: waiter.item })
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.waiters.insert(id, Waiter { key, since: now, serving: None, item });
        *self.keys.entry(key).or_insert(0) += 1;
        Ok((Seat(id), evicted))
    }

    /// The socket of `place` sent `request`: may it be answered? While it
    /// is, the socket is not evicted. A probe always may; any other request
    /// only while fewer than `places - reserved` are being answered, so a
    /// listener busy with slow requests still answers its probes. `false`
    /// also for a seat already evicted.
    pub fn serve(&mut self, place: &Seat, request: RequestKind) -> bool {
        let limit = self.places.saturating_sub(self.reserved);
        let Some(waiter) = self.waiters.get_mut(&place.0) else { return false };
        if waiter.serving.is_some() {
            return true;
        }
        if request == RequestKind::Other {
            if self.serving >= limit {
                return false;
            }
            self.serving += 1;
        }
        waiter.serving = Some(request);
        true
    }

    /// The request of `place` was answered: the socket waits again (for
    /// its next request), with the age it had, so it is among the first to
    /// give way.
    pub fn served(&mut self, place: &Seat) {
        if let Some(waiter) = self.waiters.get_mut(&place.0)
            && waiter.serving.take() == Some(RequestKind::Other)
        {
            self.serving -= 1;
        }
    }

    /// The socket of `place` went away (a no-op if it was evicted).
    // By value on purpose: the place is used up, so it cannot be handed back
    // twice (it is not `Clone`).
    #[allow(clippy::needless_pass_by_value)]
    pub fn leave(&mut self, place: Seat) {
        self.remove(place.0);
    }

    /// Sockets holding a seat now.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether no socket holds a seat.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    fn remove(&mut self, id: u64) -> Option<Waiter<T>> {
        let waiter = self.waiters.remove(&id)?;
        if waiter.serving == Some(RequestKind::Other) {
            self.serving -= 1;
        }
        if let Some(n) = self.keys.get_mut(&waiter.key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&waiter.key);
            }
        }
        Some(waiter)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::testkit::T0;

    fn ip(last: u8) -> IpKey {
        IpKey::of(Ipv4Addr::new(127, 0, 0, last).into())
    }

    fn at(secs: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(secs))
    }

    #[test]
    fn a_full_list_evicts_its_oldest_waiter_never_the_newcomer() {
        let mut list = WaitList::new(3, None, 0);
        let places: Vec<Seat> = (0..3).map(|i| list.enter(ip(i), i, at(u64::from(i))).expect("room").0).collect();
        let (newest, evicted) = list.enter(ip(9), 9, at(10)).expect("room made");
        let evicted = evicted.expect("someone gave way");
        assert_eq!((evicted.key, evicted.item, evicted.waited), (ip(0), 0, Duration::from_secs(10)));
        assert_eq!(list.len(), 3);
        // The next one evicts the next oldest; the evicted place's late
        // hand-back changes nothing.
        let (_, evicted) = list.enter(ip(10), 10, at(11)).expect("room made");
        assert_eq!(evicted.map(|e| e.item), Some(1));
        let mut places = places.into_iter();
        list.leave(places.next().expect("first"));
        assert_eq!(list.len(), 3);
        list.leave(newest);
        assert_eq!(list.len(), 2);
        assert!(list.enter(ip(11), 11, at(12)).expect("room").1.is_none(), "room without evicting");
    }

    #[test]
    fn one_address_holds_at_most_its_share() {
        let mut list = WaitList::new(10, Some(2), 0);
        let first = list.enter(ip(1), (), T0).expect("room").0;
        let _second = list.enter(ip(1), (), T0).expect("room").0;
        assert_eq!(list.enter(ip(1), (), T0).err(), Some(Full::Peer));
        assert!(list.enter(ip(2), (), T0).is_ok(), "others are not held back");
        list.leave(first);
        assert!(list.enter(ip(1), (), T0).is_ok(), "its place came back");
    }

    #[test]
    fn a_request_being_answered_is_not_evicted() {
        let mut list = WaitList::new(2, None, 0);
        let busy = list.enter(ip(1), 1, at(0)).expect("room").0;
        assert!(list.serve(&busy, RequestKind::Other));
        let _idle = list.enter(ip(2), 2, at(1)).expect("room").0;
        let (_, evicted) = list.enter(ip(3), 3, at(2)).expect("room made");
        assert_eq!(evicted.map(|e| e.item), Some(2), "the idle one gave way, though younger");
        // Answered, the busy one waits again with its old age, and goes next.
        list.served(&busy);
        let (_, evicted) = list.enter(ip(4), 4, at(3)).expect("room made");
        assert_eq!(evicted.map(|e| e.item), Some(1));
    }

    #[test]
    fn probes_are_answered_from_the_reserved_places() {
        let mut list = WaitList::new(3, None, 1);
        let slow: Vec<Seat> = (0..2).map(|i| list.enter(ip(i), (), T0).expect("room").0).collect();
        assert!(slow.iter().all(|p| list.serve(p, RequestKind::Other)));
        let probe = list.enter(ip(5), (), T0).expect("room").0;
        assert!(!list.serve(&probe, RequestKind::Other), "the last place is for probes");
        assert!(list.serve(&probe, RequestKind::Probe));
        // Every place is being answered: nobody to evict.
        assert_eq!(list.enter(ip(6), (), T0).err(), Some(Full::Listener));
        list.served(&probe);
        let (next, evicted) = list.enter(ip(6), (), T0).expect("the answered probe gives way");
        assert!(evicted.is_some());
        assert!(list.serve(&next, RequestKind::Probe));
    }

    #[test]
    fn the_count_of_requests_answered_survives_eviction_and_leaving() {
        let mut list = WaitList::new(2, None, 1);
        let a = list.enter(ip(1), (), T0).expect("room").0;
        assert!(list.serve(&a, RequestKind::Other));
        list.leave(a);
        let b = list.enter(ip(2), (), T0).expect("room").0;
        assert!(list.serve(&b, RequestKind::Other), "the place came back with its answer");
        assert!(!list.serve(&Seat(999), RequestKind::Probe), "an evicted place is not served");
        assert!(!list.is_empty());
    }
}
