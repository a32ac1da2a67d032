//! The link policy, shared by the `url` rule and by hrefs inside `html`, so a
//! link that is refused as a field is also refused inside markup.
//!
//! A link must be absolute http(s) with a host that is not blocked and no
//! `user:pass@` (which hides the real host from a reader: `https://bank.example@evil.example`).
//! What passes is re-serialized by the WHATWG parser the browsers share, so
//! clients receive exactly the URL that was checked, not a string another
//! parser might read differently.

use std::collections::HashSet;
use std::sync::Arc;

use ::url::{Host, Url};

/// `url_blocked_hosts`, compiled. Cloning shares the list (the html
/// attribute filter holds a copy).
#[derive(Debug, Clone, Default)]
pub(super) struct BlockedHosts(Arc<Patterns>);

#[derive(Debug, Default)]
struct Patterns {
    /// Serialized hosts (`evil.example`, `127.0.0.1`, `[::1]`).
    exact: HashSet<String>,
    /// `.evil.example` for a pattern `*.evil.example`.
    suffixes: Vec<String>,
}

impl BlockedHosts {
    /// Compiles the patterns; the error names the first bad one.
    pub(super) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut compiled = Patterns::default();
        for pattern in patterns {
            let bad = |why: &str| format!("url_blocked_hosts: `{pattern}` {why}");
            let trimmed = pattern.trim();
            let (wildcard, host) = match trimmed.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, trimmed),
            };
            if host.contains('*') {
                return Err(bad("may only use a wildcard as a leading `*.`"));
            }
            // Parsed like a URL's host, so IDNs, IPv4 forms and case compare
            // the way they will in a link.
            let parsed =
                Host::parse(host.trim_end_matches('.')).map_err(|_| bad("is not a host name or IP address"))?;
            match (wildcard, parsed) {
                (true, Host::Domain(domain)) => compiled.suffixes.push(format!(".{domain}")),
                (true, _) => return Err(bad("puts a wildcard in front of an IP address")),
                (false, host) => {
                    compiled.exact.insert(host.to_string());
                }
            }
        }
        Ok(Self(Arc::new(compiled)))
    }

    fn blocks(&self, host: &str) -> bool {
        // `evil.example.` is the same host as `evil.example` to DNS.
        let host = host.trim_end_matches('.');
        self.0.exact.contains(host) || self.0.suffixes.iter().any(|s| host.ends_with(s.as_str()))
    }
}

/// The `url` rule: `None` if the link fails the policy, otherwise the
/// normalized link if it differs from the input.
pub(super) fn check(input: &str, blocked: &BlockedHosts) -> Option<Option<String>> {
    let normalized = allowed(input, blocked)?;
    Some((normalized != input).then_some(normalized))
}

/// The normalized link, if it passes the policy.
pub(super) fn allowed(input: &str, blocked: &BlockedHosts) -> Option<String> {
    let url = Url::parse(input).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    match url.host_str() {
        Some(host) if !host.is_empty() && !blocked.blocks(host) => {}
        _ => return None,
    }
    // Accept only a serialization that parses back to itself: then the rule
    // is idempotent, and no second parser can find a different URL in it.
    let out = String::from(url);
    match Url::parse(&out) {
        Ok(again) if again.as_str() == out => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(patterns: &[&str]) -> BlockedHosts {
        BlockedHosts::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn only_absolute_http_links_without_userinfo() {
        let none = BlockedHosts::default();
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "ftp://files.example/x",
            "file:///etc/passwd",
            "http://user:pw@host.example/",
            "https://bank.example@evil.example/",
            "https://user@host.example/",
            "/relative/path",
            "//protocol-relative.example/",
            "http://",
            "",
            "not a url",
        ] {
            assert_eq!(check(bad, &none), None, "{bad:?}");
        }
    }

    #[test]
    fn good_links_come_back_normalized_only_when_they_change() {
        let none = BlockedHosts::default();
        assert_eq!(check("https://ok.example/a?b=c#d", &none), Some(None));
        assert_eq!(check("HTTPS://OK.Example", &none), Some(Some("https://ok.example/".to_owned())));
        assert_eq!(check("http://ok.example/a b", &none), Some(Some("http://ok.example/a%20b".to_owned())));
        assert_eq!(check("https://bücher.example/", &none), Some(Some("https://xn--bcher-kva.example/".to_owned())));
    }

    #[test]
    fn blocked_hosts_exact_and_suffix() {
        let b = blocked(&["Evil.Example", "*.tracker.example", "10.0.0.1", "[::1]"]);
        for bad in [
            "https://evil.example/",
            "https://EVIL.example./x",
            "https://a.tracker.example/",
            "https://a.b.tracker.example/",
            "http://10.0.0.1/",
            "http://0x0a.0.0.1/",
            "http://[::1]:8080/",
            "http://%65vil.example/",
        ] {
            assert_eq!(check(bad, &b), None, "{bad}");
        }
        for good in ["https://tracker.example/", "https://notevil.example/", "https://evil.example.org/"] {
            assert_eq!(check(good, &b), Some(None), "{good}");
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for bad in ["", "*", "a.*.example", "*.10.0.0.1", "evil.example/path", "evil.example:80", "ev il.example"] {
            let err = BlockedHosts::new(&[bad.to_owned()]).unwrap_err();
            assert!(err.starts_with("url_blocked_hosts: `"), "{err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
