//! A [`Report`] as text (for people), JSON (for scripts) or SARIF 2.1.0
//! (for code-scanning dashboards); docs/SCAN.md, "Output".

use serde_json::{Value, json};

use crate::RULES;
use crate::finding::Report;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One block per finding.
    #[default]
    Text,
    /// The report as one JSON object.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

impl Format {
    /// Parses `text`, `json` or `sarif`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            "sarif" => Some(Self::Sarif),
            _ => None,
        }
    }
}

/// The report in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => pretty(&json(report)),
        Format::Sarif => pretty(&sarif(report)),
    }
}

fn pretty(value: &Value) -> String {
    let mut out = serde_json::to_string_pretty(value).unwrap_or_default();
    out.push('\n');
    out
}

fn text(report: &Report) -> String {
    let mut out = format!("palisade scan {}\n", report.target);
    for f in &report.findings {
        out.push_str(&format!(
            "\n[{}] {}: {}\n  evidence: {}\n  fix: {}\n",
            f.severity.name().to_uppercase(),
            f.id,
            f.title,
            f.evidence,
            f.fix
        ));
    }
    for s in &report.skipped {
        out.push_str(&format!("\nskipped {}: {}\n", s.check, s.why));
    }
    out.push_str(&format!("\n{} finding(s), {} skipped\n", report.findings.len(), report.skipped.len()));
    out
}

/// The JSON form: `{"target", "findings": [{id, severity, title,
/// evidence, fix}], "skipped": [{check, why}]}`.
pub fn json(report: &Report) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// The SARIF URI of the 2.1.0 schema.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF 2.1.0 form: one run, every rule in `tool.driver.rules`, one
/// result per finding located at the target's URI.
pub fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": {"text": r.title},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": r.severity.sarif_level()},
                "properties": {"severity": r.severity.name()},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "ruleIndex": RULES.iter().position(|r| r.id == f.id),
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{} Evidence: {} Fix: {}", f.title, f.evidence, f.fix)},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": report.target}}}],
                "properties": {"severity": f.severity.name()},
            })
        })
        .collect();
    let notes: Vec<Value> = report
        .skipped
        .iter()
        .map(|s| json!({"level": "note", "message": {"text": format!("skipped {}: {}", s.check, s.why)}}))
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {
                "name": "palisade-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/palisade/docs/SCAN.md",
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": true, "toolExecutionNotifications": notes}],
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;

    fn report() -> Report {
        let mut report = Report { target: "ws://127.0.0.1:9/ws".into(), ..Report::default() };
        let rule = RULES.iter().find(|r| r.id == "exposure.metrics-public").copied();
        report.found(rule.map(|r| r.found("GET /metrics → 200")).unwrap_or_else(|| panic!("rule listed")));
        report.skip("origin", "no --origin");
        report
    }

    #[test]
    fn sarif_has_the_2_1_0_shape() {
        let v = sarif(&report());
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["$schema"], SARIF_SCHEMA);
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "palisade-scan");
        let rules = run["tool"]["driver"]["rules"].as_array().cloned().unwrap_or_default();
        assert_eq!(rules.len(), RULES.len());
        assert!(rules.iter().all(|r| r["id"].is_string() && r["shortDescription"]["text"].is_string()));
        let result = &run["results"][0];
        assert_eq!(result["ruleId"], "exposure.metrics-public");
        assert_eq!(result["level"], "error");
        assert!(result["message"]["text"].as_str().is_some_and(|t| t.contains("GET /metrics")));
        let uri = &result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
        assert_eq!(uri, "ws://127.0.0.1:9/ws");
        let index = result["ruleIndex"].as_u64().unwrap_or(u64::MAX);
        assert_eq!(rules.get(usize::try_from(index).unwrap_or(usize::MAX)).map(|r| &r["id"]), Some(&result["ruleId"]));
        assert_eq!(run["invocations"][0]["toolExecutionNotifications"][0]["level"], "note");
    }

    #[test]
    fn json_has_every_field_of_a_finding() {
        let v = json(&report());
        assert_eq!(v["target"], "ws://127.0.0.1:9/ws");
        let f = &v["findings"][0];
        for key in ["id", "severity", "title", "evidence", "fix"] {
            assert!(f[key].is_string(), "{key} missing: {f}");
        }
        assert_eq!(f["severity"], "medium");
        assert_eq!(v["skipped"][0]["check"], "origin");
        assert!(serde_json::from_str::<Value>(&render(&report(), Format::Json)).is_ok());
    }

    #[test]
    fn rule_ids_are_unique_and_dotted() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        assert!(ids.iter().all(|id| id.split_once('.').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())));
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "duplicate rule id");
        assert!(RULES.iter().any(|r| r.severity == Severity::Critical));
    }

    #[test]
    fn text_names_each_finding_and_skip() {
        let t = render(&report(), Format::Text);
        assert!(t.contains("[MEDIUM] exposure.metrics-public"), "{t}");
        assert!(t.contains("skipped origin: no --origin"), "{t}");
    }
}
