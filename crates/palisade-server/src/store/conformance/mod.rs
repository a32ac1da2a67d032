//! What every `BanStore`, `RevocationStore`, `UserStore`, `SessionStore`
//! and `OwnerStore` must do, as the SQLite store does it: one suite, run
//! unchanged against each backend (the SQLite file here, Redis in
//! `cluster::store`'s tests), through the traits only. [`suite!`] makes a
//! `#[test]` of each case for a backend; the login sessions' cases are in
//! `sessions`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, user_revocation};
use palisade_core::guard::{Ban, BanSource, Subject};
use palisade_core::ownership::{OwnerChange, OwnerRecord};
use palisade_core::store::{BanAction, BanStore, OwnerStore, RevocationStore, SessionStore, UserStore};

mod sessions;

pub(crate) use sessions::*;

/// What the suite needs of a store.
pub(crate) trait Shared: BanStore + RevocationStore + UserStore + SessionStore + OwnerStore {}

impl<T: BanStore + RevocationStore + UserStore + SessionStore + OwnerStore> Shared for T {}

/// A backend under test, fresh for each case. Every handle it opens is on
/// the same store: a second one is what another process, or another node,
/// sees.
pub(crate) trait Backend {
    fn open(&self) -> Box<dyn Shared>;
}

/// A `#[test]` for each case, on the backend `$fresh` gives (`None`:
/// skipped, as when `redis-server` is missing, which says so itself).
macro_rules! suite {
    ($fresh:expr) => {
        $crate::store::conformance::suite!(@cases $fresh;
            put_bans_lift_and_history_round_trip,
            bans_keeps_what_is_in_force_remembered_or_permanent,
            prune_deletes_ended_bans_but_not_permanent_ones_or_history,
            prune_bounds_the_bans_by_dropping_automatic_ones_that_end_soonest,
            prune_history_drops_old_records_and_keeps_the_newest,
            another_handle_sees_every_write_and_the_version_moves,
            revocations_round_trip_and_a_user_keeps_the_later_instant,
            an_automatic_ban_never_shortens_one_in_force_and_an_operator_decides,
            users_are_added_once_read_listed_given_roles_and_removed,
            a_refresh_token_rotates_once_and_its_reuse_ends_the_session,
            a_session_refreshed_in_a_loop_keeps_recognising_its_newest_used_tokens,
            a_refused_device_or_an_expired_token_changes_nothing,
            the_cap_evicts_the_least_recently_active_or_refuses,
            ending_sessions_revokes_them_and_pruning_forgets_them_later,
            revoking_or_removing_a_user_ends_their_sessions,
            a_session_revocation_lasts_as_long_as_its_newest_token_whatever_the_ttl_now,
            another_handle_refreshes_a_session_opened_on_this_one,
            room_owners_change_in_one_write_and_another_handle_reads_them,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(backend) = $fresh {
                    $crate::store::conformance::$case(&backend);
                }
            }
        )*
    };
}

pub(crate) use suite;

const MIN: Duration = Duration::from_secs(60);
const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn subject(s: &str) -> Subject {
    s.parse().unwrap()
}

/// A ban of `s`; strikes 2 and up make it automatic.
fn ban(s: &str, since: Timestamp, length: Option<Duration>, strikes: u32) -> Ban {
    Ban {
        subject: subject(s),
        since,
        until: length.map(|l| since.saturating_add(l)),
        strikes,
        reason: format!("reason for {s}"),
        source: if strikes > 1 { BanSource::Auto } else { BanSource::Operator },
    }
}

fn subjects(store: &dyn Shared, now: Timestamp, remember: Duration) -> Vec<String> {
    store.bans(now, remember).unwrap().iter().map(|b| b.subject.to_string()).collect()
}

