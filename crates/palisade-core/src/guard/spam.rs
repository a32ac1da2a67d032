//! Spam heuristics on an event's `data`: long runs of one character and
//! many links. Cheap (one pass over the JSON text, no allocation) and
//! deliberately coarse: they catch floods of "aaaa…" and link farms, and
//! leave judging content to people.

use crate::refusal::{Kind, Refusal};

/// The heuristics' limits (`abuse.spam_max_repeat`, `abuse.spam_max_links`;
/// 0 turns one off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpamRules {
    /// Longest run of one non-space character.
    pub max_repeat: usize,
    /// Most links (`://` or `www.`).
    pub max_links: usize,
}

impl SpamRules {
    /// Checks the JSON text of `data`.
    pub fn check(&self, data: &str) -> Result<(), Refusal> {
        let (mut run, mut longest, mut previous) = (0usize, 0usize, None);
        for c in data.chars() {
            if c.is_whitespace() {
                run = 0;
                previous = None;
                continue;
            }
            run = if previous == Some(c) { run + 1 } else { 1 };
            previous = Some(c);
            longest = longest.max(run);
        }
        if self.max_repeat > 0 && longest > self.max_repeat {
            return Err(Refusal::new(Kind::Spam, format!("spam: a character repeated {longest} times")));
        }
        let links = data.matches("://").count() + data.matches("www.").count();
        if self.max_links > 0 && links > self.max_links {
            return Err(Refusal::new(Kind::Spam, format!("spam: {links} links")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SpamRules = SpamRules { max_repeat: 8, max_links: 2 };

    #[test]
    fn runs_and_links_over_the_limit_are_spam() {
        assert!(RULES.check(r#"{"content":"hello there!!"}"#).is_ok());
        assert!(RULES.check(r#"{"content":"aaaaaaaa b"}"#).is_ok(), "8 is the limit");
        let r = RULES.check(r#"{"content":"aaaaaaaaa"}"#).unwrap_err();
        assert_eq!(r.kind, Kind::Spam);
        assert!(RULES.check(r#"{"content":"a a a a a a a a a a a a"}"#).is_ok(), "spaces break runs");
        assert!(RULES.check(r#"{"content":"see https://a.test and www.b.test"}"#).is_ok());
        assert!(RULES.check(r#"{"content":"https://a.test http://b.test www.c.test"}"#).is_err());
        let off = SpamRules { max_repeat: 0, max_links: 0 };
        assert!(off.check(&format!(r#"{{"c":"{}"}}"#, "x".repeat(1000))).is_ok());
    }
}
