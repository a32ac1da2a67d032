//! Browser sessions on the admin listener (docs/PROTOCOL.md §1.7, "Admin
//! login"): a dashboard logs in with a password once and then holds an
//! HttpOnly cookie, never a token a page script could read. Each session
//! has its own CSRF token, required on every state-changing call, and a
//! short absolute lifetime; the table is bounded per user and in all.
//! A user at their own cap gives way their own least recently used
//! session, so one user's logins (a viewer's, say) never push anyone
//! else's out; only a full table ends another user's least recently used
//! one.
//!
//! Sessions live in the process only: a restart logs every operator out,
//! which for a short-lived credential is the safe way to fail.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use rand::CryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::AdminRole;
use crate::Timestamp;
use crate::auth::Identity;

/// The admin session cookie.
pub const ADMIN_COOKIE: &str = "palisade_admin";
/// What every admin browser session's id starts with, so an operator's
/// revocation by id tells it from a login session's.
pub const ADMIN_SESSION_PREFIX: &str = "asid_";

/// The request header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One logged-in admin.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// Who, as a token would say it: `session_id` is the session's own id
    /// (`asid_…`) and `issued_at` the login, so a revocation of the user,
    /// or of this session by id, covers it like a token.
    pub identity: Identity,
    /// What the session may do, fixed at login.
    pub role: AdminRole,
    /// The CSRF token to echo in [`CSRF_HEADER`].
    pub csrf: String,
    /// When it ends, whatever its use.
    pub expires: Timestamp,
    last_used: Timestamp,
}

/// What a login hands the browser: the cookie's value and the CSRF token.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The value of [`ADMIN_COOKIE`].
    pub cookie: String,
    /// The session.
    pub session: AdminSession,
}

/// The live admin sessions, keyed by a digest of the cookie so the table
/// holds no credential a memory dump could replay.
#[derive(Debug)]
pub struct AdminSessions {
    by_cookie: HashMap<[u8; 32], AdminSession>,
    max: usize,
    max_per_user: usize,
    lifetime: Duration,
}

impl AdminSessions {
    /// An empty table of at most `max` sessions, and `max_per_user` per
    /// user (each at least one), each living `lifetime`.
    pub fn new(max: usize, max_per_user: usize, lifetime: Duration) -> Self {
        Self { by_cookie: HashMap::new(), max: max.max(1), max_per_user: max_per_user.max(1), lifetime }
    }

    /// Opens a session for `user`'s `identity` at `now`. Ended sessions
    /// go first; then, at the user's own cap, the user's least recently
    /// used session; then, at the table's cap, the least recently used one.
    /// The session id, cookie and CSRF token come from `rng`.
    pub fn open(
        &mut self,
        mut identity: Identity,
        role: AdminRole,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Opened {
        self.by_cookie.retain(|_, s| s.expires > now);
        let user = identity.user_id.clone();
        let own = self.by_cookie.values().filter(|s| s.identity.user_id == user).count();
        if own >= self.max_per_user {
            self.evict_least_recently_used(|s| s.identity.user_id == user);
        } else if self.by_cookie.len() >= self.max {
            self.evict_least_recently_used(|_| true);
        }
        let expires = now.saturating_add(self.lifetime);
        identity.session_id = Some(crate::random_id(ADMIN_SESSION_PREFIX, rng));
        identity.issued_at = Some(now);
        identity.expires_at = expires;
        identity.token_id = None;
        let session = AdminSession { identity, role, csrf: secret(rng), expires, last_used: now };
        let cookie = secret(rng);
        self.by_cookie.insert(digest(&cookie), session.clone());
        Opened { cookie, session }
    }

    /// The live session a cookie names, marked used at `now`; an ended one
    /// is removed and not returned.
    pub fn find(&mut self, cookie: &str, now: Timestamp) -> Option<&AdminSession> {
        let key = digest(cookie);
        if self.by_cookie.get(&key).is_some_and(|s| s.expires <= now) {
            self.by_cookie.remove(&key);
            return None;
        }
        let session = self.by_cookie.get_mut(&key)?;
        session.last_used = now;
        Some(session)
    }

    /// Ends the session a cookie names; whether there was one.
    pub fn close(&mut self, cookie: &str) -> bool {
        self.by_cookie.remove(&digest(cookie)).is_some()
    }

    /// Ends every session `ended` says is over (a revocation, a removed
    /// user); how many ended.
    pub fn close_where(&mut self, mut ended: impl FnMut(&AdminSession) -> bool) -> usize {
        let before = self.by_cookie.len();
        self.by_cookie.retain(|_, s| !ended(s));
        before - self.by_cookie.len()
    }

    /// Ends the least recently used session of those `which` picks.
    fn evict_least_recently_used(&mut self, which: impl Fn(&AdminSession) -> bool) {
        let oldest = self.by_cookie.iter().filter(|(_, s)| which(s)).min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k);
        if let Some(oldest) = oldest {
            self.by_cookie.remove(&oldest);
        }
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.by_cookie.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }
}

impl AdminSession {
    /// Whether `presented` is this session's CSRF token, compared in
    /// constant time.
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// 256 random bits, base64url.
fn secret(rng: &mut impl CryptoRng) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::rng;

    const LIFETIME: Duration = Duration::from_secs(30 * 60);

