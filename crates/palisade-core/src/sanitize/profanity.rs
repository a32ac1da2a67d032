//! The `profanity` rule: mask listed words where they stand as whole words.
//!
//! Whole-word matching keeps innocent words intact (the Scunthorpe problem);
//! a word boundary is anything that is not a letter or digit. Matching is
//! case-insensitive, one char for one char, so the mask has exactly as many
//! `*` as the word has chars. The words sit in a trie walked from each word
//! start, so a message costs at most its length times the longest word,
//! however long the list.
//!
//! Listed words must start and end with a letter or digit and contain no `*`:
//! otherwise masking one word could complete another and a second pass would
//! change the text again.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization as _;

/// `profanity_words`, compiled into a trie; empty means the rule is a no-op.
#[derive(Debug, Clone, Default)]
pub(super) struct WordList {
    /// `nodes[0]` is the root when there is at least one word.
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    next: BTreeMap<char, usize>,
    /// A listed word ends here.
    word: bool,
}

impl WordList {
    /// Compiles the list; the error names the first unusable word.
    pub(super) fn new(words: &[String]) -> Result<Self, String> {
        let mut list = Self::default();
        for raw in words {
            let word: String = raw.trim().nfc().collect();
            let edge_ok = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
            if !edge_ok(word.chars().next())
                || !edge_ok(word.chars().next_back())
                || word.contains(|c: char| c == '*' || c.is_control())
            {
                return Err(format!(
                    "profanity_words: `{raw}` must start and end with a letter or digit and contain no `*`"
                ));
            }
            list.insert(&word);
        }
        Ok(list)
    }

    fn insert(&mut self, word: &str) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for c in word.chars().map(fold) {
            let fresh = self.nodes.len();
            at = match self.nodes[at].next.get(&c) {
                Some(&next) => next,
                None => {
                    self.nodes[at].next.insert(c, fresh);
                    self.nodes.push(Node::default());
                    fresh
                }
            };
        }
        self.nodes[at].word = true;
    }

    /// Masks every listed word; `None` if there was none.
    pub(super) fn mask(&self, input: &str) -> Option<String> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut pos = 0;
        let mut prev_alnum = false;
        while let Some(c) = input[pos..].chars().next() {
            let alnum = c.is_alphanumeric();
            if alnum
                && !prev_alnum
                && let Some((len, chars)) = self.longest_word(&input[pos..])
            {
                let out = out.get_or_insert_with(|| String::with_capacity(input.len()));
                out.push_str(&input[copied..pos]);
                out.extend(std::iter::repeat_n('*', chars));
                pos += len;
                copied = pos;
                // A match ends in a letter or digit, followed by a boundary.
                prev_alnum = true;
                continue;
            }
            prev_alnum = alnum;
            pos += c.len_utf8();
        }
        let mut out = out?;
        out.push_str(&input[copied..]);
        Some(out)
    }

    /// The longest listed word at the start of `text` that ends on a word
    /// boundary, as (bytes, chars).
    fn longest_word(&self, text: &str) -> Option<(usize, usize)> {
        let mut at = 0;
        let mut best = None;
        for (count, (i, c)) in text.char_indices().enumerate() {
            let Some(&next) = self.nodes[at].next.get(&fold(c)) else { break };
            at = next;
            let end = i + c.len_utf8();
            if self.nodes[at].word && !text[end..].chars().next().is_some_and(char::is_alphanumeric) {
                best = Some((end, count + 1));
            }
        }
        best
    }
}

/// Lowercase, one char for one char (a char whose lowercase is longer keeps
/// its case), so positions in the input and the word line up.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(words: &[&str]) -> WordList {
        WordList::new(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn masked(words: &[&str], input: &str) -> String {
        list(words).mask(input).unwrap_or_else(|| input.to_owned())
    }

    #[test]
    fn whole_words_only_any_case() {
        let words = ["darn", "heck"];
        assert_eq!(masked(&words, "Darn it, HECK!"), "**** it, ****!");
        assert_eq!(masked(&words, "darned heckle undarn"), "darned heckle undarn");
        assert_eq!(masked(&words, "darn_it darn-it (darn)"), "****_it ****-it (****)");
        assert_eq!(masked(&words, "darn"), "****");
        assert_eq!(masked(&words, "darn2 2darn"), "darn2 2darn");
    }

    #[test]
    fn unicode_words_and_phrases() {
        assert_eq!(masked(&["Ärger"], "so ein ärger!"), "so ein *****!");
        assert_eq!(masked(&["Ärger"], "ÄRGERLICH"), "ÄRGERLICH");
        assert_eq!(masked(&["bad word"], "a BAD WORD here, bad words"), "a ******** here, bad words");
        assert_eq!(masked(&["ab", "ab cd"], "ab cd ab"), "***** **");
    }

    #[test]
    fn no_words_no_work() {
        assert_eq!(WordList::new(&[]).unwrap().mask("anything at all"), None);
        assert_eq!(list(&["darn"]).mask("clean text"), None);
    }

    #[test]
    fn masking_twice_changes_nothing() {
        let words = list(&["a", "b-c", "x y", "é"]);
        for input in ["a-b-c", "b-c-a", "x y a", "é a b-c", "aé b-c-x y"] {
            let once = words.mask(input).unwrap_or_else(|| input.to_owned());
            assert_eq!(words.mask(&once), None, "{input} -> {once}");
        }
    }

    #[test]
    fn unusable_words_are_named() {
        for bad in ["", "  ", "-a", "a-", "f*ck", "**", "a\u{0}b"] {
            let err = WordList::new(&[bad.to_owned()]).unwrap_err();
            assert!(err.starts_with("profanity_words: `"), "{err}");
        }
    }
}
