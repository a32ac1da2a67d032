//! Which browser origins may open a socket (the cross-site WebSocket
//! hijacking defence).
//!
//! An allowlist entry is either exact (`https://app.example.com`) or a
//! pattern with one wildcard label (`https://*.example.com` matches
//! `https://a.example.com`, not `https://example.com` nor
//! `https://a.b.example.com`) and/or a wildcard port (`http://localhost:*`).
//! Comparison is case-insensitive on scheme and host, exact on everything
//! else; an origin with a path, userinfo or anything unexpected never matches.

/// A parsed allowlist.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    rules: Vec<OriginRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: String,
    /// Host after the wildcard label, e.g. `example.com` for `*.example.com`.
    host: String,
    wildcard_label: bool,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    /// No port in the origin (the scheme's default).
    Default,
    Exact(u16),
    Any,
}

/// A malformed allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not a valid origin or origin pattern: {why}")]
pub struct OriginRuleError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// How the client authenticates, which decides whether a missing `Origin`
/// header is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A bearer token in a header, subprotocol or query: not sent
    /// automatically by browsers, so a missing Origin is a non-browser client.
    Bearer,
    /// An ambient credential (cookie) that a browser attaches on its own.
    Ambient,
}

/// Why an origin was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// The Origin header is not on the allowlist (or is `null`).
    #[error("origin not allowed")]
    NotAllowed,
    /// A cookie session without an Origin header.
    #[error("origin required for cookie sessions")]
    Missing,
}

impl OriginPolicy {
    /// Parses allowlist entries; the error names the first bad entry.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, OriginRuleError> {
        let rules = entries.iter().map(|e| parse_rule(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Decides whether a request with this `Origin` header may connect.
    pub fn check(&self, origin: Option<&str>, credential: CredentialKind) -> Result<(), OriginError> {
        let Some(origin) = origin else {
            return match credential {
                CredentialKind::Bearer => Ok(()),
                CredentialKind::Ambient => Err(OriginError::Missing),
            };
        };
        // One lower-case copy, which the parsed parts borrow; a header too
        // long to be an origin is refused before it is copied.
        if origin.len() > MAX_ORIGIN {
            return Err(OriginError::NotAllowed);
        }
        let lower = origin.to_ascii_lowercase();
        let Some(parsed) = parse_origin(&lower) else {
            return Err(OriginError::NotAllowed);
        };
        if self.rules.iter().any(|r| r.matches(&parsed)) { Ok(()) } else { Err(OriginError::NotAllowed) }
    }
}

struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl OriginRule {
    fn matches(&self, o: &Origin<'_>) -> bool {
        if o.scheme != self.scheme {
            return false;
        }
        let host_ok = if self.wildcard_label {
            o.host.strip_suffix(&self.host).and_then(|rest| rest.strip_suffix('.')).is_some_and(is_label)
        } else {
            o.host == self.host
        };
        let port_ok = match self.port {
            PortRule::Default => o.port.is_none(),
            PortRule::Exact(p) => o.port == Some(p),
            PortRule::Any => true,
        };
        host_ok && port_ok
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_host(s: &str) -> bool {
    // Bracketed IPv6 literals are hosts too (`http://[::1]:8080`).
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !s.is_empty() && s.split('.').all(is_label)
}

fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    matches!(scheme, "http" | "https").then_some((scheme, rest))
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    // The last colon separates the port, unless it sits inside [IPv6].
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    }
}

/// Longest `Origin` header read (a DNS name is at most 253 characters).
const MAX_ORIGIN: usize = 255;

/// `lower`: the header, lower-cased and length-checked by the caller.
fn parse_origin(lower: &str) -> Option<Origin<'_>> {
    let (scheme, authority) = split_scheme(lower)?;
    let (host, port) = split_port(authority);
    if !is_host(host) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some(Origin { scheme, host, port })
}

fn parse_rule(entry: &str) -> Result<OriginRule, OriginRuleError> {
    let err = |why| OriginRuleError { entry: entry.to_owned(), why };
    let lower = entry.trim().to_ascii_lowercase();
    let (scheme, authority) = split_scheme(&lower).ok_or_else(|| err("must start with http:// or https://"))?;
    let (host, port) = split_port(authority);
    let (wildcard_label, host) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    if !is_host(host) {
        return Err(err("host must be a DNS name or IP address with no path"));
    }
    if wildcard_label && !host.contains('.') {
        return Err(err("a wildcard needs at least two labels after it, as in *.example.com"));
    }
    let port = match port {
        None => PortRule::Default,
        Some("*") => PortRule::Any,
        Some(p) => PortRule::Exact(p.parse().map_err(|_| err("port must be a number or *"))?),
    };
    Ok(OriginRule { scheme: scheme.to_owned(), host: host.to_owned(), wildcard_label, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialKind::{Ambient, Bearer};

    fn policy(entries: &[&str]) -> OriginPolicy {
        OriginPolicy::new(entries).unwrap()
    }

    #[test]
    fn exact_entries_match_only_themselves() {
        let p = policy(&["https://app.example.com"]);
        assert!(p.check(Some("https://app.example.com"), Bearer).is_ok());
        assert!(p.check(Some("HTTPS://APP.EXAMPLE.COM"), Bearer).is_ok());
        for bad in [
            "https://evil.example",
            "null",
            "https://app.example.com.evil.io",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com/",
            "https://user@app.example.com",
            "",
        ] {
            assert_eq!(p.check(Some(bad), Bearer), Err(OriginError::NotAllowed), "{bad}");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let p = policy(&["https://*.example.com"]);
        assert!(p.check(Some("https://a.example.com"), Bearer).is_ok());
        assert!(p.check(Some("https://a-b.example.com"), Bearer).is_ok());
        for bad in [
            "https://example.com",
            "https://a.b.example.com",
            "https://.example.com",
            "https://aexample.com",
            "https://a.example.com.evil.io",
            "https://evil.io/.example.com",
            "http://a.example.com",
        ] {
            assert!(p.check(Some(bad), Bearer).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_port_for_dev_origins() {
        let p = policy(&["http://localhost:*", "http://[::1]:*"]);
        assert!(p.check(Some("http://localhost:3000"), Bearer).is_ok());
        assert!(p.check(Some("http://localhost"), Bearer).is_ok());
        assert!(p.check(Some("http://[::1]:5173"), Bearer).is_ok());
        assert!(p.check(Some("http://localhost:abc"), Bearer).is_err());
        assert!(p.check(Some("http://localhost.evil.io:3000"), Bearer).is_err());
    }

    #[test]
    fn empty_allowlist_rejects_any_origin_but_allows_headerless_bearer_clients() {
        let p = policy(&[]);
        assert!(p.check(Some("https://app.example.com"), Bearer).is_err());
        assert!(p.check(None, Bearer).is_ok());
        assert_eq!(p.check(None, Ambient), Err(OriginError::Missing));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["example.com", "ftp://x.io", "https://*.com", "https://a.io/path", "https://a.io:x", "null"] {
            let e = OriginPolicy::new(&[bad]).unwrap_err();
            assert_eq!(e.entry, bad);
        }
    }
}
