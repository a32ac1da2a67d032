//! What a client may put into the server's log, and how much of it.
//!
//! Refusal reasons carry client text (a JSON Schema error quotes the
//! offending value and key). Written raw, a key holding `\n` forges a log
//! line, `" user=admin` forges a field, U+202E reverses what an operator
//! reads, and a 64 KiB value is logged whole. [`Clipped`] renders such text
//! as one quoted, escaped, truncated field; [`LogBudget`] caps how many
//! refusal lines a flood can write and counts the ones it suppressed
//! (docs/ARCHITECTURE.md, "Logs").

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::Timestamp;

/// Client-influenced text for one log field: written in double quotes, with
/// `"` and `\` escaped, control, format and bidi characters written as
/// `\u{…}`, and cut after `max_chars` characters (the cut says how many
/// bytes were left out).
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a> {
    text: &'a str,
    max_chars: usize,
}

impl<'a> Clipped<'a> {
    /// `text`, to be written at most `max_chars` characters long.
    pub fn new(text: &'a str, max_chars: usize) -> Self {
        Self { text, max_chars }
    }
}

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for (shown, (i, c)) in self.text.char_indices().enumerate() {
            if shown == self.max_chars {
                f.write_char('"')?;
                return write!(f, "…(+{} bytes)", self.text.len() - i);
            }
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Characters that would break a log line or change how it reads: controls
/// (C0, DEL, C1, line and paragraph separators) and the invisible format
/// characters (zero-width, bidi embeddings, overrides and isolates, BOM).
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// What [`LogBudget::admit`] says about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVerdict {
    /// Write the line; `suppressed` lines were dropped in the budget's
    /// previous period and should be reported with it (0: none).
    Write {
        /// Lines dropped since the last line written.
        suppressed: u64,
    },
    /// Drop the line; it is counted.
    Suppress,
}

/// At most `lines` log lines per `period`, shared by every connection of a
/// process without a lock: a flood of refusals costs a counter increment,
/// not a log line each. The count resets when a new period starts; the first
/// line written in it carries the number suppressed before.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    period_ms: u64,
    /// Index of the current period (`now / period`).
    current: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
    suppressed_total: AtomicU64,
}

impl LogBudget {
    /// A budget of `lines` per `period` (0 lines: log nothing, count all).
    pub fn new(lines: u32, period: Duration) -> Self {
        Self {
            lines,
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1),
            current: AtomicU64::new(0),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
            suppressed_total: AtomicU64::new(0),
        }
    }

    /// May one more line be written at `now`?
    pub fn admit(&self, now: Timestamp) -> LogVerdict {
        let period = now.as_millis() / self.period_ms;
        let seen = self.current.load(Ordering::Acquire);
        // The first caller in a new period resets the count; concurrent
        // callers may see the old count for a moment, which only shifts a
        // line or two between periods.
        if period > seen && self.current.compare_exchange(seen, period, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.used.store(0, Ordering::Release);
        }
        if self.used.fetch_add(1, Ordering::AcqRel) < self.lines {
            LogVerdict::Write { suppressed: self.suppressed.swap(0, Ordering::AcqRel) }
        } else {
            self.used.fetch_sub(1, Ordering::AcqRel);
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            self.suppressed_total.fetch_add(1, Ordering::Relaxed);
            LogVerdict::Suppress
        }
    }

    /// Lines suppressed since the process started.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(s: &str, max: usize) -> String {
        Clipped::new(s, max).to_string()
    }

    #[test]
    fn a_newline_cannot_start_a_forged_line() {
        let forged = "x\n2026-12-01T00:00:00Z  INFO palisade: connection closed user=admin";
        let out = clip(forged, 200);
        assert!(!out.contains('\n'), "{out}");
        assert!(out.starts_with("\"x\\u{a}2026"), "{out}");
    }

    #[test]
    fn quotes_cannot_end_the_field_and_forge_another() {
        assert_eq!(clip("a\" user=\"admin", 200), r#""a\" user=\"admin""#);
        assert_eq!(clip("back\\slash", 200), r#""back\\slash""#);
    }

    #[test]
    fn invisible_and_bidi_characters_are_shown_as_escapes() {
        assert_eq!(
            clip("ab\u{202e}cd\u{200b}\u{2028}\u{feff}\u{7f}\u{85}", 200),
            r#""ab\u{202e}cd\u{200b}\u{2028}\u{feff}\u{7f}\u{85}""#
        );
        assert_eq!(clip("héllo wörld ✓", 200), "\"héllo wörld ✓\"");
    }

    #[test]
    fn long_text_is_cut_and_says_how_much_is_missing() {
        let long = "é".repeat(65_536);
        let out = clip(&long, 10);
        assert_eq!(out, format!("\"{}\"…(+{} bytes)", "é".repeat(10), 2 * (65_536 - 10)));
        assert_eq!(clip("exactly", 7), "\"exactly\"");
        assert_eq!(clip("", 0), "\"\"");
    }

    #[test]
    fn the_budget_writes_n_lines_per_period_and_reports_the_rest() {
        let budget = LogBudget::new(3, Duration::from_secs(1));
        let t0 = Timestamp::from_secs(1_000);
        let verdicts: Vec<_> = (0..10).map(|_| budget.admit(t0)).collect();
        assert_eq!(verdicts[..3], [LogVerdict::Write { suppressed: 0 }; 3]);
        assert!(verdicts[3..].iter().all(|v| *v == LogVerdict::Suppress));
        // Still the same period: nothing more.
        assert_eq!(budget.admit(t0.saturating_add(Duration::from_millis(999))), LogVerdict::Suppress);
        // The next period's first line carries the count of what was dropped.
        let t1 = t0.saturating_add(Duration::from_secs(1));
        assert_eq!(budget.admit(t1), LogVerdict::Write { suppressed: 8 });
        assert_eq!(budget.admit(t1), LogVerdict::Write { suppressed: 0 });
        assert_eq!(budget.suppressed_total(), 8);
    }

    #[test]
    fn a_zero_budget_counts_everything() {
        let budget = LogBudget::new(0, Duration::from_secs(1));
        let t0 = Timestamp::from_secs(5);
        assert_eq!(budget.admit(t0), LogVerdict::Suppress);
        assert_eq!(budget.admit(t0.saturating_add(Duration::from_secs(9))), LogVerdict::Suppress);
        assert_eq!(budget.suppressed_total(), 2);
    }
}