    fn identity(user: &str) -> Identity {
        Identity {
            user_id: user.into(),
            name: user.into(),
            roles: vec!["admin".into()],
            rooms: None,
            expires_at: Timestamp::from_millis(0),
            token_id: Some("jti-of-nothing".into()),
            issued_at: None,
            session_id: None,
            device: None,
            external_issuer: None,
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_ends() {
        let mut table = AdminSessions::new(8, 8, LIFETIME);
        let mut rng = rng();
        let t0 = Timestamp::from_secs(1_000);
        let opened = table.open(identity("ops"), AdminRole::Operator, t0, &mut rng);
        assert_eq!(opened.cookie.len(), 43, "256 bits of base64url");
        assert_ne!(opened.cookie, opened.session.csrf);
        let sid = opened.session.identity.session_id.clone().unwrap();
        assert!(sid.starts_with("asid_"));
        assert_eq!(opened.session.identity.issued_at, Some(t0));
        assert_eq!(opened.session.identity.token_id, None, "a session is no token");

        let found = table.find(&opened.cookie, t0.saturating_add(LIFETIME - Duration::from_millis(1))).unwrap();
        assert_eq!((found.identity.user_id.as_str(), found.role), ("ops", AdminRole::Operator));
        assert!(table.find("another-cookie", t0).is_none());
        assert!(table.find(&opened.cookie, t0.saturating_add(LIFETIME)).is_none(), "ends at its lifetime");
        assert!(table.is_empty(), "an ended session is dropped when met");
    }

    #[test]
    fn the_csrf_token_must_be_echoed_exactly() {
        let mut table = AdminSessions::new(8, 8, LIFETIME);
        let mut rng = rng();
        let opened = table.open(identity("ops"), AdminRole::Viewer, Timestamp::from_secs(1), &mut rng);
        let session = &opened.session;
        assert!(session.csrf_matches(Some(&session.csrf)));
        assert!(!session.csrf_matches(None));
        assert!(!session.csrf_matches(Some("")));
        assert!(!session.csrf_matches(Some(&session.csrf[1..])));
        assert!(!session.csrf_matches(Some(&opened.cookie)), "the cookie is not the CSRF token");
    }

    #[test]
    fn at_the_cap_the_least_recently_used_session_gives_way() {
        let mut table = AdminSessions::new(2, 8, LIFETIME);
        let mut rng = rng();
        let t = Timestamp::from_secs;
        let first = table.open(identity("a"), AdminRole::Operator, t(1), &mut rng);
        let second = table.open(identity("b"), AdminRole::Operator, t(2), &mut rng);
        assert!(table.find(&first.cookie, t(3)).is_some(), "a is now the more recently used");
        let third = table.open(identity("c"), AdminRole::Operator, t(4), &mut rng);
        assert_eq!(table.len(), 2);
        assert!(table.find(&second.cookie, t(5)).is_none(), "b gave way");
        assert!(table.find(&first.cookie, t(5)).is_some());
        assert!(table.find(&third.cookie, t(5)).is_some());
    }

    #[test]
    fn ended_sessions_make_room_before_a_live_one_is_evicted() {
        let mut table = AdminSessions::new(2, 8, Duration::from_secs(10));
        let mut rng = rng();
        let t = Timestamp::from_secs;
        let old = table.open(identity("a"), AdminRole::Operator, t(0), &mut rng);
        let live = table.open(identity("b"), AdminRole::Operator, t(5), &mut rng);
        table.find(&old.cookie, t(6));
        let _new = table.open(identity("c"), AdminRole::Operator, t(11), &mut rng);
        assert!(table.find(&live.cookie, t(12)).is_some(), "a's session had ended: b keeps its place");
    }

    #[test]
    fn sessions_end_by_cookie_or_by_predicate() {
        let mut table = AdminSessions::new(8, 8, LIFETIME);
        let mut rng = rng();
        let now = Timestamp::from_secs(1);
        let a = table.open(identity("a"), AdminRole::Operator, now, &mut rng);
        let b = table.open(identity("b"), AdminRole::Viewer, now, &mut rng);
        assert!(table.close(&a.cookie));
        assert!(!table.close(&a.cookie));
        assert_eq!(table.close_where(|s| s.identity.user_id == "b"), 1);
        assert!(table.find(&b.cookie, now).is_none());
    }

    #[test]
    fn one_users_logins_evict_only_that_users_own_sessions() {
        let mut table = AdminSessions::new(4, 2, LIFETIME);
        let mut rng = rng();
        let t = Timestamp::from_secs;
        let ops = table.open(identity("ops"), AdminRole::Operator, t(1), &mut rng);
        let other = table.open(identity("lead"), AdminRole::Operator, t(2), &mut rng);
        // A viewer logs in again and again, filling the table if it could.
        let mut viewer = Vec::new();
        for n in 0..20 {
            viewer.push(table.open(identity("viewer"), AdminRole::Viewer, t(10 + n), &mut rng));
        }
        assert_eq!(table.len(), 4, "two operators and the viewer's own two");
        assert!(table.find(&ops.cookie, t(40)).is_some(), "the least recently used of all, and still there");
        assert!(table.find(&other.cookie, t(41)).is_some());
        assert!(table.find(&viewer[19].cookie, t(42)).is_some());
        assert!(table.find(&viewer[18].cookie, t(43)).is_some());
        assert!(table.find(&viewer[17].cookie, t(44)).is_none(), "the viewer's older ones gave way");
        // A full table still makes room for a new user: the least recently
        // used session of all gives way.
        let new = table.open(identity("new"), AdminRole::Operator, t(50), &mut rng);
        assert_eq!(table.len(), 4);
        assert!(table.find(&new.cookie, t(51)).is_some());
        assert!(table.find(&ops.cookie, t(51)).is_none(), "ops was used least recently (t 40, first)");
    }
}
