//! The `html` rule without the parser, for the markup chat messages carry.
//!
//! Most markup in a chat message is a few well-nested allowed tags around
//! text (`Hello <b>world</b>, see <a href="…">the docs</a>`). For that shape
//! the HTML tree builder builds exactly the elements the tags spell, so what
//! ammonia would write is known from the input alone: the same tags, each
//! link's href normalized or dropped and `rel` added, text escaped as the
//! serializer escapes it. [`render`] writes that in one pass and answers
//! `None` for anything outside the grammar below, which then takes the parser.
//!
//! The grammar:
//! - text with no control character but `\n` and `\t`, not starting with a
//!   byte order mark; `&amp;`, `&lt;`, `&gt;` and `&nbsp;`; an `&` not
//!   followed by an ASCII letter, digit or `#` and a `<` not followed by an
//!   ASCII letter, `/`, `!` or `?` (neither starts a reference or a tag);
//! - the start tags `<b>`, `<i>`, `<em>`, `<strong>`, `<code>`, `<pre>`
//!   (not followed by `\n`) and `<br>` spelled exactly so, and `<a>` with
//!   an optional ` href="…"` (no `&` in the value but `&amp;`), then an
//!   optional ` rel="noopener noreferrer"`;
//! - end tags that close the innermost open element, which may stay open
//!   at the end; no element inside another of its name.
//!
//! Why the tree is what the tags spell (WHATWG HTML, "in body", the mode a
//! fragment parsed in a `<div>` starts and stays in for these tokens):
//! formatting start tags (`a b code em i strong`) reconstruct the active
//! formatting elements, insert, and join that list; since none is ever left
//! unclosed by an end tag, every entry is still open and reconstruction does
//! nothing. At most one of each name is open, so the list never holds the
//! three copies that trigger its pruning, and an `<a>` never meets an open
//! `a`. Their end tags run the adoption agency with the formatting element as
//! the current node: no furthest block, so it is popped and unlisted, nothing
//! else. `<pre>` inserts (no `p` is open to close), and the only token it
//! treats specially is a newline right after it, excluded; `</pre>` closes
//! the current node. `<br>` inserts a void element. Text is inserted as
//! written, references decoded. The tokenizer reads nothing else into these
//! tokens: attributes are lowercase, double-quoted and unique, and no `\r`
//! or NUL, which it would rewrite, gets through.
//!
//! Then ammonia keeps every element (all are allowed) and no attribute but
//! `href`, adds `rel`, and keeps `href` exactly when [`link::allowed`] does
//! (its own check, an http(s) URL or a relative one it denies, is implied by
//! the filter's), with the filter's value. The serializer writes tags as
//! spelled and escapes `& < > U+00A0` in text, `& " < > U+00A0` in
//! attributes. `render`'s own output is in the grammar and renders to itself,
//! so it is the fixed point the full path settles on.
//!
//! `simple_tests` compares this path with the full one on random markup.

use super::super::link::{self, BlockedHosts};
use super::super::normalize;

/// What ammonia adds to every link (`Builder::link_rel`).
pub(super) const REL: &str = "noopener noreferrer";
const REL_ATTRIBUTE: &str = " rel=\"noopener noreferrer\"";

/// The elements the grammar may nest; `<br>` is void and never open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    B,
    I,
    Em,
    Strong,
    Code,
    Pre,
    A,
}

impl Element {
    const ALL: [Element; 7] =
        [Element::B, Element::I, Element::Em, Element::Strong, Element::Code, Element::Pre, Element::A];

    /// The start tag as the grammar spells it (an `<a>` has its own).
    fn start(self) -> &'static str {
        match self {
            Element::B => "<b>",
            Element::I => "<i>",
            Element::Em => "<em>",
            Element::Strong => "<strong>",
            Element::Code => "<code>",
            Element::Pre => "<pre>",
            Element::A => "<a>",
        }
    }

    fn end(self) -> &'static str {
        match self {
            Element::B => "</b>",
            Element::I => "</i>",
            Element::Em => "</em>",
            Element::Strong => "</strong>",
            Element::Code => "</code>",
            Element::Pre => "</pre>",
            Element::A => "</a>",
        }
    }
}

/// The open elements, innermost last; one of each at most, so seven.
struct Open {
    elements: [Element; Element::ALL.len()],
    depth: usize,
}

impl Open {
    fn push(&mut self, element: Element) -> Option<()> {
        if self.elements[..self.depth].contains(&element) {
            return None;
        }
        *self.elements.get_mut(self.depth)? = element;
        self.depth += 1;
        Some(())
    }

    fn pop(&mut self) -> Option<Element> {
        self.depth = self.depth.checked_sub(1)?;
        self.elements.get(self.depth).copied()
    }

    fn innermost(&self) -> Option<Element> {
        self.elements.get(self.depth.checked_sub(1)?).copied()
    }
}

