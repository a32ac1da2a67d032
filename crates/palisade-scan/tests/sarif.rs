//! `--format sarif` against the published SARIF 2.1.0 schema
//! (tests/data/sarif-schema-2.1.0.json: OASIS SARIF v2.1.0 errata 01, the
//! schema the standard publishes, as in oasis-tcs/sarif-spec's
//! Schemata/sarif-schema-2.1.0.json), with formats checked: a report with
//! every rule found and a skipped check, and an empty one, are valid; a
//! report the schema forbids is not, so the validator is known to bite.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use palisade_scan::finding::Skipped;
use palisade_scan::{Format, RULES, Report, render};
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let text = include_str!("data/sarif-schema-2.1.0.json");
    let schema: Value = serde_json::from_str(text).unwrap();
    assert_eq!(schema["title"], "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema");
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

fn errors(validator: &jsonschema::Validator, sarif: &Value) -> Vec<String> {
    validator.iter_errors(sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn sarif(report: &Report) -> Value {
    serde_json::from_str(&render(report, Format::Sarif)).unwrap()
}

#[test]
fn every_rule_found_is_valid_sarif_2_1_0() {
    let validator = validator();
    let report = Report {
        target: "wss://chat.example.com:8443/socket?room=a%20b".into(),
        findings: RULES
            .iter()
            .map(|r| r.found(format!("evidence for {} with \"quotes\" and <markup>", r.id)))
            .collect(),
        skipped: vec![Skipped { check: "csrf".into(), why: "needs --cookie".into() }],
    };
    let v = sarif(&report);
    assert_eq!(v["runs"][0]["results"].as_array().unwrap().len(), RULES.len());
    let found = errors(&validator, &v);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn an_empty_report_is_valid_and_a_broken_one_is_not() {
    let validator = validator();
    let empty = sarif(&Report { target: "ws://127.0.0.1:9/ws".into(), ..Report::default() });
    let found = errors(&validator, &empty);
    assert!(found.is_empty(), "{found:#?}");
    // What a careless writer gets wrong: a level the schema has no name for,
    // and a version it does not know.
    let mut broken = empty;
    broken["version"] = "2.0.0".into();
    assert!(!errors(&validator, &broken).is_empty());
    let one = Report { findings: vec![RULES[0].found("x")], ..Report::default() };
    let mut broken = sarif(&Report { target: "ws://127.0.0.1:9/ws".into(), ..one });
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    assert!(!errors(&validator, &broken).is_empty());
}
