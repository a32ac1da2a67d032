//! What a message's `data` becomes before anyone else sees it (pipeline
//! step 10, docs/ARCHITECTURE.md).
//!
//! Schemas decide whether data is acceptable; sanitizers make acceptable data
//! harmless for the clients that render it. Two layers:
//! - normalization that always runs on every string and key (Unicode NFC,
//!   control characters stripped, prototype-pollution keys dropped), so that
//!   what one client sees is what another compares against;
//! - per-field rules declared on each event (`"/content" = "html"`), each of
//!   which either rewrites the string or rejects the message.
//!
//! The expensive pieces (the ammonia builder, the profanity matcher, the
//! blocked-host list) are built once from [`SanitizeSettings`] into
//! [`Sanitizers`] and shared by every connection. Every rule is idempotent, so
//! data that is relayed and sanitized twice does not change the second time,
//! and the common case (nothing to change) allocates nothing. What a rule
//! writes is normalized like its input was, so a rule's output (an HTML
//! entity decoded to a combining mark) never breaks the invariants the first
//! layer set up.

use std::str::FromStr;

mod fields;
mod filename;
mod html;
mod link;
mod normalize;
mod profanity;
mod text;

#[cfg(test)]
pub(crate) mod tests;

pub use fields::FieldRules;

/// The always-on normalization, for every string (values and keys) at any
/// depth: Unicode NFC, control characters removed except `\n` and `\t`,
/// and keys `__proto__`, `constructor` and `prototype` dropped. Run it
/// before schema validation, so the schema sees what will be broadcast (a
/// key like `"ro\u0000le"` only becomes `"role"` here).
pub fn normalize(value: &mut serde_json::Value) {
    normalize::value(value);
}

/// One sanitizer kind, as named in config: "html", "text", "url", "filename", "profanity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Keep a small allowlist of inline markup, drop everything executable.
    Html,
    /// Escape all markup so the string is inert wherever it is inserted.
    Text,
    /// An absolute http(s) link to a host that is not blocked.
    Url,
    /// A single, boring file name: no directories, no hidden files.
    Filename,
    /// Mask the configured words.
    Profanity,
}

impl Rule {
    const ALL: [(&'static str, Rule); 5] = [
        ("html", Rule::Html),
        ("text", Rule::Text),
        ("url", Rule::Url),
        ("filename", Rule::Filename),
        ("profanity", Rule::Profanity),
    ];
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, rule)| *rule)
            .ok_or_else(|| format!("unknown sanitizer `{s}`: expected one of html, text, url, filename, profanity"))
    }
}

/// What to do with a URL that fails the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUrl {
    /// Refuse the whole message, so the sender learns the link was not sent.
    #[default]
    Reject,
    /// Replace the string with "", for fields where a link is optional.
    Remove,
}

/// Global sanitizer settings (config section `[sanitize]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanitizeSettings {
    /// Hosts no link may point to: `evil.example` (exactly that host) or
    /// `*.evil.example` (any host below it, not `evil.example` itself).
    /// Case-insensitive; applies to the `url` rule and to `html` hrefs.
    pub url_blocked_hosts: Vec<String>,
    /// What the `url` rule does with a link that fails the policy.
    pub url_invalid: InvalidUrl,
    /// Words the `profanity` rule masks, matched as whole words.
    pub profanity_words: Vec<String>,
    /// Longest file name the `filename` rule lets through, in bytes.
    pub filename_max_len: usize,
}

impl Default for SanitizeSettings {
    fn default() -> Self {
        Self {
            url_blocked_hosts: Vec::new(),
            url_invalid: InvalidUrl::Reject,
            profanity_words: Vec::new(),
            filename_max_len: 255,
        }
    }
}

/// Why a rule refused a string instead of rewriting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The string fails the rule's policy (a `url` with Reject, a
    /// `filename` that is empty after cleaning); safe to show the sender.
    #[error("{0}")]
    Invalid(&'static str),
    /// Cleaning would make the string much larger than it is: HTML tree
    /// building can multiply markup (see the `html` module). The sender
    /// hears `too_large`, like any copy over the event's limit.
    #[error("markup expands too much")]
    Expands,
}

/// A field that a rule refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {why}")]
pub struct Rejected {
    /// JSON Pointer of the offending string, with wildcards resolved.
    pub pointer: String,
    /// Why.
    pub why: Refused,
}

/// Sanitizers built once from settings and shared by every connection.
#[derive(Debug)]
pub struct Sanitizers {
    html: html::Html,
    blocked: link::BlockedHosts,
    url_invalid: InvalidUrl,
    words: profanity::WordList,
    filename_max_len: usize,
}

impl Sanitizers {
    /// Builds every sanitizer; the error names the bad setting.
    pub fn new(settings: &SanitizeSettings) -> Result<Self, String> {
        let blocked = link::BlockedHosts::new(&settings.url_blocked_hosts)?;
        let words = profanity::WordList::new(&settings.profanity_words)?;
        if settings.filename_max_len == 0 {
            return Err("filename_max_len must be at least 1".to_owned());
        }
        Ok(Self {
            html: html::Html::new(blocked.clone()),
            blocked,
            url_invalid: settings.url_invalid,
            words,
            filename_max_len: settings.filename_max_len,
        })
    }

    /// Applies one rule to one string. `Ok(None)` means unchanged, so the
    /// caller keeps its string and nothing is allocated. `input` must be
    /// normalized already ([`normalize`], which the message pipeline runs
    /// over the whole message first): the output is normalized after the
    /// rule, so on raw input a rule can miss what normalization reveals
    /// (the fuzz target `sanitizers` found `hec\0k` becoming an unmasked
    /// `heck`), and applying it again would change it.
    pub fn apply(&self, rule: Rule, input: &str) -> Result<Option<String>, Refused> {
        let out = match rule {
            Rule::Html => self.html.clean(input).map_err(|html::Expands| Refused::Expands)?,
            Rule::Text => text::escape(input),
            Rule::Url => match link::check(input, &self.blocked) {
                Some(normalized) => normalized,
                None => match self.url_invalid {
                    InvalidUrl::Reject => return Err(Refused::Invalid("url not allowed")),
                    InvalidUrl::Remove => (!input.is_empty()).then(String::new),
                },
            },
            Rule::Filename => filename::clean(input, self.filename_max_len).map_err(Refused::Invalid)?,
            Rule::Profanity => self.words.mask(input),
        };
        // The HTML parser decodes references the first normalization never
        // saw (`e&#x301;` is not NFC once decoded).
        Ok(out.map(|s| normalize::normalized(&s).unwrap_or(s)).filter(|s| s != input))
    }
}
