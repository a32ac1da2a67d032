//! The guard stepped on a virtual clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::testkit::{T0, guard_settings};

fn ip(last: u8) -> IpKey {
    IpKey::of(Ipv4Addr::new(127, 0, 0, last).into())
}

fn at(ms: u64) -> Timestamp {
    T0.saturating_add(Duration::from_millis(ms))
}

/// A handshake attempt that, if admitted, closes at once.
fn knock(guard: &Guard, ip: IpKey, now: Timestamp) -> Verdict {
    let (verdict, ticket) = guard.connect(ip, now);
    if let Some(ticket) = ticket {
        guard.release(ticket);
    }
    verdict
}

/// A whole handshake of `user` from `ip`: the ticket, or the refusal.
fn open(guard: &Guard, ip: IpKey, user: &str) -> Result<Ticket, Kind> {
    let (verdict, ticket) = guard.connect(ip, T0);
    if let Verdict::Refuse(r) = verdict {
        return Err(r.kind);
    }
    let mut ticket = ticket.expect("admitted with a ticket");
    match guard.admit(&mut ticket, user, T0) {
        Verdict::Refuse(r) => {
            guard.release(ticket);
            Err(r.kind)
        }
        _ => Ok(ticket),
    }
}

fn refused(v: &Verdict) -> Option<Kind> {
    match v {
        Verdict::Refuse(r) => Some(r.kind),
        _ => None,
    }
}

#[test]
fn a_reconnect_storm_is_limited_then_banned() {
    let guard = Guard::new(guard_settings());
    // The burst of connect_rate ("30/min") passes.
    for _ in 0..30 {
        assert_eq!(knock(&guard, ip(2), T0), Verdict::Pass);
    }
    let Verdict::Refuse(r) = knock(&guard, ip(2), T0) else { panic!("the 31st attempt is refused") };
    assert_eq!((r.kind, r.retry_after), (Kind::RapidReconnect, Some(Duration::from_secs(2))));
    // Every refused attempt weighs 2; ban_at is 60.
    let mut steps = Vec::new();
    for _ in 0..30 {
        let Verdict::Refuse(r) = knock(&guard, ip(2), T0) else { panic!("still refused") };
        steps.push(guard.penalize(None, ip(2), None, r.kind, T0).step);
    }
    assert_eq!(steps.iter().filter(|s| **s == Step::Restrict).count(), 1, "restricted once, at 10");
    let Some(Step::Ban(bans)) = steps.last() else { panic!("the 30th refusal bans: {steps:?}") };
    assert_eq!(bans[0].subject, Subject::Ip(ip(2)));
    assert_eq!(refused(&knock(&guard, ip(2), T0)), Some(Kind::Banned));
    assert_eq!(knock(&guard, ip(3), T0), Verdict::Pass, "other addresses are untouched");
    // The ban ends on time; by then the attempt limiter is full again.
    assert_eq!(knock(&guard, ip(2), T0.saturating_add(Duration::from_secs(15 * 60))), Verdict::Pass);
}

#[test]
fn an_attack_that_goes_on_while_banned_is_banned_once() {
    let guard = Guard::new(guard_settings());
    let mut bans = Vec::new();
    // 20 s of refusals weighing 2 each, far past ban_at (60) many times
    // over: the first crossing bans; the rest find the ban in force.
    for ms in 0..600 {
        if let Step::Ban(issued) = guard.penalize(None, ip(2), None, Kind::RapidReconnect, at(ms * 33)).step {
            bans.extend(issued);
        }
    }
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].strikes, 1);
    // Once it has ended, the next crossing is the second strike.
    let after = bans[0].until.unwrap();
    let next = (0..30).find_map(|_| match guard.penalize(None, ip(2), None, Kind::RapidReconnect, after).step {
        Step::Ban(issued) => issued.into_iter().next(),
        _ => None,
    });
    assert_eq!(next.map(|b| b.strikes), Some(2));
}