/// Each room's latest change is what is stored, whatever it replaces.
pub(crate) fn room_owners_change_in_one_write_and_another_handle_reads_them(backend: &dyn Backend) {
    let (store, other) = (backend.open(), backend.open());
    let record = |room: &str, owner: &str| OwnerRecord { room: room.into(), owner: owner.into(), since: T0 };
    store
        .apply_owner_changes(&[OwnerChange::Claimed(record("a", "alice")), OwnerChange::Claimed(record("b", "bob"))])
        .unwrap();
    let changes = [
        OwnerChange::Claimed(record("b", "carol")),
        OwnerChange::Released("a".into()),
        OwnerChange::Released("never-owned".into()),
    ];
    store.apply_owner_changes(&changes).unwrap();
    store.apply_owner_changes(&[]).unwrap();
    assert_eq!(other.owners().unwrap(), [record("b", "carol")]);
    other.apply_owner_changes(&[OwnerChange::Claimed(record("a", "alice"))]).unwrap();
    let mut owners = store.owners().unwrap();
    owners.sort_by(|x, y| x.room.cmp(&y.room));
    assert_eq!(owners, [record("a", "alice"), record("b", "carol")]);
}

/// Two writers (the server's guard and `palisade ban`, or two nodes): an
/// automatic ban never shortens the one in force that its writer had not
/// read yet (`Ban::replaces`); an operator decides.
pub(crate) fn an_automatic_ban_never_shortens_one_in_force_and_an_operator_decides(backend: &dyn Backend) {
    let (a, b) = (backend.open(), backend.open());
    let with = |source, since, length| Ban { source, ..ban("ip:127.0.0.2", since, length, 1) };
    let permanent = with(BanSource::Operator, T0, None);
    a.put(&permanent).unwrap();
    b.put(&with(BanSource::Auto, T0.saturating_add(MIN), Some(15 * MIN))).unwrap();
    assert_eq!(a.bans(T0, Duration::ZERO).unwrap(), std::slice::from_ref(&permanent), "still permanent");
    assert_eq!(a.history(None, 10).unwrap().len(), 1, "nothing happened to record");
    let operator = with(BanSource::Operator, T0, Some(MIN));
    a.put(&operator).unwrap();
    assert_eq!(a.bans(T0, Duration::ZERO).unwrap(), [operator], "an operator's ban replaces, shorter or not");
    // A longer automatic ban replaces a shorter one in force, and an
    // ended one is replaced whatever its length.
    let long = with(BanSource::Auto, T0.saturating_add(MIN), Some(60 * MIN));
    b.put(&with(BanSource::Auto, T0, Some(MIN))).unwrap();
    b.put(&long).unwrap();
    assert_eq!(a.bans(T0, Duration::ZERO).unwrap(), [long]);
    let after = with(BanSource::Auto, T0.saturating_add(120 * MIN), Some(MIN));
    b.put(&after).unwrap();
    assert_eq!(a.bans(T0, Duration::MAX).unwrap(), [after]);
}

pub(crate) fn put_bans_lift_and_history_round_trip(backend: &dyn Backend) {
    let store = backend.open();
    let ip = ban("ip:127.0.0.2", T0, Some(15 * MIN), 1);
    let user = ban("user:mallory", T0, None, 1);
    let v6 = ban("ip:2001:db8::/64", T0, Some(30 * MIN), 2);
    for b in [&ip, &user, &v6] {
        store.put(b).unwrap();
    }
    let mut all = store.bans(T0, Duration::ZERO).unwrap();
    all.sort_by(|a, b| a.subject.cmp(&b.subject));
    let mut expected = vec![ip.clone(), user, v6];
    expected.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(all, expected);

    // A second put replaces the subject's ban.
    let later = T0.saturating_add(MIN);
    let escalated = ban("ip:127.0.0.2", later, Some(60 * MIN), 3);
    store.put(&escalated).unwrap();
    assert_eq!(store.bans(later, Duration::ZERO).unwrap().iter().filter(|b| b.subject == ip.subject).count(), 1);

    let lifted_at = T0.saturating_add(2 * MIN);
    assert!(store.lift(&ip.subject, lifted_at).unwrap());
    assert!(!store.lift(&ip.subject, lifted_at).unwrap(), "nothing left to lift");
    assert!(!store.lift(&subject("user:nobody"), lifted_at).unwrap());
    assert!(store.bans(lifted_at, Duration::MAX).unwrap().iter().all(|b| b.subject != ip.subject));

    let history = store.history(None, 10).unwrap();
    let summary: Vec<(BanAction, String, Timestamp)> =
        history.iter().map(|r| (r.action, r.ban.subject.to_string(), r.at)).collect();
    assert_eq!(
        summary,
        [
            (BanAction::Lift, "ip:127.0.0.2".into(), lifted_at),
            (BanAction::Ban, "ip:127.0.0.2".into(), later),
            (BanAction::Ban, "ip:2001:db8::/64".into(), T0),
            (BanAction::Ban, "user:mallory".into(), T0),
            (BanAction::Ban, "ip:127.0.0.2".into(), T0),
        ]
    );
    assert_eq!(history[0].ban, escalated, "a lift records the ban it lifted");
    assert_eq!(history[4].ban, ip);
    assert_eq!(store.history(None, 2).unwrap(), history[..2]);
    assert!(store.history(None, 0).unwrap().is_empty());
    let of_ip = store.history(Some(&ip.subject), 10).unwrap();
    assert_eq!(of_ip.len(), 3);
    assert!(of_ip.iter().all(|r| r.ban.subject == ip.subject));
    assert_eq!(store.history(Some(&ip.subject), 1).unwrap(), of_ip[..1]);
    assert!(store.history(Some(&subject("user:nobody")), 10).unwrap().is_empty());
}

