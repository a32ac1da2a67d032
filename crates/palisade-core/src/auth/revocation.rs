//! Revoked tokens: one token by its `jti`, every token of one login
//! session by its `sid`, or every token of a user issued before an instant. Checked at the handshake, on `refresh`, and on every
//! live connection when the list changes (docs/ARCHITECTURE.md,
//! "Revocation").

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::Timestamp;
use crate::auth::{Identity, check_sub};

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The token with this `jti`.
    Token(String),
    /// Every token minted for the login session with this `sid`.
    Session(String),
    /// Every token of `user` issued before `before` (a token without `iat`
    /// counts as issued before anything).
    User {
        /// The token's `sub`.
        user: String,
        /// Tokens issued at or after this still pass.
        before: Timestamp,
    },
}

impl Revocation {
    /// Whether `identity`'s token is revoked by this. `iat` has whole
    /// seconds, so a token from the revocation's own second is revoked too:
    /// the doubt goes against the token.
    pub fn covers(&self, identity: &Identity) -> bool {
        match self {
            Self::Token(jti) => identity.token_id.as_deref() == Some(jti.as_str()),
            Self::Session(sid) => identity.session_id.as_deref() == Some(sid.as_str()),
            Self::User { user, before } => {
                *user == identity.user_id && identity.issued_at.is_none_or(|iat| iat.as_secs() <= before.as_secs())
            }
        }
    }
}

impl fmt::Display for Revocation {
    /// `token:JTI`, `session:SID` or `user:ID`, as the CLI and the store
    /// write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(jti) => write!(f, "token:{jti}"),
            Self::Session(sid) => write!(f, "session:{sid}"),
            Self::User { user, .. } => write!(f, "user:{user}"),
        }
    }
}

/// A `jti` the CLI accepts: what `palisade token` mints and what external
/// issuers commonly use.
pub fn check_jti(jti: &str) -> Result<(), InvalidJti> {
    let ok = (1..=128).contains(&jti.len()) && jti.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(InvalidJti) }
}

/// A `jti` that is empty, too long or not visible ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token id is 1-128 visible ASCII characters")]
pub struct InvalidJti;

impl FromStr for Revocation {
    type Err = InvalidJti;

    /// `token:JTI` or `session:SID` (a session id follows the `jti`
    /// rules); a user's revocation needs its instant.
    fn from_str(s: &str) -> Result<Self, InvalidJti> {
        if let Some(sid) = s.strip_prefix("session:") {
            return check_jti(sid).map(|()| Self::Session(sid.to_owned()));
        }
        let jti = s.strip_prefix("token:").ok_or(InvalidJti)?;
        check_jti(jti).map(|()| Self::Token(jti.to_owned()))
    }
}

/// The revocations in force, checked on every handshake and `refresh`.
///
/// Every reload is a whole read of the store, and two may race: the poll's
/// read can begin before a revocation is written and finish after the
/// writer's own reload put it in force. Each read is marked when it begins
/// ([`Revocations::mark`]), and a read that began before the one in force
/// is stale and ignored, so a revocation just written is never dropped.
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
    /// Counts reads begun: the order of [`RevocationMark`]s.
    reads: AtomicU64,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Inner {
    tokens: HashSet<String>,
    sessions: HashSet<String>,
    users: HashMap<String, Timestamp>,
    /// The mark of the read in force.
    applied: u64,
}

/// Where a read of the store began, among the reads
/// ([`Revocations::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationMark(u64);