#[test]
fn plain_requests_have_their_own_rate_and_see_bans() {
    let guard = Guard::new(guard_settings());
    // The burst of request_rate ("60/min") passes, the next waits a second.
    for _ in 0..60 {
        assert_eq!(guard.request(ip(4), T0), Verdict::Pass);
    }
    let Verdict::Refuse(r) = guard.request(ip(4), T0) else { panic!("the 61st request is refused") };
    assert_eq!((r.kind, r.retry_after), (Kind::RateExcess, Some(Duration::from_secs(1))));
    assert_eq!(guard.request(ip(5), T0), Verdict::Pass, "per address");
    assert_eq!(knock(&guard, ip(4), T0), Verdict::Pass, "handshakes have a budget of their own");
    assert_eq!(guard.request(ip(4), T0.saturating_add(Duration::from_secs(1))), Verdict::Pass);
    // A banned address is refused here as at the handshake.
    let ban = guard.bans().propose(Subject::Ip(ip(6)), "test", &guard.settings().ban_terms, T0).unwrap();
    guard.bans().insert(ban);
    assert_eq!(refused(&guard.request(ip(6), T0)), Some(Kind::Banned));
}

#[test]
fn caps_refuse_the_one_too_many_and_free_up_on_release() {
    let guard =
        Guard::new(GuardSettings { max_connections_per_ip: 2, max_connections_per_user: 3, ..guard_settings() });
    let t1 = open(&guard, ip(2), "alice").unwrap();
    let t2 = open(&guard, ip(2), "bob").unwrap();
    assert_eq!(open(&guard, ip(2), "carol").err(), Some(Kind::TooManyConnections));
    guard.release(t1);
    let t4 = open(&guard, ip(2), "carol").unwrap();
    // Per user, across addresses: alice's first ticket was released.
    let tickets: Vec<_> = (3..6).map(|n| open(&guard, ip(n), "alice").unwrap()).collect();
    assert_eq!(open(&guard, ip(6), "alice").err(), Some(Kind::TooManyConnections));
    // The refused handshake holds no place at its address either.
    let t6 = open(&guard, ip(6), "dave").unwrap();
    guard.release(t6);
    for t in tickets.into_iter().chain([t2, t4]) {
        guard.release(t);
    }
    guard.sweep(at(60_000));
    assert_eq!(guard.tracked(), (0, 0), "released and idle: forgotten");
}

#[test]
fn a_flood_on_one_connection_is_rate_limited_then_disconnected() {
    let guard = Guard::new(guard_settings());
    let mut conn = Standing::new(ip(2));
    for _ in 0..20 {
        assert_eq!(guard.message(&mut conn, "alice", T0), Verdict::Pass);
    }
    let Verdict::Refuse(first) = guard.message(&mut conn, "alice", T0) else { panic!("over 20/s") };
    assert_eq!((first.kind, first.retry_after), (Kind::RateExcess, Some(Duration::from_millis(50))));
    let mut steps = vec![guard.penalize(Some(&mut conn), ip(2), Some("alice"), first.kind, T0).step];
    while steps.last() != Some(&Step::Disconnect) {
        assert!(steps.len() < 100, "never disconnected: {steps:?}");
        let v = guard.message(&mut conn, "alice", T0);
        steps.push(guard.penalize(Some(&mut conn), ip(2), Some("alice"), refused(&v).unwrap(), T0).step);
    }
    assert_eq!(steps.len(), 30, "rate excess weighs 1; disconnect_at is 30");
    assert_eq!(steps.iter().filter(|s| **s == Step::Restrict).count(), 1);
    // The disconnect weighed 10 more on the user and the address (40), so
    // back on a new connection the user's score disconnects at once (51),
    // and on the next one the address passes ban_at (62).
    let mut again = Standing::new(ip(2));
    let step = guard.penalize(Some(&mut again), ip(2), Some("alice"), Kind::RateExcess, T0).step;
    assert_eq!(step, Step::Disconnect);
    let mut third = Standing::new(ip(2));
    let step = guard.penalize(Some(&mut third), ip(2), Some("alice"), Kind::RateExcess, T0).step;
    let Step::Ban(bans) = step else { panic!("{step:?}") };
    assert_eq!(bans.iter().map(|b| b.subject.to_string()).collect::<Vec<_>>(), ["ip:127.0.0.2"]);
    assert_eq!(refused(&knock(&guard, ip(2), T0)), Some(Kind::Banned));
}

