//! Origin: handshakes from origins an allowlist must refuse (the variants
//! STEWS tries, and the suffix/prefix tricks a careless `endsWith` or
//! regex lets through). Each probe carries the user's credentials, so what
//! is tested is the Origin check, not authentication (docs/SCAN.md,
//! "origin").

use crate::ScanError;
use crate::finding::{Rule, Severity};
use crate::{Options, checks::Scan, checks::describe};

/// No `Origin` header, bearer credentials: what every non-browser client
/// sends, so only worth knowing.
pub(crate) const ABSENT: Rule = Rule {
    id: "origin.absent-accepted",
    severity: Severity::Info,
    title: "a handshake without an Origin header is accepted",
    fix: "fine for bearer tokens (non-browser clients send no Origin); refuse it for cookie sessions",
};
/// No `Origin` with a cookie: a cookie must come from a page on an allowed origin.
pub(crate) const ABSENT_COOKIE: Rule = Rule {
    id: "origin.absent-accepted-with-cookie",
    severity: Severity::Medium,
    title: "a cookie-authenticated handshake without an Origin header is accepted",
    fix: "require an allowed Origin on every handshake a cookie authenticates",
};
/// `Origin: null` (sandboxed iframes, `file://`, redirects).
pub(crate) const NULL: Rule = Rule {
    id: "origin.null-accepted",
    severity: Severity::High,
    title: "a handshake from Origin: null is accepted",
    fix: "never allow the origin null: any sandboxed iframe can send it",
};
/// An unrelated origin.
pub(crate) const FOREIGN: Rule = Rule {
    id: "origin.foreign-accepted",
    severity: Severity::High,
    title: "a handshake from a foreign origin is accepted (cross-site WebSocket hijacking)",
    fix: "check Origin against an allowlist of exact origins before the 101",
};
/// `https://allowed.example.evil.invalid`: a `startsWith` check.
pub(crate) const SUFFIX: Rule = Rule {
    id: "origin.suffix-accepted",
    severity: Severity::High,
    title: "an origin that only starts with the allowed host is accepted",
    fix: "compare the whole origin (scheme, host, port) exactly, not a prefix or a regex without anchors",
};
/// `https://evilallowed.example`: an `endsWith` check.
pub(crate) const PREFIX: Rule = Rule {
    id: "origin.prefix-accepted",
    severity: Severity::High,
    title: "an origin that only ends with the allowed host is accepted",
    fix: "compare the whole host exactly; a wildcard must match whole DNS labels",
};
/// `http://` for an allowed `https://` origin (or the reverse).
pub(crate) const SCHEME: Rule = Rule {
    id: "origin.scheme-changed-accepted",
    severity: Severity::Medium,
    title: "the allowed origin with the other scheme (http/https) is accepted",
    fix: "compare the scheme too: a page served over plain http can be injected by anyone on the network",
};
/// The allowed host on another port.
pub(crate) const PORT: Rule = Rule {
    id: "origin.port-changed-accepted",
    severity: Severity::Low,
    title: "the allowed origin on another port is accepted",
    fix: "compare the port too, unless every service on that host is trusted",
};

/// The probes: the rule each would prove and the `Origin` it sends (`None`:
/// no header). The variants built from `--origin` are left out without it.
fn variants(options: &Options) -> Vec<(&'static Rule, Option<String>)> {
    let absent = if options.cookie.is_some() { &ABSENT_COOKIE } else { &ABSENT };
    let mut out = vec![
        (absent, None),
        (&NULL, Some("null".to_owned())),
        (&FOREIGN, Some("https://palisade-scan.invalid".to_owned())),
    ];
    let Some(allowed) = options.origin.as_deref().and_then(|o| url::Url::parse(o).ok()) else { return out };
    let Some(host) = allowed.host_str() else { return out };
    let scheme = allowed.scheme();
    let port = allowed.port().map(|p| format!(":{p}")).unwrap_or_default();
    out.push((&SUFFIX, Some(format!("{scheme}://{host}.evil.invalid{port}"))));
    out.push((&PREFIX, Some(format!("{scheme}://evil{host}{port}"))));
    let other = if scheme == "https" { "http" } else { "https" };
    out.push((&SCHEME, Some(format!("{other}://{host}{port}"))));
    let moved = allowed.port_or_known_default().map_or(8443, |p| if p == u16::MAX { p - 1 } else { p + 1 });
    out.push((&PORT, Some(format!("{scheme}://{host}:{moved}"))));
    out
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    if scan.options.origin.is_none() {
        scan.report.skip("origin", "suffix, prefix, scheme and port variants need --origin (the allowed origin)");
    }
    let path = scan.path();
    for (rule, origin) in variants(scan.options) {
        let mut headers = scan.credentials().await?;
        let credentials = describe(&headers);
        if let Some(origin) = &origin {
            headers.push(("Origin".into(), origin.clone()));
        }
        let (_io, answer) = scan.budget.upgrade(&path, &headers).await?;
        if answer.status == 101 {
            let sent = origin.map_or_else(|| "no Origin header".to_owned(), |o| format!("Origin: {o}"));
            scan.found(rule, &format!("sent GET {path} with {sent} ({credentials}); got 101"));
        }
    }
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let mut out: Vec<String> = variants(options)
        .into_iter()
        .map(|(rule, origin)| {
            let sent = origin.map_or_else(|| "no Origin".to_owned(), |o| format!("Origin: {o}"));
            format!("handshake with {sent} and the credentials; a 101 is {}", rule.id)
        })
        .collect();
    if options.origin.is_none() {
        out.push("(suffix, prefix, scheme and port variants need --origin)".into());
    }
    out
}