pub(crate) fn bans_keeps_what_is_in_force_remembered_or_permanent(backend: &dyn Backend) {
    let store = backend.open();
    store.put(&ban("ip:127.0.0.2", T0, Some(15 * MIN), 1)).unwrap();
    store.put(&ban("user:forever", T0, None, 1)).unwrap();
    let store = &*store;
    let end = T0.saturating_add(15 * MIN);
    let just_before = end.saturating_sub(Duration::from_millis(1));
    assert_eq!(subjects(store, just_before, Duration::ZERO), ["ip:127.0.0.2", "user:forever"]);
    assert_eq!(subjects(store, end, Duration::ZERO), ["user:forever"], "ended at its until");
    // Remembered for escalation until until + remember, exclusive.
    assert_eq!(subjects(store, end.saturating_add(59 * MIN), 60 * MIN), ["ip:127.0.0.2", "user:forever"]);
    assert_eq!(subjects(store, end.saturating_add(60 * MIN), 60 * MIN), ["user:forever"]);
    // No overflow at the extremes.
    assert_eq!(subjects(store, T0, Duration::MAX), ["ip:127.0.0.2", "user:forever"]);
    assert_eq!(subjects(store, Timestamp::from_millis(u64::MAX), Duration::ZERO), ["user:forever"]);
    // A permanent ban is there a thousand years on.
    let far = T0.saturating_add(1000 * 365 * 24 * 60 * MIN);
    assert_eq!(subjects(store, far, Duration::ZERO), ["user:forever"]);
}

pub(crate) fn prune_deletes_ended_bans_but_not_permanent_ones_or_history(backend: &dyn Backend) {
    let store = backend.open();
    store.put(&ban("ip:127.0.0.2", T0, Some(15 * MIN), 1)).unwrap();
    store.put(&ban("ip:127.0.0.3", T0, Some(60 * MIN), 1)).unwrap();
    store.put(&ban("user:forever", T0, None, 1)).unwrap();
    let end = T0.saturating_add(15 * MIN);
    assert_eq!(store.prune(end, usize::MAX).unwrap(), 0, "until == before is not before");
    assert_eq!(store.prune(end.saturating_add(MIN), usize::MAX).unwrap(), 1);
    assert_eq!(subjects(&*store, T0, Duration::MAX), ["ip:127.0.0.3", "user:forever"]);
    assert_eq!(store.prune(Timestamp::from_millis(u64::MAX), usize::MAX).unwrap(), 1);
    assert_eq!(store.bans(T0, Duration::MAX).unwrap().len(), 1);
    assert_eq!(store.history(None, 100).unwrap().len(), 3);
}

pub(crate) fn prune_bounds_the_bans_by_dropping_automatic_ones_that_end_soonest(backend: &dyn Backend) {
    let store = backend.open();
    store.put(&ban("ip:127.0.0.2", T0, Some(15 * MIN), 2)).unwrap();
    store.put(&ban("ip:127.0.0.3", T0, Some(60 * MIN), 2)).unwrap();
    store.put(&ban("ip:127.0.0.4", T0, Some(5 * MIN), 1)).unwrap();
    store.put(&ban("user:forever", T0, None, 1)).unwrap();
    assert_eq!(store.prune(T0, 2).unwrap(), 2);
    assert_eq!(subjects(&*store, T0, Duration::MAX), ["ip:127.0.0.4", "user:forever"], "operators' bans stay");
    assert_eq!(store.prune(T0, 1).unwrap(), 0, "and are never dropped for the bound");
}