#[test]
fn one_address_cannot_hold_every_pending_place() {
    let guard = Guard::new(GuardSettings { max_pending_per_ip: 2, ..guard_settings() });
    let a = guard.accept(ip(2), T0);
    let b = guard.accept(ip(2), T0);
    assert!(matches!((&a.0, &b.0), (Verdict::Pass, Verdict::Pass)));
    let (third, none) = guard.accept(ip(2), T0);
    assert_eq!((refused(&third), none.is_none()), (Some(Kind::TooManyConnections), true));
    let (other, other_pending) = guard.accept(ip(3), T0);
    assert_eq!(other, Verdict::Pass, "another address has its own places");
    guard.answered(a.1.unwrap());
    let (again, again_pending) = guard.accept(ip(2), T0);
    assert_eq!(again, Verdict::Pass, "a place frees when a socket is answered");
    for p in [b.1, other_pending, again_pending].into_iter().flatten() {
        guard.answered(p);
    }
    guard.sweep(at(3_600_000));
    assert_eq!(guard.tracked(), (0, 0));
}

#[test]
fn a_users_rate_holds_across_their_connections() {
    let guard = Guard::new(guard_settings()); // user_rate 40/s, per connection 20/s
    let mut conns: Vec<Standing> = (2..5).map(|n| Standing::new(ip(n))).collect();
    let mut passed = 0;
    for round in 0..20 {
        for conn in &mut conns {
            if guard.message(conn, "alice", T0) == Verdict::Pass {
                passed += 1;
            } else {
                assert!(round >= 13, "no refusal before the user's burst is spent");
            }
        }
    }
    assert_eq!(passed, 40, "three connections share one user's 40");
    // Another user on the same addresses is not affected.
    assert_eq!(guard.message(&mut conns[0], "bob", T0), Verdict::Pass);
}

#[test]
fn an_addresss_rate_holds_across_users() {
    let guard = Guard::new(GuardSettings { ip_rate: Rate::parse("5/s").unwrap(), ..guard_settings() });
    let mut passed = 0;
    for n in 0..10 {
        let mut conn = Standing::new(ip(2));
        if guard.message(&mut conn, &format!("u{n}"), T0) == Verdict::Pass {
            passed += 1;
        }
    }
    assert_eq!(passed, 5);
}

#[test]
fn a_restricted_connection_gets_a_quarter_of_the_rate() {
    let guard = Guard::new(guard_settings());
    let mut conn = Standing::new(ip(2));
    for _ in 0..15 {
        guard.penalize(Some(&mut conn), ip(2), Some("alice"), Kind::NotMember, T0);
    }
    // restrict_at is 10: 20/s divided by 4.
    let passed = (0..20).filter(|_| guard.message(&mut conn, "alice", T0) == Verdict::Pass).count();
    assert_eq!(passed, 5);
    // A new connection of the same user or address is restricted as well.
    let mut fresh = Standing::new(ip(2));
    let passed = (0..20).filter(|_| guard.message(&mut fresh, "alice", at(2000)) == Verdict::Pass).count();
    assert_eq!(passed, 5);
    // Once the scores decay below restrict_at (15 → 10 takes 0.58 half-lives,
    // ~175 s), the full rate is back.
    let later = at(180_000);
    let mut back = Standing::new(ip(2));
    let passed = (0..20).filter(|_| guard.message(&mut back, "alice", later) == Verdict::Pass).count();
    assert_eq!(passed, 20);
}

