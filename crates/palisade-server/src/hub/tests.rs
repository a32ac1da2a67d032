//! The hub's unit tests: rooms, members, history and the bus of one node.

use super::*;
use crate::bus::{Broker, MemoryBus};

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const NONE: HistoryRule = HistoryRule { keep: 0, ttl: std::time::Duration::from_secs(60) };
const KEEP_2: HistoryRule = HistoryRule { keep: 2, ttl: std::time::Duration::from_secs(60) };

fn loopback() -> IpKey {
    IpKey::of(std::net::Ipv4Addr::LOCALHOST.into())
}

/// Publishes through this hub's own delivery, as a bus of one node does.
fn publish(hub: &Hub, name: &str, rule: HistoryRule, render: impl FnOnce(u64) -> Utf8Bytes) -> u64 {
    hub.publish(name, rule, T0, render, |seq, frame| hub.deliver(name, seq, &frame))
}

/// A node: a hub, and its bus on a broker of its own.
fn node() -> (Arc<Hub>, MemoryBus, Arc<Broker>) {
    let hub = Arc::new(Hub::default());
    let broker = Arc::new(Broker::default());
    let bus = MemoryBus::new(Arc::clone(&broker), Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>);
    (hub, bus, broker)
}

/// A member queueing up to `cap` events, and its handle to read them.
fn member(cap: usize) -> (Member, Arc<Control>) {
    let control = Arc::new(Control::new(cap));
    (Member { control: Arc::clone(&control) }, control)
}

#[tokio::test]
async fn publish_assigns_increasing_seq_and_shares_one_frame() {
    let hub = Hub::default();
    let (a, ra) = member(8);
    let (b, rb) = member(8);
    hub.join("r", 1, a);
    hub.join("r", 2, b);
    let mut renders = 0;
    let start = history::seed(T0, 0);
    for n in 1..=3 {
        let seq = publish(&hub, "r", NONE, |seq| {
            renders += 1;
            Utf8Bytes::from(format!("{seq}"))
        });
        assert_eq!(seq, start + n);
    }
    assert_eq!(renders, 3);
    for rx in [&ra, &rb] {
        for n in 1..=3 {
            assert_eq!(rx.events.next().await.as_str(), (start + n).to_string());
        }
    }
}

#[tokio::test]
async fn a_full_queue_marks_only_that_member_slow() {
    let hub = Hub::default();
    let (slow, _keep) = member(1);
    let slow_control = Arc::clone(&slow.control);
    let (fast, rf) = member(8);
    hub.join("r", 1, slow);
    hub.join("r", 2, fast);
    publish(&hub, "r", NONE, |_| Utf8Bytes::from_static("a"));
    publish(&hub, "r", NONE, |_| Utf8Bytes::from_static("b"));
    assert_eq!(slow_control.closed().await, CloseCode::SlowConsumer);
    assert_eq!(rf.events.next().await.as_str(), "a");
    assert_eq!(rf.events.next().await.as_str(), "b");
}

