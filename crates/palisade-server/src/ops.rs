//! Operators' actions on bans, revocations and users, written once for
//! both doors: `palisade ban|revoke|user` (no server: the store opened
//! directly, called synchronously) and the admin API (inside the server:
//! each function run whole through the store gateway's blocking call).
//!
//! Each function applies the rule to the store and returns what was done
//! with its audit record; the caller records it (the CLI appends it, the
//! server queues it) and does what only it can (the server puts a ban in
//! force and closes sockets).

use std::time::{Duration, UNIX_EPOCH};

use palisade_core::Timestamp;
use palisade_core::audit::{self, Entry};
use palisade_core::auth::Revocation;
use palisade_core::guard::{Ban, BanSource, Subject};
use palisade_core::store::{BanStore, EndReason, RevocationStore, SessionStore, StoreError, User, UserStore};

/// Longest reason an operator may give, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 200;

/// An operator's reason (`--reason`, the API's `reason`): one line, at
/// most [`MAX_REASON_CHARS`].
pub(crate) fn parse_reason(text: &str) -> Result<String, String> {
    let chars = text.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(format!("at most {MAX_REASON_CHARS} characters (this one has {chars})"));
    }
    if text.chars().any(char::is_control) {
        return Err("one line without control characters".into());
    }
    Ok(text.to_owned())
}

/// When a ban ends, from a length or `permanent`: `Some(None)` for a
/// permanent ban, `Some(Some(end))` for a length above zero, and `None`
/// (refused) for neither, both, or a zero length.
pub(crate) fn until(now: Timestamp, length: Option<Duration>, permanent: bool) -> Option<Option<Timestamp>> {
    match (length, permanent) {
        (None, true) => Some(None),
        (Some(length), false) if !length.is_zero() => Some(Some(now.saturating_add(length))),
        _ => None,
    }
}

/// Which door an action came through, named in its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Cli,
    Api,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Api => "api",
        }
    }
}

/// An operator's ban, saved.
#[derive(Debug)]
pub(crate) struct Banned {
    pub(crate) ban: Ban,
    /// The ban in force it replaced, if any.
    pub(crate) replaced: Option<Ban>,
    pub(crate) entry: Entry,
}

/// Bans `subject` until `until` (`None`: until lifted). Remembered bans
/// (within `memory`) count too: an operator's ban keeps the subject's
/// strikes, so the next automatic ban still escalates from them.
pub(crate) fn ban(
    store: &dyn BanStore,
    subject: Subject,
    until: Option<Timestamp>,
    reason: String,
    memory: Duration,
    now: Timestamp,
) -> Result<Banned, StoreError> {
    let previous = store.bans(now, memory)?.into_iter().find(|b| b.subject == subject);
    let ban = Ban {
        subject,
        since: now,
        until,
        strikes: previous.as_ref().map_or(1, |p| p.strikes.max(1)),
        reason,
        source: BanSource::Operator,
    };
    store.put(&ban)?;
    let entry = crate::audit::ban_entry(&ban, now);
    Ok(Banned { ban, replaced: previous.filter(|p| p.active(now)), entry })
}

/// Lifts the stored ban on `subject`: whether there was one, and the
/// audit record of the lift (the server lifts its own copy too, and
/// records the lift if either had it).
pub(crate) fn lift(
    store: &dyn BanStore,
    subject: &Subject,
    via: Via,
    now: Timestamp,
) -> Result<(bool, Entry), StoreError> {
    let lifted = store.lift(subject, now)?;
    let entry = Entry::new(now, audit::Kind::Unban, &format!("{}: ban lifted by an operator", via.as_str()));
    let entry = match subject {
        Subject::Ip(ip) => entry.ip(ip),
        Subject::User(user) => entry.user(Some(user)),
    };
    Ok((lifted, entry))
}

/// A revocation, saved.
#[derive(Debug)]
pub(crate) struct Revoked {
    /// Login sessions a user's revocation ended.
    pub(crate) ended: usize,
    pub(crate) entry: Entry,
}

/// Revokes a token or a user's tokens; a user's login sessions end in the
/// same transaction.
pub(crate) fn revoke(
    store: &dyn RevocationStore,
    revocation: &Revocation,
    reason: &str,
    via: Via,
    now: Timestamp,
) -> Result<Revoked, StoreError> {
    let ended = store.revoke(revocation, now, reason)?.len();
    let mut detail = format!("{}: revoked {}", via.as_str(), describe(revocation));
    let mut user = None;
    if let Revocation::User { user: id, .. } = revocation {
        detail.push_str(&format!("; {ended} login session(s) ended"));
        user = Some(id.as_ref());
    }
    if !reason.is_empty() {
        detail.push_str(&format!("; reason: {reason}"));
    }
    Ok(Revoked { ended, entry: Entry::new(now, audit::Kind::Revocation, &detail).user(user) })
}

/// Ends the live login session `sid`; its audit record, or `None` when
/// there was no such live session.
pub(crate) fn end_session(
    store: &dyn SessionStore,
    sid: &str,
    via: Via,
    now: Timestamp,
) -> Result<Option<Entry>, StoreError> {
    Ok(store.end_session(sid, EndReason::Revoked, now)?.then(|| session_revoked(sid, via, now)))
}

/// The audit record of a revoked session (login or admin browser).
pub(crate) fn session_revoked(sid: &str, via: Via, now: Timestamp) -> Entry {
    Entry::new(now, audit::Kind::Revocation, &format!("{}: session revoked", via.as_str())).session(sid)
}