#[test]
fn event_and_control_rates() {
    let guard = Guard::new(guard_settings());
    let conn = Standing::new(ip(2));
    let rate = Rate::parse("2/s").unwrap();
    assert_eq!(guard.event(conn.is_restricted(), "alice", "quiz.answer", rate, T0), Verdict::Pass);
    assert_eq!(guard.event(conn.is_restricted(), "alice", "quiz.answer", rate, T0), Verdict::Pass);
    let Verdict::Refuse(r) = guard.event(conn.is_restricted(), "alice", "quiz.answer", rate, T0) else {
        panic!("third in a second")
    };
    assert_eq!((r.kind, r.retry_after), (Kind::RateExcess, Some(Duration::from_millis(500))));
    assert_eq!(guard.event(conn.is_restricted(), "alice", "chat.message", rate, T0), Verdict::Pass, "per event");
    assert_eq!(guard.event(conn.is_restricted(), "bob", "quiz.answer", rate, T0), Verdict::Pass, "per user");
    let mut pinger = Standing::new(ip(3));
    let pings = (0..50).filter(|_| guard.control(&mut pinger, T0) == Verdict::Pass).count();
    assert_eq!(pings, 5, "control_rate 5/s");
}

#[test]
fn dry_run_reports_everything_and_enforces_nothing() {
    let guard = Guard::new(GuardSettings { dry_run: true, max_connections_per_ip: 1, ..guard_settings() });
    let mut verdicts = Vec::new();
    for _ in 0..40 {
        verdicts.push(knock(&guard, ip(2), T0));
    }
    assert!(verdicts.iter().all(|v| !matches!(v, Verdict::Refuse(_))));
    assert_eq!(verdicts.iter().filter(|v| matches!(v, Verdict::WouldRefuse(_))).count(), 10);
    let mut last = Escalation::NONE;
    for _ in 0..30 {
        last = guard.penalize(None, ip(2), None, Kind::Protocol, T0);
        assert!(!last.enforced);
    }
    assert!(matches!(last.step, Step::Ban(_)) || last.step == Step::None, "{last:?}");
    assert!(guard.bans().list(T0).is_empty(), "no ban was imposed");
    let first = open(&guard, ip(3), "a").unwrap();
    // Over max_connections_per_ip (1): admitted and counted all the same.
    let (v, second) = guard.connect(ip(3), T0);
    assert!(matches!(v, Verdict::WouldRefuse(ref r) if r.kind == Kind::TooManyConnections), "{v:?}");
    guard.release(first);
    guard.release(second.expect("a ticket under dry run"));
}

#[test]
fn user_bans_only_when_configured() {
    let guard = Guard::new(GuardSettings { ban_users: true, ..guard_settings() });
    let mut step = Step::None;
    for n in 0..20 {
        // Spread over addresses, so only the user's score reaches ban_at.
        step = guard.penalize(None, ip(10 + n), Some("mallory"), Kind::Protocol, T0).step;
    }
    let Step::Ban(bans) = step else { panic!("{step:?}") };
    assert_eq!(bans.iter().map(|b| b.subject.to_string()).collect::<Vec<_>>(), ["user:mallory"]);
    assert_eq!(open(&guard, ip(99), "mallory").err(), Some(Kind::Banned));
}

#[test]
fn a_hundred_thousand_keys_stay_within_the_bound_and_go_when_idle() {
    let guard = Guard::new(GuardSettings { max_tracked_keys: 10_000, ..guard_settings() });
    for n in 0..100_000u32 {
        let key = IpKey::of(std::net::Ipv4Addr::from(0x7f00_0000 | n).into());
        let _ = knock(&guard, key, at(u64::from(n)));
    }
    let (ips, _) = guard.tracked();
    assert!(ips <= 10_000 + 64, "bounded by max_tracked_keys: {ips}");
    guard.sweep(at(200_000 + 60_000));
    assert_eq!(guard.tracked(), (0, 0));
}

#[test]
fn a_reputation_weight_is_added_once_per_tracked_address() {
    let guard = Guard::new(guard_settings());
    // Half of ban_at (60): twice would ban, once must not.
    assert!((guard.settings().ban_at - 60.0).abs() < f64::EPSILON);
    let weight = 30;
    assert!(matches!(guard.reputation(ip(7), weight, T0).map(|e| e.step), Some(Step::None | Step::Restrict)));
    assert_eq!(guard.reputation(ip(7), weight, at(10)), None, "not added again, and says so");
    assert!(guard.bans().active(&ban::Subject::Ip(ip(7)), at(10)).is_none());
    // The full weight at once bans an unseen address.
    assert!(matches!(guard.reputation(ip(8), 60, T0).map(|e| e.step), Some(Step::Ban(_))));
}
