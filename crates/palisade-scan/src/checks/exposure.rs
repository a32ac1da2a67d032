//! Exposure: plain HTTP requests, without any credential, to what a server
//! next to a WebSocket endpoint often serves by accident: metrics, admin
//! routes, version banners, stack traces (docs/SCAN.md, "exposure").

use crate::ScanError;
use crate::checks::Scan;
use crate::finding::{Rule, Severity, excerpt};
use crate::net::Answer;

/// `GET /metrics` answers without a credential.
pub(crate) const METRICS: Rule = Rule {
    id: "exposure.metrics-public",
    severity: Severity::Medium,
    title: "/metrics is public (connection counts, rooms, internals for anyone)",
    fix: "serve metrics on a separate listener bound to loopback or behind a credential",
};
/// An admin route answers 200 without a credential.
pub(crate) const ADMIN: Rule = Rule {
    id: "exposure.admin-public",
    severity: Severity::High,
    title: "an admin route answers without a credential",
    fix: "put admin routes on their own listener and require an admin credential on every call",
};
/// `/healthz` or `/` names a version.
pub(crate) const BANNER: Rule = Rule {
    id: "exposure.version-banner",
    severity: Severity::Low,
    title: "a public page names the software version",
    fix: "answer health checks with a status only; versions help an attacker pick exploits",
};
/// A `Server:` header with a version.
pub(crate) const SERVER_HEADER: Rule = Rule {
    id: "exposure.server-header",
    severity: Severity::Low,
    title: "the Server header names the software and its version",
    fix: "drop the Server header or its version",
};
/// An error body with a stack trace.
pub(crate) const VERBOSE_ERROR: Rule = Rule {
    id: "exposure.verbose-error",
    severity: Severity::Medium,
    title: "an error answer carries a stack trace",
    fix: "answer errors with a code and a short message; keep stack traces in the server log",
};

/// Admin routes tried (a 200 to any is a finding).
const ADMIN_PATHS: [&str; 5] = ["/api/bans", "/api/users", "/api/sessions", "/api/config", "/admin"];
/// Pages a version banner is looked for in.
const BANNER_PATHS: [&str; 2] = ["/healthz", "/"];
/// What a stack trace looks like in the languages WebSocket servers are
/// written in.
const STACK_MARKERS: [&str; 7] = [
    "Traceback (most recent call last)",
    "panicked at",
    "stack backtrace:",
    "    at Object.",
    "    at process.",
    "Exception in thread",
    "at java.",
];

/// Whether `text` holds a dotted version like `1.2` or `1.2.3`.
fn has_version(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut answers: Vec<(String, Answer)> = Vec::new();
    let metrics = scan.budget.get("/metrics").await?;
    if metrics.status == 200 && (metrics.body.contains("# TYPE") || metrics.body.contains("# HELP")) {
        scan.found(&METRICS, &format!("GET /metrics with no credential; got 200: {}", excerpt(&metrics.body)));
    }
    answers.push(("/metrics".into(), metrics));
    for path in ADMIN_PATHS {
        let answer = scan.budget.get(path).await?;
        if answer.status == 200 {
            scan.found(&ADMIN, &format!("GET {path} with no credential; got 200: {}", excerpt(&answer.body)));
        }
        answers.push((path.into(), answer));
    }
    for path in BANNER_PATHS {
        let answer = scan.budget.get(path).await?;
        if answer.status == 200 && has_version(&answer.body) {
            scan.found(&BANNER, &format!("GET {path}; got 200: {}", excerpt(&answer.body)));
        }
        answers.push((path.into(), answer));
    }
    // A plain GET where the socket is, and a path that cannot exist.
    for path in [scan.path(), "/palisade-scan-missing/%ff%fe".to_owned()] {
        let answer = scan.budget.get(&path).await?;
        answers.push((path, answer));
    }
    if let Some((path, a)) = answers.iter().find(|(_, a)| STACK_MARKERS.iter().any(|m| a.body.contains(m))) {
        let evidence = format!("GET {path}; got {}: {}", a.status, excerpt(&a.body));
        scan.found(&VERBOSE_ERROR, &evidence);
    }
    if let Some((path, server)) =
        answers.iter().find_map(|(p, a)| a.header("server").filter(|s| has_version(s)).map(|s| (p, s)))
    {
        let evidence = format!("GET {path}; Server: {}", excerpt(server));
        scan.found(&SERVER_HEADER, &evidence);
    }
    Ok(())
}

pub(crate) fn plan() -> Vec<String> {
    let mut out = vec![format!("GET /metrics, no credential; Prometheus text with a 200 is {}", METRICS.id)];
    out.extend(ADMIN_PATHS.iter().map(|p| format!("GET {p}, no credential; a 200 is {}", ADMIN.id)));
    out.extend(BANNER_PATHS.iter().map(|p| format!("GET {p}; a version in a 200 is {}", BANNER.id)));
    out.push(format!(
        "GET the socket's path without an upgrade, and a missing path; a stack trace is {}",
        VERBOSE_ERROR.id
    ));
    out.push(format!("every answer's Server header: a version is {}", SERVER_HEADER.id));
    out
}

#[cfg(test)]
mod tests {
    use super::has_version;

    #[test]
    fn versions_are_dotted_digits() {
        assert!(has_version("Python/3.12 websockets/15.0.1"));
        assert!(has_version(r#"{"version":"0.1.0"}"#));
        assert!(!has_version(r#"{"status":"ok"}"#));
        assert!(!has_version("palisade"));
    }
}
