//! The admin listener's credential decisions (docs/ARCHITECTURE.md, "Admin
//! listener and metrics"): which bearer value a request presents, whether
//! it is a configured API key, which admin role a verified token's roles
//! give, what a viewer may see of an address, and the browser sessions of
//! [`session`]. The server performs them; nothing here does I/O.

pub mod session;

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::addr::IpKey;
use crate::auth::Identity;

/// What an admin credential may do. `Operator` includes everything a
/// `Viewer` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminRole {
    /// Reads: connections, stats, the audit log, bans, metrics.
    Viewer,
    /// Reads and acts: closes, disconnects, bans, revokes, publishes,
    /// reloads.
    Operator,
}

impl AdminRole {
    /// The name the API answers with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
        }
    }

    /// Whether this role may do what needs `needed`.
    pub fn allows(self, needed: AdminRole) -> bool {
        self >= needed
    }
}

/// The token roles that make their holder an admin (`admin.operator_role`,
/// `admin.viewer_role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoles {
    /// The role that makes an operator.
    pub operator: String,
    /// The role that makes a viewer.
    pub viewer: String,
}

impl AdminRoles {
    /// The admin role of a verified token or a user, read from its own
    /// roles only: `auth.default_roles` are every user's, and an admin
    /// must be named as one. The operator role wins over the viewer role.
    pub fn of(&self, roles: &[String]) -> Option<AdminRole> {
        let has = |wanted: &str| !wanted.is_empty() && roles.iter().any(|r| r == wanted);
        if has(&self.operator) {
            Some(AdminRole::Operator)
        } else if has(&self.viewer) {
            Some(AdminRole::Viewer)
        } else {
            None
        }
    }

    /// [`AdminRoles::of`] a token's identity.
    pub fn of_identity(&self, identity: &Identity) -> Option<AdminRole> {
        self.of(&identity.roles)
    }
}

/// An address as a viewer sees it: its network, not the host (an IPv4
/// /24, an IPv6 /48), so a read-only dashboard shows where traffic comes
/// from without handing out who is behind it. Text that is not an address
/// is withheld whole.
pub fn redact_ip(text: &str) -> String {
    match text.parse::<IpKey>().map(IpKey::addr) {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 80) - 1);
            format!("{}/48", std::net::Ipv6Addr::from(prefix))
        }
        Err(_) => "redacted".to_owned(),
    }
}

/// `text` (an audit record's `detail`) as a viewer may read it: every
/// address in it, bare, as a ban subject (`ip:…`), with a port or as an
/// IPv6 /64, replaced by [`redact_ip`] of it; the rest unchanged. The
/// details are the server's own sentences, so an address is a run of the
/// characters addresses are written with, and a run that is not one stays.
pub fn redact_ips_in(text: &str) -> String {
    let in_address = |c: char| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/' | '[' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(in_address) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c: char| !in_address(c)).unwrap_or(run.len());
        out.push_str(&redact_run(&run[..end]));
        rest = &run[end..];
    }
    out.push_str(rest);
    out
}

/// One run of address characters, its address redacted if it holds one
/// after a separating `:` (`ip:` left it) and before sentence punctuation.
fn redact_run(run: &str) -> String {
    let lead = usize::from(run.starts_with(':'));
    let trimmed = run.trim_end_matches(['.', ':']).len().max(lead);
    for (from, to) in [(0, run.len()), (lead, run.len()), (0, trimmed), (lead, trimmed)] {
        let candidate = &run[from..to];
        let network = if candidate.parse::<IpKey>().is_ok() {
            redact_ip(candidate)
        } else if let Ok(socket) = candidate.parse::<std::net::SocketAddr>() {
            redact_ip(&socket.ip().to_string())
        } else {
            continue;
        };
        return format!("{}{network}{}", &run[..from], &run[to..]);
    }
    run.to_owned()
}

/// Whether a request's `Origin` is the admin listener's own: absent (not a
/// browser's cross-site request), or naming the very host the request was
/// sent to. A cookie-borne admin request from any other page is refused
/// even before its CSRF token is looked at.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    let Some(host) = host else { return false };
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| !a.is_empty() && a.eq_ignore_ascii_case(host))
}

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

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_reads_networks_inside_free_text() {
        for (text, shown) in [
            ("api: banned ip:127.0.0.2 for 15m (by user:root)", "api: banned ip:127.0.0.0/24 for 15m (by user:root)"),
            ("peer 10.1.2.3:5678 refused.", "peer 10.1.2.0/24 refused."),
            ("lifted ip:2001:db8:1:2::/64", "lifted ip:2001:db8:1::/48"),
            ("from ::1, then [2001:db8::7]:443.", "from ::/48, then 2001:db8::/48."),
            ("ban ip:::/64 by api_key", "ban ip:::/48 by api_key"),
            ("added face cafe: 12 deadbeef", "added face cafe: 12 deadbeef"),
            ("user:alice banned", "user:alice banned"),
        ] {
            assert_eq!(redact_ips_in(text), shown, "{text}");
        }
    }

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
    fn only_the_own_roles_make_an_admin_and_the_operator_role_wins() {
        let roles = AdminRoles { operator: "admin".into(), viewer: "viewer".into() };
        let of = |given: &[&str]| roles.of(&given.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>());
        assert_eq!(of(&["user", "admin"]), Some(AdminRole::Operator));
        assert_eq!(of(&["viewer", "admin"]), Some(AdminRole::Operator));
        assert_eq!(of(&["viewer"]), Some(AdminRole::Viewer));
        assert_eq!(of(&["user"]), None);
        assert_eq!(of(&["administrator", "viewers"]), None);
        let unnamed = AdminRoles { operator: String::new(), viewer: String::new() };
        assert_eq!(unnamed.of(&[String::new()]), None, "an empty role names nobody");
    }

    #[test]
    fn an_operator_may_do_what_a_viewer_may_and_not_the_reverse() {
        assert!(AdminRole::Operator.allows(AdminRole::Viewer));
        assert!(AdminRole::Operator.allows(AdminRole::Operator));
        assert!(AdminRole::Viewer.allows(AdminRole::Viewer));
        assert!(!AdminRole::Viewer.allows(AdminRole::Operator));
    }

    #[test]
    fn a_viewer_sees_networks_not_hosts() {
        assert_eq!(redact_ip("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(redact_ip("::ffff:203.0.113.77"), "203.0.113.0/24");
        assert_eq!(redact_ip("2001:db8:1234:5678::/64"), "2001:db8:1234::/48");
        assert_eq!(redact_ip("2001:db8:1234:5678::9"), "2001:db8:1234::/48");
        assert_eq!(redact_ip("not an address"), "redacted");
        assert_eq!(redact_ip(""), "redacted");
    }

    #[test]
    fn only_the_listeners_own_origin_is_same_origin() {
        let host = Some("127.0.0.1:8081");
        assert!(same_origin(None, host), "no Origin: not a cross-site browser request");
        assert!(same_origin(Some("http://127.0.0.1:8081"), host));
        assert!(same_origin(Some("https://127.0.0.1:8081"), host));
        for other in ["http://127.0.0.1:8080", "http://evil.example", "null", "http://", "127.0.0.1:8081"] {
            assert!(!same_origin(Some(other), host), "{other}");
        }
        assert!(!same_origin(Some("http://127.0.0.1:8081"), None), "no Host to compare with");
    }
}
