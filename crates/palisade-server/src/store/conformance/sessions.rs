//! The suite's cases for users and login sessions: what a login, a
//! refresh, a logout and the session cap do to the stored sessions, their
//! refresh families and the revocations they leave.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, user_revocation};
use palisade_core::login::refresh::RefreshVerdict;
use palisade_core::login::{CapPolicy, CapReached, SessionCap};
use palisade_core::store::{EndReason, LoginSession, Refreshed, StoredRefresh, User};

use super::{Backend, Shared, T0};

const WEEK: Duration = Duration::from_secs(7 * 86_400);
const GRACE: Duration = Duration::from_secs(2);
const EVICT: SessionCap = SessionCap { max: 2, policy: CapPolicy::Evict };
const ROOMY: SessionCap = SessionCap { max: 10, policy: CapPolicy::Evict };

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

fn session(id: &str, user: &str, now: Timestamp) -> LoginSession {
    LoginSession {
        id: id.into(),
        user_id: user.into(),
        created: now,
        last_active: now,
        expires: now.saturating_add(WEEK),
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
        device: "d1".into(),
        cookie: false,
    }
}

/// A refresh token hashed as `hash` repeated, minted at `now` beside an
/// access token that lives 15 minutes.
fn token(hash: char, now: Timestamp) -> StoredRefresh {
    StoredRefresh {
        hash: hash.to_string().repeat(64),
        expires: now.saturating_add(WEEK),
        access_expires: now.saturating_add(Duration::from_secs(900)),
    }
}

fn any_device(_: &LoginSession) -> bool {
    true
}

fn revoked_sessions(store: &dyn Shared) -> Vec<String> {
    let mut ids: Vec<String> = store
        .revocations()
        .unwrap()
        .into_iter()
        .filter_map(|r| if let Revocation::Session(s) = r { Some(s) } else { None })
        .collect();
    ids.sort();
    ids
}

fn user(id: &str, roles: &[&str]) -> User {
    User {
        id: id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{id}"),
        created: T0,
    }
}

pub(crate) fn users_are_added_once_read_listed_given_roles_and_removed(backend: &dyn Backend) {
    let store = backend.open();
    let alice = user("alice", &["student"]);
    assert!(store.add_user(&alice).unwrap());
    assert!(!store.add_user(&user("alice", &["admin"])).unwrap(), "an existing id is not replaced");
    assert!(store.add_user(&user("bob", &[])).unwrap());
    assert_eq!(store.user("alice").unwrap(), Some(alice.clone()));
    assert_eq!(store.user("carol").unwrap(), None);
    assert_eq!(store.users().unwrap().iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(store.set_roles("alice", &["teacher".to_owned()]).unwrap());
    assert!(!store.set_roles("carol", &[]).unwrap(), "no such user");
    let other = backend.open();
    assert_eq!(other.user("alice").unwrap().unwrap().roles, ["teacher"], "another handle reads the change");
    assert_eq!(store.remove_user("bob", T0).unwrap(), Some(Vec::new()));
    assert_eq!(store.remove_user("bob", T0).unwrap(), None);
    assert!(!format!("{alice:?}").contains("argon2"), "Debug never shows the hash");
}

pub(crate) fn a_refresh_token_rotates_once_and_its_reuse_ends_the_session(backend: &dyn Backend) {
    let store = backend.open();
    assert_eq!(store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap(), Ok(vec![]));
    let first = token('a', T0).hash;
    let Refreshed::Rotated(s) = store.refresh(&first, &token('b', at(60)), GRACE, &any_device, at(60)).unwrap() else {
        panic!("expected a rotation")
    };
    assert_eq!((s.last_active, s.expires), (at(60), at(60).saturating_add(WEEK)));
    // The same token within the grace: refused, the session stays.
    let again = store.refresh(&first, &token('c', at(61)), GRACE, &any_device, at(61)).unwrap();
    assert_eq!(again, Refreshed::Refused(RefreshVerdict::RecentlyUsed));
    assert!(revoked_sessions(&*store).is_empty());
    // After the grace: a reuse, and the whole family ends with it.
    let reused = store.refresh(&first, &token('c', at(70)), GRACE, &any_device, at(70)).unwrap();
    assert!(matches!(reused, Refreshed::Reused(ref s) if s.id == "s1"), "{reused:?}");
    assert_eq!(revoked_sessions(&*store), ["s1"]);
    // The newest token of the family is dead too.
    let next = token('b', at(60)).hash;
    assert_eq!(
        store.refresh(&next, &token('d', at(71)), GRACE, &any_device, at(71)).unwrap(),
        Refreshed::Refused(RefreshVerdict::Ended)
    );
    assert!(store.live_sessions("alice", at(71)).unwrap().is_empty());
    assert_eq!(
        store.refresh(&"f".repeat(64), &token('e', at(72)), GRACE, &any_device, at(72)).unwrap(),
        Refreshed::Unknown
    );
}

/// Only the newest used tokens are kept (a session refreshed in a loop
/// must not grow the store): an old copy is unknown, a recent one a reuse.
pub(crate) fn a_session_refreshed_in_a_loop_keeps_recognising_its_newest_used_tokens(backend: &dyn Backend) {
    let store = backend.open();
    store.open_session(&session("s1", "alice", T0), &token('0', T0), EVICT, T0).unwrap().unwrap();
    let hash = |n: u32| format!("{n:064x}");
    let mut current = token('0', T0).hash;
    for n in 1..=40u32 {
        let now = at(u64::from(n) * 10);
        let next = StoredRefresh { hash: hash(n), ..token('x', now) };
        assert!(matches!(store.refresh(&current, &next, GRACE, &any_device, now).unwrap(), Refreshed::Rotated(_)));
        current = next.hash;
    }
    assert_eq!(
        store.refresh(&token('0', T0).hash, &token('x', at(500)), GRACE, &any_device, at(500)).unwrap(),
        Refreshed::Unknown
    );
    assert!(matches!(
        store.refresh(&hash(39), &token('y', at(501)), GRACE, &any_device, at(501)).unwrap(),
        Refreshed::Reused(_)
    ));
}

pub(crate) fn a_refused_device_or_an_expired_token_changes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
    let first = token('a', T0).hash;
    let wrong = store.refresh(&first, &token('b', at(1)), GRACE, &|_| false, at(1)).unwrap();
    assert!(matches!(wrong, Refreshed::WrongDevice(_)));
    // Not used by the refusal: it still rotates from the right device.
    assert!(matches!(
        store.refresh(&first, &token('b', at(2)), GRACE, &any_device, at(2)).unwrap(),
        Refreshed::Rotated(_)
    ));
    let late = at(2).saturating_add(WEEK);
    let second = token('b', at(2)).hash;
    assert_eq!(
        store.refresh(&second, &token('c', late), GRACE, &any_device, late).unwrap(),
        Refreshed::Refused(RefreshVerdict::Expired)
    );
}

