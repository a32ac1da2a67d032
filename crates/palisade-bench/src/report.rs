//! What a scenario returns: named values and latency summaries, printed as
//! a table and serialized as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Summary;

/// One scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The parameters it ran with.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Measured values (rates, counts, bytes).
    pub values: BTreeMap<String, f64>,
    /// Latency summaries.
    pub latency: BTreeMap<String, Summary>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            params: BTreeMap::new(),
            values: BTreeMap::new(),
            latency: BTreeMap::new(),
        }
    }

    /// Records a parameter.
    pub fn param(&mut self, name: &str, value: impl Into<serde_json::Value>) -> &mut Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }

    /// Records a value.
    pub fn value(&mut self, name: &str, value: f64) -> &mut Self {
        self.values.insert(name.to_owned(), value);
        self
    }

    /// Records a latency summary.
    pub fn latency(&mut self, name: &str, summary: Summary) -> &mut Self {
        self.latency.insert(name.to_owned(), summary);
        self
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!("scenario {}", self.scenario);
        for (k, v) in &self.params {
            let _ = write!(out, " {k}={v}");
        }
        out.push('\n');
        for (k, v) in &self.values {
            let _ = writeln!(out, "  {k:<28} {v:>14.1}");
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "  {:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            for (k, s) in &self.latency {
                let _ = writeln!(
                    out,
                    "  {k:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    s.count, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us
                );
            }
        }
        out
    }
}