#[tokio::test]
async fn a_panicking_connection_task_leaves_its_rooms() {
    // 'static, as a spawned task needs; leaked once per test run.
    let (hub, bus, broker): &'static (Arc<Hub>, MemoryBus, Arc<Broker>) = Box::leak(Box::new(node()));
    let (m, _rx) = member(1);
    let (other, other_rx) = member(1);
    let mut bystander = Membership::new(hub, bus, other, loopback(), "b", T0);
    bystander.join("shared").await.unwrap();
    let task = tokio::spawn(async move {
        let mut rooms = Membership::new(hub, bus, m, loopback(), "a", T0);
        rooms.join("shared").await.unwrap();
        rooms.join("own").await.unwrap();
        panic!("a bug in the connection task");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert!(hub.rooms.get("own").is_none(), "the room only the panicked task was in is gone");
    assert!(hub.members.get("own").is_none());
    assert_eq!(lock(&hub.members.get("shared").unwrap()).members.keys().copied().collect::<Vec<_>>(), [bystander.id()]);
    assert!(!broker.is_heard("own") && broker.is_heard("shared"), "own's subscription was taken back");
    hub.publish("shared", NONE, T0, |_| Utf8Bytes::from_static("e"), |seq, f| bus.publish("shared", seq, f));
    assert_eq!(other_rx.events.try_next().unwrap().as_str(), "e", "the bystander still hears shared");
    drop(bystander);
    assert!(hub.rooms.is_empty() && hub.members.is_empty());
    assert!(hub.conns.is_empty(), "and no connection stays registered");
    assert!(!broker.is_heard("shared"), "nor a subscription");
}

#[tokio::test]
async fn the_list_filters_and_pages_in_id_order() {
    let (hub, bus, _) = node();
    let other = IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 3).into());
    let mut held = Vec::new();
    for (i, (ip, user)) in [(loopback(), "alice"), (other, "alice"), (other, "bob")].into_iter().enumerate() {
        let (m, rx) = member(1);
        let mut membership = Membership::new(&hub, &bus, m, ip, user, T0);
        if i > 0 {
            membership.join("lobby").await.unwrap();
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
    hub.join("r", 1, m.clone());
    let first = hub.head("r", T0);
    let last = (0..5).map(|_| publish(&hub, "r", NONE, |_| Utf8Bytes::from_static("e"))).last();
    hub.leave("r", 1);
    assert!(hub.rooms.is_empty(), "nothing kept, so the room goes");
    // Started again within the same millisecond: above every seq given.
    hub.join("r", 1, m);
    let again = hub.head("r", T0);
    assert_eq!(last, Some(first + 5));
    assert!(again >= first + 5, "{again} after {first} + 5");
}

#[tokio::test]
async fn a_recover_replays_what_the_room_kept_and_then_the_live_events() {
    let hub = Hub::default();
    let (publisher, _p) = member(8);
    hub.join("r", 1, publisher);
    let start = hub.head("r", T0);
    for _ in 0..3 {
        publish(&hub, "r", KEEP_2, |seq| Utf8Bytes::from(format!("e{}", seq - start)));
    }
    let (late, rx) = member(8);
    hub.join("r", 2, late);
    let (seq, replay) = hub.range("r", start + 1, T0);
    assert_eq!(replay.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(), ["e2", "e3"]);
    assert!(replay.complete, "the ring holds everything after since");
    assert_eq!(seq, start + 3);
    let (_, older) = hub.range("r", start, T0);
    assert!(!older.complete, "e1 is gone");
    publish(&hub, "r", KEEP_2, |_| Utf8Bytes::from_static("live"));
    assert_eq!(rx.events.next().await.as_str(), "live", "live events follow in the member's queue");
}

#[test]
fn history_outlives_the_last_member_until_it_expires() {
    let hub = Hub::default();
    let (m, _rx) = member(8);
    hub.join("r", 1, m);
    let start = hub.head("r", T0);
    publish(&hub, "r", KEEP_2, |_| Utf8Bytes::from_static("kept"));
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
    hub.join("quiet", 1, m.clone());
    hub.join("busy", 1, m);
    publish(&hub, "quiet", KEEP_2, |_| Utf8Bytes::from_static("12345678"));
    for _ in 0..10 {
        publish(&hub, "busy", KEEP_2, |_| Utf8Bytes::from_static("abcdef"));
    }
    assert!(hub.history_bytes() <= 10, "{}", hub.history_bytes());
    let quiet = lock(&hub.rooms.get("quiet").unwrap()).history.bytes();
    assert_eq!(quiet, 8, "the quiet room keeps its event");
}

#[tokio::test]
async fn deleting_a_room_drops_its_history_and_asks_every_member_to_leave() {
    let (hub, bus, _) = node();
    let (a, _ra) = member(8);
    let (b, _rb) = member(8);
    let (ca, cb) = (Arc::clone(&a.control), Arc::clone(&b.control));
    let mut alice = Membership::new(&hub, &bus, a, loopback(), "alice", T0);
    let mut bob = Membership::new(&hub, &bus, b, loopback(), "bob", T0);
    alice.join("team").await.unwrap();
    bob.join("team").await.unwrap();
    let last = publish(&hub, "team", KEEP_2, |_| Utf8Bytes::from_static("kept"));
    assert_eq!(hub.remove_user("team", "bob"), 1);
    assert_eq!(cb.take_removals(), [("team".into(), RemovedReason::RemovedByOwner)]);
    assert!(ca.take_removals().is_empty(), "alice stays");
    hub.clear_history("team");
    assert_eq!(hub.history_bytes(), 0);
    assert_eq!(hub.delete("team"), 2);
    assert_eq!(ca.take_removals(), [("team".into(), RemovedReason::Deleted)]);
    alice.leave("team");
    bob.leave("team");
    assert!(hub.rooms.is_empty(), "gone once its members left");
    alice.join("team").await.unwrap();
    let again = hub.head("team", T0);
    let (_, replay) = hub.range("team", last - 1, T0);
    assert!(again >= last, "a room of the same name goes on from the deleted one's seq");
    assert!(!replay.complete, "and does not pretend to have its events");
}

#[test]
fn empty_rooms_are_dropped() {
    let hub = Hub::default();
    let (m, _rx) = member(1);
    hub.join("r", 1, m);
    hub.leave("r", 1);
    assert!(hub.rooms.is_empty());
}

#[test]
fn a_room_nobody_is_in_takes_an_event_and_keeps_it_only_with_history() {
    let hub = Hub::default();
    let first = publish(&hub, "r", NONE, |_| Utf8Bytes::from_static("x"));
    assert!(hub.rooms.is_empty(), "nothing to keep, nobody to tell: let go");
    let second = publish(&hub, "r", KEEP_2, |_| Utf8Bytes::from_static("kept"));
    assert!(second > first, "above the floor the first left");
    let (seq, back) = hub.range("r", first, T0);
    assert_eq!((seq, back.events.len()), (second, 1));
}