pub(crate) fn prune_history_drops_old_records_and_keeps_the_newest(backend: &dyn Backend) {
    let store = backend.open();
    for i in 0..10u64 {
        let at = T0.saturating_add(Duration::from_secs(i * 3600));
        store.put(&ban("ip:127.0.0.2", at, Some(MIN), 1)).unwrap();
    }
    let oldest = |store: &dyn Shared| store.history(None, 100).unwrap().last().unwrap().at;
    assert_eq!(store.prune_history(T0.saturating_add(Duration::from_secs(2 * 3600)), 100).unwrap(), 2);
    assert_eq!(oldest(&*store), T0.saturating_add(Duration::from_secs(2 * 3600)));
    assert_eq!(store.prune_history(T0, 3).unwrap(), 5);
    assert_eq!(store.history(None, 100).unwrap().len(), 3);
    assert_eq!(oldest(&*store), T0.saturating_add(Duration::from_secs(7 * 3600)), "the newest stay");
    assert_eq!(store.prune_history(T0, 3).unwrap(), 0);
    assert_eq!(store.prune_history(T0, usize::MAX).unwrap(), 0);
}

/// The server and `palisade ban` (or two nodes) on one store: each reads
/// what the other wrote, and the server notices by the version.
pub(crate) fn another_handle_sees_every_write_and_the_version_moves(backend: &dyn Backend) {
    let server = backend.open();
    let cli = backend.open();
    let v0 = server.version().unwrap();
    assert_eq!(server.version().unwrap(), v0, "stable while nothing happens");

    let permanent = ban("user:mallory", T0, None, 1);
    let temporary = ban("ip:127.0.0.2", T0, Some(15 * MIN), 2);
    cli.put(&permanent).unwrap();
    cli.put(&temporary).unwrap();
    let v1 = server.version().unwrap();
    assert_ne!(v1, v0, "the other handle's bans");
    assert_eq!(server.bans(T0, Duration::ZERO).unwrap(), [temporary, permanent], "by subject");
    assert_eq!(server.history(None, 10).unwrap().len(), 2);

    assert!(cli.lift(&subject("user:mallory"), T0).unwrap());
    let v2 = server.version().unwrap();
    assert_ne!(v2, v1, "the other handle's lift");
    cli.revoke(&Revocation::Token("t-1".into()), T0, "leaked").unwrap();
    assert_ne!(server.version().unwrap(), v2, "the other handle's revocation");
    assert_eq!(server.revocations().unwrap(), [Revocation::Token("t-1".into())]);
}

pub(crate) fn revocations_round_trip_and_a_user_keeps_the_later_instant(backend: &dyn Backend) {
    let store = backend.open();
    assert!(store.revocations().unwrap().is_empty());
    let later = T0.saturating_add(MIN);
    store.revoke(&Revocation::Token("t-1".into()), T0, "leaked").unwrap();
    store.revoke(&Revocation::Token("t-1".into()), later, "again").unwrap();
    store.revoke(&Revocation::Session("sid-1".into()), T0, "").unwrap();
    assert_eq!(store.revoke(&user_revocation("alice", later).unwrap(), T0, "").unwrap(), Vec::<String>::new());
    store.revoke(&user_revocation("alice", T0).unwrap(), T0, "").unwrap();
    let again = backend.open();
    assert_eq!(
        again.revocations().unwrap(),
        [
            Revocation::Session("sid-1".into()),
            Revocation::Token("t-1".into()),
            user_revocation("alice", later).unwrap()
        ]
    );
    let latest = later.saturating_add(MIN);
    store.revoke(&user_revocation("alice", latest).unwrap(), T0, "").unwrap();
    assert_eq!(again.revocations().unwrap()[2], user_revocation("alice", latest).unwrap(), "a later instant wins");
}