/// References written as the serializer writes them, so kept as they are.
const REFERENCES: [&str; 4] = ["&amp;", "&lt;", "&gt;", "&nbsp;"];

/// What the full `html` path would write for `input` (before its output is
/// normalized), or `None` if `input` is outside the grammar.
pub(super) fn render(input: &str, blocked: &BlockedHosts) -> Option<String> {
    // The tokenizer drops a byte order mark at the very start.
    if input.starts_with('\u{feff}') {
        return None;
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len() + 2 * REL_ATTRIBUTE.len());
    let mut open = Open { elements: [Element::B; Element::ALL.len()], depth: 0 };
    // Text is copied in runs: `input[copied..i]` is pending.
    let mut copied = 0;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        // Every branch but the last starts at an ASCII byte or at the lead
        // byte of U+0080..U+00BF (0xC2), so `i` stays a char boundary.
        let (written, consumed): (Option<&str>, usize) = match byte {
            b'<' => match bytes.get(i + 1) {
                Some(b'/') => {
                    let element = open.innermost()?;
                    if !input[i..].starts_with(element.end()) {
                        return None;
                    }
                    open.pop()?;
                    (Some(element.end()), element.end().len())
                }
                Some(b'a') if matches!(bytes.get(i + 2), Some(b' ' | b'>')) => {
                    open.push(Element::A)?;
                    out.push_str(&input[copied..i]);
                    let consumed = anchor(&input[i..], blocked, &mut out)?;
                    copied = i + consumed;
                    (None, consumed)
                }
                Some(next) if next.is_ascii_alphabetic() => {
                    let rest = &input[i..];
                    if rest.starts_with("<br>") {
                        (Some("<br>"), "<br>".len())
                    } else {
                        let element = Element::ALL.into_iter().find(|e| rest.starts_with(e.start()))?;
                        open.push(element)?;
                        // The parser eats a newline right after `<pre>`.
                        if element == Element::Pre && rest[element.start().len()..].starts_with('\n') {
                            return None;
                        }
                        (Some(element.start()), element.start().len())
                    }
                }
                // A comment, a bogus comment or a processing instruction.
                Some(b'!' | b'?') => return None,
                _ => (Some("&lt;"), 1),
            },
            b'&' => {
                let rest = &input[i..];
                match REFERENCES.into_iter().find(|r| rest.starts_with(r)) {
                    Some(reference) => (Some(reference), reference.len()),
                    None if matches!(bytes.get(i + 1), Some(c) if c.is_ascii_alphanumeric() || *c == b'#') => {
                        return None;
                    }
                    None => (Some("&amp;"), 1),
                }
            }
            b'>' => (Some("&gt;"), 1),
            0xc2 if bytes.get(i + 1) == Some(&0xa0) => (Some("&nbsp;"), 2),
            b'\n' | b'\t' => {
                i += 1;
                continue;
            }
            // C0, DEL, and C1 (U+0080..U+009F, 0xC2 0x80..0x9F).
            0..=0x1f | 0x7f => return None,
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => return None,
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some(written) = written {
            out.push_str(&input[copied..i]);
            out.push_str(written);
            copied = i + consumed;
        }
        i += consumed;
    }
    out.push_str(&input[copied..]);
    while let Some(element) = open.pop() {
        out.push_str(element.end());
    }
    Some(out)
}

/// Writes the cleaned form of the `<a …>` tag `rest` starts with; returns
/// the length of the tag in `rest`, `None` if it is outside the grammar.
fn anchor(rest: &str, blocked: &BlockedHosts, out: &mut String) -> Option<usize> {
    let mut at = "<a".len();
    let mut href = None;
    if let Some(value) = rest[at..].strip_prefix(" href=\"") {
        let end = value.find('"')?;
        href = Some(&value[..end]);
        at += " href=\"".len() + end + 1;
    }
    if rest[at..].starts_with(REL_ATTRIBUTE) {
        at += REL_ATTRIBUTE.len();
    }
    if !rest[at..].starts_with('>') {
        return None;
    }
    out.push_str("<a");
    if let Some(value) = href {
        if value.contains(normalize::stripped) {
            return None;
        }
        let decoded = decode_amp(value)?;
        if let Some(url) = link::allowed(&decoded, blocked) {
            out.push_str(" href=\"");
            escape_attribute(&url, out);
            out.push('"');
        }
    }
    out.push_str(REL_ATTRIBUTE);
    out.push('>');
    Some(at + 1)
}

/// `value` with each `&amp;` decoded; `None` if any other `&` appears (an
/// attribute's references have rules of their own; the full path reads them).
fn decode_amp(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !value.contains('&') {
        return Some(value.into());
    }
    let mut decoded = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = rest[at..].strip_prefix("&amp;")?;
        decoded.push('&');
    }
    decoded.push_str(rest);
    Some(decoded.into())
}

/// As html5ever's serializer escapes an attribute value.
fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            c => out.push(c),
        }
    }
}
