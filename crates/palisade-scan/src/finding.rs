//! What a scan found: [`Finding`]s with a stable id and a [`Severity`],
//! gathered in a [`Report`], and the exit-code rule (docs/SCAN.md, "Exit
//! codes").

use serde::Serialize;

/// How bad a finding is; ordered, so `--fail-on` compares with `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a weakness by itself.
    Info,
    /// A weakness that needs another one to matter.
    Low,
    /// A weakness an attacker can use with some effort.
    Medium,
    /// A weakness an attacker can use directly.
    High,
    /// Anyone can take over sessions or the server.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 5] = [Self::Info, Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The lowercase name (`--fail-on`, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The SARIF `level` for this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Self::Info => "note",
            Self::Low => "warning",
            Self::Medium | Self::High | Self::Critical => "error",
        }
    }
}

/// One weakness, with what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id, `check.what-happened` (docs/SCAN.md lists them all).
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One line for people.
    pub title: &'static str,
    /// What was sent and what came back; credentials redacted, bodies cut.
    pub evidence: String,
    /// How to fix it.
    pub fix: &'static str,
}

/// What a check can find, before it is found: every rule is listed in
/// [`crate::RULES`] (and in SARIF's `tool.driver.rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The finding's stable id.
    pub id: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// One line for people.
    pub title: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

impl Rule {
    /// This rule, found, with its evidence.
    pub fn found(&self, evidence: impl Into<String>) -> Finding {
        Finding { id: self.id, severity: self.severity, title: self.title, evidence: evidence.into(), fix: self.fix }
    }
}

/// A check that did not run, and why (no `--origin`, no credential, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The check's name (`origin`, `handshake`, …) or a finding id.
    pub check: String,
    /// Why it did not run.
    pub why: String,
}

/// Everything one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The target, as given (`ws://host:port/path`).
    pub target: String,
    /// What was found, in the order found.
    pub findings: Vec<Finding>,
    /// What was not checked.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// The process exit code: 1 when a finding is at or above `fail_on`,
    /// else 0 (2, for usage and connection errors, never comes from a
    /// report).
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity >= fail_on))
    }

    /// Adds a finding.
    pub(crate) fn found(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Records a check that did not run.
    pub(crate) fn skip(&mut self, check: &str, why: impl Into<String>) {
        self.skipped.push(Skipped { check: check.to_owned(), why: why.into() });
    }
}

/// Longest piece of a response body kept as evidence.
pub(crate) const EVIDENCE_BODY_CHARS: usize = 160;

/// A secret as evidence may show it: its first 4 characters and its length,
/// never more (a token in a CI log is a stolen token).
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}…[redacted, {} bytes]", secret.len())
}

/// The start of a response body, on one line, cut to
/// [`EVIDENCE_BODY_CHARS`].
pub(crate) fn excerpt(body: &str) -> String {
    let one_line: String = body.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = one_line.trim();
    if trimmed.chars().count() <= EVIDENCE_BODY_CHARS {
        return trimmed.to_owned();
    }
    let cut: String = trimmed.chars().take(EVIDENCE_BODY_CHARS).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity) -> Finding {
        Finding { id: "x.y", severity, title: "t", evidence: String::new(), fix: "f" }
    }

    #[test]
    fn exit_code_is_one_only_at_or_above_fail_on() {
        let mut report = Report::default();
        assert_eq!(report.exit_code(Severity::Info), 0, "no finding, nothing fails");
        report.found(finding(Severity::Low));
        assert_eq!(report.exit_code(Severity::Medium), 0);
        assert_eq!(report.exit_code(Severity::Low), 1);
        assert_eq!(report.exit_code(Severity::Info), 1);
        report.found(finding(Severity::High));
        assert_eq!(report.exit_code(Severity::Medium), 1);
        assert_eq!(report.exit_code(Severity::Critical), 0);
    }

    #[test]
    fn severities_parse_their_names_in_order() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.name()), Some(s));
        }
        assert!(Severity::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Severity::parse("severe"), None);
    }

    #[test]
    fn redact_never_shows_more_than_four_characters() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let shown = redact(token);
        assert!(shown.starts_with("eyJh…"), "{shown}");
        assert!(!shown.contains("GciOi"), "{shown}");
        assert!(shown.contains(&token.len().to_string()));
    }
}