impl Revocations {
    /// Whether `identity`'s token is revoked.
    pub fn is_revoked(&self, identity: &Identity) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        identity.token_id.as_ref().is_some_and(|jti| inner.tokens.contains(jti))
            || identity.session_id.as_ref().is_some_and(|sid| inner.sessions.contains(sid))
            || inner.users.get(&identity.user_id).is_some_and(|before| {
                Revocation::User { user: identity.user_id.clone(), before: *before }.covers(identity)
            })
    }

    /// Replaces the list with one read just now, newer than any read in
    /// flight; `true` if anything was added, so live connections must check
    /// themselves again.
    pub fn replace(&self, list: Vec<Revocation>) -> bool {
        self.replace_read(list, self.mark())
    }

    /// Taken before reading the store for [`Revocations::replace_read`].
    pub fn mark(&self) -> RevocationMark {
        RevocationMark(self.reads.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Replaces the list with `list`, the store's as read after `mark`,
    /// unless a read that began later is in force already (this one may
    /// lack what was written since); `true` if anything was added.
    pub fn replace_read(&self, list: Vec<Revocation>, mark: RevocationMark) -> bool {
        let mut next = Inner { applied: mark.0, ..Inner::default() };
        for revocation in list {
            match revocation {
                Revocation::Token(jti) => {
                    next.tokens.insert(jti);
                }
                Revocation::Session(sid) => {
                    next.sessions.insert(sid);
                }
                Revocation::User { user, before } => {
                    let at = next.users.entry(user).or_insert(before);
                    *at = (*at).max(before);
                }
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if mark.0 < inner.applied {
            return false;
        }
        let added = next.tokens.iter().any(|t| !inner.tokens.contains(t))
            || next.sessions.iter().any(|s| !inner.sessions.contains(s))
            || next.users.iter().any(|(u, before)| inner.users.get(u).is_none_or(|old| before > old));
        *inner = next;
        added
    }
}

/// A user id for a revocation, by the `sub` rules.
pub fn user_revocation(user: &str, before: Timestamp) -> Result<Revocation, crate::auth::IdentityError> {
    check_sub(user).map(|()| Revocation::User { user: user.to_owned(), before })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testkit::T0;

    fn who(user: &str, jti: Option<&str>, iat: Option<Timestamp>) -> Identity {
        who_in(user, jti, iat, None)
    }

    fn who_in(user: &str, jti: Option<&str>, iat: Option<Timestamp>, sid: Option<&str>) -> Identity {
        Identity {
            user_id: user.into(),
            name: user.into(),
            roles: Vec::new(),
            rooms: None,
            expires_at: T0.saturating_add(Duration::from_secs(900)),
            token_id: jti.map(Into::into),
            issued_at: iat,
            session_id: sid.map(Into::into),
            device: None,
            external_issuer: None,
        }
    }

    #[test]
    fn a_token_or_every_earlier_token_of_a_user() {
        let list = Revocations::default();
        assert!(list.replace(vec![Revocation::Token("t1".into()), user_revocation("alice", T0).unwrap(),]));
        assert!(list.is_revoked(&who("bob", Some("t1"), Some(T0))), "by jti, whoever holds it");
        assert!(!list.is_revoked(&who("bob", Some("t2"), Some(T0))));
        let before = T0.saturating_sub(Duration::from_secs(60));
        assert!(list.is_revoked(&who("alice", Some("t3"), Some(before))));
        assert!(list.is_revoked(&who("alice", Some("t3"), Some(T0))), "the same second is revoked too");
        assert!(list.is_revoked(&who("alice", None, None)), "no iat: revoked");
        let after = T0.saturating_add(Duration::from_secs(1));
        assert!(!list.is_revoked(&who("alice", Some("t4"), Some(after))), "a token issued later passes");
        // Reloading the same list adds nothing; lifting is a replace too.
        assert!(!list.replace(vec![Revocation::Token("t1".into()), user_revocation("alice", T0).unwrap()]));
        assert!(!list.replace(Vec::new()));
        assert!(!list.is_revoked(&who("bob", Some("t1"), Some(T0))));
    }

    #[test]
    fn a_stale_read_never_drops_a_revocation_just_written() {
        let list = Revocations::default();
        // The poll marks and starts reading; a revocation is written, and
        // its writer reloads; the poll's read, from before the write,
        // finishes last.
        let poll = list.mark();
        let writer = list.mark();
        assert!(list.replace_read(vec![Revocation::Token("t1".into())], writer));
        assert!(!list.replace_read(Vec::new(), poll), "stale: ignored");
        assert!(list.is_revoked(&who("bob", Some("t1"), Some(T0))));
        // A read that began after the write has the store's word, lifts
        // included.
        let next = list.mark();
        assert!(!list.replace_read(Vec::new(), next));
        assert!(!list.is_revoked(&who("bob", Some("t1"), Some(T0))));
    }

    #[test]
    fn a_session_covers_every_token_minted_for_it() {
        let list = Revocations::default();
        assert!(list.replace(vec!["session:s_1".parse().unwrap()]));
        assert!(list.is_revoked(&who_in("alice", Some("t1"), Some(T0), Some("s_1"))));
        assert!(list.is_revoked(&who_in("alice", Some("t2"), Some(T0), Some("s_1"))), "a later token too");
        assert!(!list.is_revoked(&who_in("alice", Some("t3"), Some(T0), Some("s_2"))), "another session");
        assert!(!list.is_revoked(&who("alice", Some("t1"), Some(T0))), "a token of no session");
    }

    #[test]
    fn text_forms() {
        assert_eq!("session:s_1".parse::<Revocation>().unwrap().to_string(), "session:s_1");
        assert!("session:".parse::<Revocation>().is_err());
        assert_eq!("token:abc".parse::<Revocation>().unwrap(), Revocation::Token("abc".into()));
        assert!("token:".parse::<Revocation>().is_err());
        assert!("token:a b".parse::<Revocation>().is_err());
        assert!("user:alice".parse::<Revocation>().is_err(), "a user's revocation needs its instant");
        assert!(user_revocation("a b", T0).is_err());
        assert_eq!(user_revocation("alice", T0).unwrap().to_string(), "user:alice");
    }
}