pub(crate) fn the_cap_evicts_the_least_recently_active_or_refuses(backend: &dyn Backend) {
    let store = backend.open();
    store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
    store.open_session(&session("s2", "alice", at(1)), &token('b', at(1)), EVICT, at(1)).unwrap().unwrap();
    // s1 refreshes, so s2 is now the least recently active.
    store.refresh(&token('a', T0).hash, &token('c', at(2)), GRACE, &any_device, at(2)).unwrap();
    store.open_session(&session("s9", "bob", at(3)), &token('9', at(3)), EVICT, at(3)).unwrap().unwrap();
    let evicted = store.open_session(&session("s3", "alice", at(4)), &token('d', at(4)), EVICT, at(4)).unwrap();
    assert_eq!(evicted, Ok(vec!["s2".to_owned()]));
    let live: Vec<String> = store.live_sessions("alice", at(5)).unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(live, ["s3", "s1"], "most recently active first");
    let refuse = SessionCap { max: 2, policy: CapPolicy::Refuse };
    assert_eq!(
        store.open_session(&session("s4", "alice", at(6)), &token('e', at(6)), refuse, at(6)).unwrap(),
        Err(CapReached)
    );
    assert!(store.session("s4").unwrap().is_none(), "a refused login leaves nothing behind");
    assert_eq!(revoked_sessions(&*store), ["s2"]);
}