/// `token:JTI`, `session:SID`, or `user:ID (tokens issued up to TIME)`.
pub(crate) fn describe(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Token(_) | Revocation::Session(_) => revocation.to_string(),
        Revocation::User { before, .. } => {
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(before.as_secs()));
            format!("{revocation} (tokens issued up to {at})")
        }
    }
}

/// Adds `user`; its audit record, or `None` when the id is taken.
pub(crate) fn add_user(store: &dyn UserStore, user: &User, via: Via) -> Result<Option<Entry>, StoreError> {
    if !store.add_user(user)? {
        return Ok(None);
    }
    let detail = format!("{}: user added with roles [{}]", via.as_str(), user.roles.join(", "));
    Ok(Some(account(&user.id, &detail, user.created)))
}

/// Replaces `id`'s roles; the audit record, or `None` when there is no
/// such user.
pub(crate) fn set_roles(
    store: &dyn UserStore,
    id: &str,
    roles: &[String],
    via: Via,
    now: Timestamp,
) -> Result<Option<Entry>, StoreError> {
    if !store.set_roles(id, roles)? {
        return Ok(None);
    }
    Ok(Some(account(id, &format!("{}: roles set to [{}]", via.as_str(), roles.join(", ")), now)))
}

/// Removes `id`, ending their sessions in the same transaction (a running
/// server closes their sockets with 4003 and refuses their refresh
/// tokens): how many ended and the audit record, or `None` when there is
/// no such user.
pub(crate) fn remove_user(
    store: &dyn UserStore,
    id: &str,
    via: Via,
    now: Timestamp,
) -> Result<Option<(usize, Entry)>, StoreError> {
    let Some(ended) = store.remove_user(id, now)? else { return Ok(None) };
    let detail = format!("{}: user removed, {} login session(s) ended", via.as_str(), ended.len());
    Ok(Some((ended.len(), account(id, &detail, now))))
}

/// The audit record of an operator's change to `user`'s account.
fn account(user: &str, detail: &str, now: Timestamp) -> Entry {
    Entry::new(now, audit::Kind::AdminAction, detail).user(Some(user))
}

#[cfg(test)]
mod tests {
    use palisade_core::store::AuditStore as _;
    use palisade_store::Sqlite;

    use super::*;

    fn store() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn an_operators_ban_keeps_the_subjects_strikes_and_says_what_it_replaced() {
        let (_dir, store) = store();
        let now = Timestamp::from_secs(1_000);
        let subject: Subject = "user:mallory".parse().unwrap();
        let until = Some(now.saturating_add(Duration::from_secs(60)));
        let first = ban(&store, subject.clone(), until, "spam".into(), Duration::from_secs(3600), now).unwrap();
        assert_eq!((first.ban.strikes, first.replaced.is_none()), (1, true));
        let second = ban(&store, subject.clone(), None, String::new(), Duration::from_secs(3600), now).unwrap();
        assert_eq!(second.replaced.map(|b| b.until), Some(until));
        assert_eq!(second.ban.source, BanSource::Operator);
        let (lifted, entry) = lift(&store, &subject, Via::Api, now).unwrap();
        assert!(lifted);
        assert_eq!(entry.detail, "api: ban lifted by an operator");
        assert!(!lift(&store, &subject, Via::Cli, now).unwrap().0);
    }

    #[test]
    fn a_ban_is_permanent_or_has_a_length_above_zero_never_both() {
        let now = Timestamp::from_secs(10);
        let minute = Some(Duration::from_secs(60));
        assert_eq!(until(now, None, true), Some(None));
        assert_eq!(until(now, minute, false), Some(Some(Timestamp::from_secs(70))));
        for refused in [until(now, None, false), until(now, minute, true), until(now, Some(Duration::ZERO), false)] {
            assert_eq!(refused, None);
        }
    }

    #[test]
    fn a_revocation_is_described_the_same_from_either_door() {
        let (_dir, store) = store();
        let now = Timestamp::from_secs(1_000);
        let token = Revocation::Token("jti-1".into());
        assert_eq!(revoke(&store, &token, "", Via::Api, now).unwrap().entry.detail, "api: revoked token:jti-1");
        let user = palisade_core::auth::user_revocation("dave", Timestamp::from_secs(0)).unwrap();
        let revoked = revoke(&store, &user, "stolen laptop", Via::Cli, now).unwrap();
        assert_eq!(
            revoked.entry.detail,
            "cli: revoked user:dave (tokens issued up to 1970-01-01T00:00:00Z); 0 login session(s) ended; \
             reason: stolen laptop"
        );
        assert!(end_session(&store, "sid_none", Via::Api, now).unwrap().is_none());
        // Nothing was appended: the caller records the entries.
        assert!(store.head().unwrap().is_none());
    }

    #[test]
    fn user_actions_refuse_a_taken_or_missing_id() {
        let (_dir, store) = store();
        let now = Timestamp::from_secs(1_000);
        let user = User {
            id: "erin".into(),
            roles: vec!["student".into()],
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            created: now,
        };
        assert_eq!(add_user(&store, &user, Via::Cli).unwrap().unwrap().detail, "cli: user added with roles [student]");
        assert!(add_user(&store, &user, Via::Cli).unwrap().is_none());
        let roles = ["teacher".to_owned()];
        assert!(set_roles(&store, "erin", &roles, Via::Cli, now).unwrap().is_some());
        assert!(set_roles(&store, "nobody", &roles, Via::Cli, now).unwrap().is_none());
        assert_eq!(remove_user(&store, "erin", Via::Cli, now).unwrap().map(|(n, _)| n), Some(0));
        assert!(remove_user(&store, "erin", Via::Cli, now).unwrap().is_none());
    }
}
