//! The admin listener's credential decisions (docs/ARCHITECTURE.md, "Admin
//! listener and metrics"): which bearer value a request presents, whether
//! it is a configured API key, and whether a verified token's roles make
//! it an administrator's. The server performs them; nothing here does I/O.

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::auth::Identity;

/// The configured admin API keys, kept only as SHA-256 digests.
///
/// Comparing digests instead of the keys makes every comparison the same
/// length, so neither a key's bytes nor its length leaks through timing,
/// and the keys themselves are not kept in memory past loading.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    /// The keys, digested.
    pub fn new<S: AsRef<[u8]>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self(keys.into_iter().map(|k| digest(k.as_ref())).collect())
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `presented` is one of the keys. [`check_api_key`].
    pub fn check(&self, presented: &str) -> bool {
        check_api_key(presented, self)
    }
}

impl std::fmt::Debug for ApiKeys {
    // Digests of secrets are still nobody's business in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.0.len())
    }
}

/// Whether `presented` is one of `keys`, in time that depends only on how
/// many keys there are: every key is compared, and the answers are combined
/// without branching, so which key matched (or how close a guess came)
/// cannot be read from the time taken.
pub fn check_api_key(presented: &str, keys: &ApiKeys) -> bool {
    let presented = digest(presented.as_bytes());
    let mut matched = Choice::from(0);
    for key in &keys.0 {
        matched |= key.ct_eq(&presented);
    }
    bool::from(matched)
}

/// The one bearer value among a request's `Authorization` headers: `None`
/// when there is none, more than one, another scheme, or an empty value,
/// all of which the admin listener answers the same way (401).
pub fn bearer<'a>(authorization: &[&'a str]) -> Option<&'a str> {
    let [header] = authorization else { return None };
    let (scheme, rest) = header.trim().split_once(' ')?;
    let value = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !value.is_empty()).then_some(value)
}

/// Whether a verified token's own roles include `role` (`admin.admin_role`).
/// `auth.default_roles` do not count: they are every user's, and an admin
/// must be named as one in the token.
pub fn is_admin(identity: &Identity, role: &str) -> bool {
    !role.is_empty() && identity.roles.iter().any(|r| r == role)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_key_passes_and_nothing_else_does() {
        let keys = ApiKeys::new(["first-admin-key-0123456789abcdef", "second-admin-key-0123456789abcdef"]);
        assert!(check_api_key("first-admin-key-0123456789abcdef", &keys));
        assert!(keys.check("second-admin-key-0123456789abcdef"));
        for wrong in [
            "",
            "first-admin-key-0123456789abcde",
            "first-admin-key-0123456789abcdef ",
            "FIRST-admin-key-0123456789abcdef",
        ] {
            assert!(!keys.check(wrong), "{wrong:?}");
        }
        assert!(!ApiKeys::default().check(""), "no keys: nothing passes, not even the empty string");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let shown = format!("{:?}", ApiKeys::new(["secret-admin-key-0123456789abcdef"]));
        assert_eq!(shown, "ApiKeys(1 configured)");
    }

    #[test]
    fn bearer_takes_exactly_one_non_empty_bearer_value() {
        assert_eq!(bearer(&["Bearer abc"]), Some("abc"));
        assert_eq!(bearer(&["bearer   abc  "]), Some("abc"));
        assert_eq!(bearer(&[]), None);
        assert_eq!(bearer(&["Bearer a", "Bearer a"]), None, "two headers are ambiguous");
        assert_eq!(bearer(&["Basic YWRtaW46YWRtaW4="]), None);
        assert_eq!(bearer(&["Bearer "]), None);
        assert_eq!(bearer(&["Bearer"]), None);
    }

    #[test]
    fn only_the_tokens_own_roles_make_an_admin() {
        let identity = |roles: &[&str]| Identity {
            user_id: "u".into(),
            name: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            rooms: None,
            expires_at: crate::Timestamp::from_millis(0),
            token_id: None,
            issued_at: None,
            session_id: None,
            device: None,
            external_issuer: None,
        };
        assert!(is_admin(&identity(&["user", "admin"]), "admin"));
        assert!(!is_admin(&identity(&["user"]), "admin"));
        assert!(!is_admin(&identity(&["administrator"]), "admin"));
        assert!(!is_admin(&identity(&[""]), ""), "an empty role names nobody");
    }
}