pub(crate) fn ending_sessions_revokes_them_and_pruning_forgets_them_later(backend: &dyn Backend) {
    let store = backend.open();
    for (id, hash) in [("s1", 'a'), ("s2", 'b')] {
        store.open_session(&session(id, "alice", T0), &token(hash, T0), ROOMY, T0).unwrap().unwrap();
    }
    assert!(store.end_session("s1", EndReason::Logout, at(1)).unwrap());
    assert!(!store.end_session("s1", EndReason::Logout, at(2)).unwrap(), "already ended");
    assert!(!store.end_session("s-none", EndReason::Logout, at(2)).unwrap(), "never was");
    assert_eq!(store.end_user_sessions("alice", EndReason::LogoutAll, at(3)).unwrap(), ["s2"]);
    assert_eq!(revoked_sessions(&*store), ["s1", "s2"]);
    // Nothing ended before at(1): nothing pruned; later, the sessions,
    // and once their tokens (minted at T0 for 15 minutes) have expired,
    // the revocations.
    assert_eq!(store.prune_sessions(at(1), at(1)).unwrap(), 0);
    assert_eq!(store.prune_sessions(at(10), at(10)).unwrap(), 2, "two sessions");
    assert_eq!(revoked_sessions(&*store).len(), 2, "their tokens live on");
    assert_eq!(store.prune_sessions(at(10), at(901)).unwrap(), 2, "two revocations");
    assert!(store.session("s1").unwrap().is_none());
    assert!(revoked_sessions(&*store).is_empty());
    // The refresh tokens went with their sessions.
    assert_eq!(
        store.refresh(&token('a', T0).hash, &token('c', at(11)), GRACE, &any_device, at(11)).unwrap(),
        Refreshed::Unknown
    );
}

pub(crate) fn revoking_or_removing_a_user_ends_their_sessions(backend: &dyn Backend) {
    let store = backend.open();
    for (id, user, hash) in [("s1", "alice", 'a'), ("s2", "alice", 'b'), ("s3", "bob", 'c')] {
        store.open_session(&session(id, user, T0), &token(hash, T0), ROOMY, T0).unwrap().unwrap();
    }
    let mut ended = store.revoke(&user_revocation("alice", at(1)).unwrap(), at(1), "").unwrap();
    ended.sort();
    assert_eq!(ended, ["s1", "s2"]);
    assert!(store.live_sessions("alice", at(2)).unwrap().is_empty());
    assert_eq!(store.revoke(&Revocation::Token("t1".into()), at(2), "").unwrap(), Vec::<String>::new());

    assert!(store.add_user(&user("bob", &[])).unwrap());
    assert_eq!(store.remove_user("bob", at(3)).unwrap(), Some(vec!["s3".to_owned()]));
    assert_eq!(store.remove_user("bob", at(4)).unwrap(), None);
    assert_eq!(revoked_sessions(&*store), ["s1", "s2", "s3"]);
}

pub(crate) fn a_session_revocation_lasts_as_long_as_its_newest_token_whatever_the_ttl_now(backend: &dyn Backend) {
    let store = backend.open();
    let day = Duration::from_secs(86_400);
    // Minted under a day-long token ttl; the ttl is 15 minutes by the
    // time the session ends.
    let long = StoredRefresh { access_expires: T0.saturating_add(day), ..token('a', T0) };
    store.open_session(&session("s1", "alice", T0), &long, EVICT, T0).unwrap().unwrap();
    let short = token('b', at(60));
    assert!(matches!(store.refresh(&long.hash, &short, GRACE, &any_device, at(60)).unwrap(), Refreshed::Rotated(_)));
    store.open_session(&session("s2", "alice", T0), &token('c', T0), EVICT, T0).unwrap().unwrap();
    assert!(store.end_session("s1", EndReason::Logout, at(61)).unwrap());
    assert!(store.end_session("s2", EndReason::Logout, at(61)).unwrap());
    // An hour on, today's ttl says every token is gone: only s2's are.
    let hour = at(3600);
    store.prune_sessions(hour, hour).unwrap();
    assert_eq!(revoked_sessions(&*store), ["s1"], "the day-long token still needs its revocation");
    let after = T0.saturating_add(day).saturating_add(Duration::from_secs(1));
    store.prune_sessions(after, after).unwrap();
    assert!(revoked_sessions(&*store).is_empty());
}

/// Two processes (the server and `palisade user`), or two nodes: a login
/// on one refreshes and logs out on the other.
pub(crate) fn another_handle_refreshes_a_session_opened_on_this_one(backend: &dyn Backend) {
    let (a, b) = (backend.open(), backend.open());
    a.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
    assert!(matches!(
        b.refresh(&token('a', T0).hash, &token('b', at(1)), GRACE, &any_device, at(1)).unwrap(),
        Refreshed::Rotated(_)
    ));
    assert_eq!(a.session("s1").unwrap().unwrap().last_active, at(1));
    assert!(b.end_session("s1", EndReason::Logout, at(2)).unwrap());
    assert!(a.live_sessions("alice", at(3)).unwrap().is_empty());
    assert_eq!(revoked_sessions(&*a), ["s1"]);
}
