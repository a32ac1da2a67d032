//! The link policy, shared by the `url` rule and by hrefs inside `html`, so a
//! link that is refused as a field is also refused inside markup.
//!
//! A link must be absolute http(s) with a host that is not blocked and no
//! `user:pass@` (which hides the real host from a reader: `https://bank.example@evil.example`).
//! What passes is re-serialized by the WHATWG parser the browsers share, so
//! clients receive exactly the URL that was checked, not a string another
//! parser might read differently.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ::url::{Host, Url};

/// `url_blocked_hosts`, compiled. Cloning shares the list (the html
/// attribute filter holds a copy).
#[derive(Debug, Clone, Default)]
pub(super) struct BlockedHosts(Arc<Patterns>);

#[derive(Debug, Default)]
struct Patterns {
    /// Domain names, as the URL parser serializes them (`evil.example`).
    exact: HashSet<String>,
    /// Addresses, in their [`canonical`] form.
    addresses: HashSet<IpAddr>,
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
                (false, Host::Domain(domain)) => {
                    compiled.exact.insert(domain);
                }
                (false, Host::Ipv4(ip)) => {
                    compiled.addresses.insert(canonical(IpAddr::V4(ip)));
                }
                (false, Host::Ipv6(ip)) => {
                    compiled.addresses.insert(canonical(IpAddr::V6(ip)));
                }
            }
        }
        Ok(Self(Arc::new(compiled)))
    }

    fn blocks(&self, host: &Host<&str>) -> bool {
        match *host {
            Host::Domain(domain) => {
                // `evil.example.` is the same host as `evil.example` to DNS.
                let domain = domain.trim_end_matches('.');
                self.0.exact.contains(domain) || self.0.suffixes.iter().any(|s| domain.ends_with(s.as_str()))
            }
            // Addresses compare as numbers, so no spelling of a blocked one
            // (`[::ffff:10.0.0.1]` for `10.0.0.1`) gets through.
            Host::Ipv4(ip) => self.0.addresses.contains(&canonical(IpAddr::V4(ip))),
            Host::Ipv6(ip) => self.0.addresses.contains(&canonical(IpAddr::V6(ip))),
        }
    }
}

/// One address per host an address reaches: IPv6 forms that carry an IPv4
/// address and reach it become that IPv4 address. The URL parser already
/// folds decimal, octal and hex IPv4 spellings (`0x0a.0.0.1`, `167772161`)
/// into dotted quads; what it keeps apart are these IPv6 spellings:
/// IPv4-mapped `::ffff:a.b.c.d` (a dual-stack socket connects to the IPv4
/// host), IPv4-compatible `::a.b.c.d` (deprecated, still routed by some
/// stacks) and the NAT64 well-known prefix `64:ff9b::a.b.c.d` (RFC 6052,
/// translated to the IPv4 host by the network).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let [a, b, c, d, e, f, g, h] = v6.segments();
    let embedded = Ipv4Addr::from((u32::from(g) << 16) | u32::from(h));
    match [a, b, c, d, e, f] {
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0] if v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST => IpAddr::V4(embedded),
        [0x64, 0xff9b, 0, 0, 0, 0] => IpAddr::V4(embedded),
        _ => ip,
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
    match url.host() {
        Some(Host::Domain("")) | None => return None,
        Some(host) if blocked.blocks(&host) => return None,
        Some(_) => {}
    }
    // Accept only a serialization that parses back to itself: then the rule
    // is idempotent, and no second parser can find a different URL in it.
    let out = String::from(url);
    // Already in that form (most links are), it is what was just parsed.
    if out == input {
        return Some(out);
    }
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
    fn a_blocked_address_is_blocked_in_every_spelling() {
        let b = blocked(&["10.0.0.1", "[::ffff:192.168.1.1]", "[fd00::1]"]);
        for bad in [
            "https://10.0.0.1/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:a00:1]/",
            "https://[0:0:0:0:0:ffff:10.0.0.1]/",
            "https://[::10.0.0.1]/",
            "https://[64:ff9b::10.0.0.1]/",
            "https://167772161/",
            "https://0x0a000001/",
            "https://012.0.0.1/",
            "https://10.1/",
            "https://10.0.0.1./",
            "https://192.168.1.1/",
            "https://[::ffff:c0a8:101]/",
            "https://[FD00:0:0::1]/",
        ] {
            assert_eq!(check(bad, &b), None, "{bad}");
        }
        for good in ["https://10.0.0.2/", "https://[::ffff:10.0.0.2]/", "https://[::1]/", "https://[fd00::2]/"] {
            assert!(check(good, &b).is_some(), "{good}");
        }
        // `::` and `::1` are IPv6's own addresses, not IPv4 0.0.0.0 and 0.0.0.1.
        let zero = blocked(&["0.0.0.0", "0.0.0.1"]);
        assert!(check("https://[::1]/", &zero).is_some());
        assert!(check("https://[::]/", &zero).is_some());
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
