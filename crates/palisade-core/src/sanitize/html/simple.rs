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
//! The unit tests compare this path with the full one on random markup.

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;

    use super::super::{Expands, Html, MAX_ROUNDS, MAX_TAGS, as_text, budget, is_plain_text, render as parse};
    use super::*;

    fn blocked() -> BlockedHosts {
        BlockedHosts::new(&["evil.example".to_owned(), "*.tracker.example".to_owned()]).unwrap()
    }

    fn fast(input: &str) -> Option<String> {
        render(input, &blocked())
    }

    /// `Html::clean` as it was before this module: every fragment with
    /// markup parsed, and every change confirmed by parsing it again.
    fn clean_by_parsing(html: &Html, input: &str) -> Result<Option<String>, Expands> {
        if is_plain_text(input) {
            return Ok(None);
        }
        if input.bytes().filter(|&b| b == b'<').count() > MAX_TAGS {
            return Ok(as_text(input));
        }
        let budget = budget(input);
        let mut out = parse(&html.builder, input, budget)?;
        for _ in 0..MAX_ROUNDS {
            if out == input {
                return Ok(None);
            }
            let again = parse(&html.builder, &out, budget)?;
            if again == out {
                return Ok(Some(out));
            }
            out = again;
        }
        Ok(as_text(input))
    }

    const TEXT: [&str; 30] = [
        "hello", " ", "x", "é", "e\u{301}", "🎉", "\"", "'", "\n", "\t", "a & b", "&", "&amp;", "&lt;", "&gt;",
        "&nbsp;", "\u{a0}", ">", "a < b", "<3", "<", "&;", "&&", "=", "/", "-", "1", "\u{200b}", "<=", "& #",
    ];

    /// Text and tags just outside the grammar, which the full path must take.
    const NEAR_MISSES: [&str; 30] = [
        "&x",
        "&#60;",
        "&copy;",
        "&amp",
        "&lt",
        "&AMP;",
        "<B>",
        "<b >",
        "<br/>",
        "</br>",
        "<br >",
        "<p>",
        "<div>",
        "<!--x-->",
        "<?x>",
        "</",
        "</ b>",
        "</b",
        "<pre>\n",
        "\n<pre>\n",
        "<script>",
        "<abbr>",
        "<a",
        "<a >",
        "\r",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "\u{feff}",
        "</a>",
    ];

    const ELEMENTS: [(&str, &str); 8] = [
        ("<b>", "</b>"),
        ("<i>", "</i>"),
        ("<em>", "</em>"),
        ("<strong>", "</strong>"),
        ("<code>", "</code>"),
        ("<pre>", "</pre>"),
        ("<a>", "</a>"),
        ("<a rel=\"noopener noreferrer\">", "</a>"),
    ];

    /// Start tags of links: allowed, normalized, blocked, refused, and a
    /// few spellings outside the grammar.
    const LINKS: [&str; 24] = [
        "<a href=\"https://ok.example/\">",
        "<a href=\"https://ok.example/docs\" rel=\"noopener noreferrer\">",
        "<a href=\"HTTPS://OK.example\">",
        "<a href=\"https://ok.example/?a=1&amp;b=2\">",
        "<a href=\"https://ok.example/?a=1&b=2\">",
        "<a href=\"https://ok.example/?q=&quot;\">",
        "<a href=\"https://ok.example/a b<c>'\">",
        "<a href=\"https://ok.example/\u{a0}é\">",
        "<a href=\" https://ok.example/\n\">",
        "<a href=\"https://bücher.example/\">",
        "<a href=\"https://evil.example/x\">",
        "<a href=\"https://a.tracker.example/\">",
        "<a href=\"http://u:p@ok.example/\">",
        "<a href=\"javascript:alert(1)\">",
        "<a href=\"java\tscript:alert(1)\">",
        "<a href=\"/relative\">",
        "<a href=\"//ok.example/\">",
        "<a href=\"\">",
        "<a href=\"ftp://ok.example/\">",
        "<a href=\"https://[::1]/\">",
        "<a href='https://ok.example/'>",
        "<a href=https://ok.example/>",
        "<a href=\"https://ok.example/\" title=\"x\">",
        "<a rel=\"noopener noreferrer\" href=\"https://ok.example/\">",
    ];

    /// Chat-like markup: mostly well-nested elements around text (inside
    /// the grammar), with near misses and unclosed elements mixed in.
    fn chat_markup() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            24 => prop::sample::select(&TEXT[..]).prop_map(str::to_owned),
            1 => prop::sample::select(&NEAR_MISSES[..]).prop_map(str::to_owned),
            2 => Just("<br>".to_owned()),
            2 => any::<char>().prop_map(String::from),
        ];
        let element = prop_oneof![
            4 => prop::sample::select(&ELEMENTS[..]),
            1 => prop::sample::select(&LINKS[..]).prop_map(|start| (start, "</a>")),
        ];
        let tree = leaf.prop_recursive(3, 32, 5, move |inner| {
            (element.clone(), prop::collection::vec(inner, 0..6), prop::bool::weighted(0.95)).prop_map(
                |((start, end), children, closed)| {
                    let mut out = start.to_owned();
                    out.extend(children);
                    if closed {
                        out.push_str(end);
                    }
                    out
                },
            )
        });
        prop::collection::vec(tree, 1..6).prop_map(|parts| parts.concat())
    }

    /// What `fast` claims: the parser's pass writes the same, and renders
    /// that to itself.
    fn check_claims(html: &Html, input: &str) -> Result<(), TestCaseError> {
        if let Some(out) = fast(input) {
            prop_assert_eq!(parse(&html.builder, input, usize::MAX), Ok(out.clone()), "parser on {:?}", input);
            let again = fast(&out);
            prop_assert_eq!(again.as_ref(), Some(&out), "not a fixed point: {:?}", input);
        }
        prop_assert_eq!(html.clean(input), clean_by_parsing(html, input), "clean on {:?}", input);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_simple_path_agrees_with_the_parser_on_chat_markup(input in chat_markup()) {
            check_claims(&Html::new(blocked()), &input)?;
        }

        #[test]
        fn the_simple_path_agrees_with_the_parser_on_anything(input in crate::sanitize::tests::tricky()) {
            check_claims(&Html::new(blocked()), &input)?;
        }

    }

    proptest! {
        // Heavy markup is mostly outside the grammar and slow to parse.
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_simple_path_agrees_with_the_parser_on_heavy_markup(input in crate::sanitize::tests::markup()) {
            check_claims(&Html::new(blocked()), &input)?;
        }
    }

    #[test]
    fn the_chat_markup_mostly_takes_the_simple_path() {
        // The agreement test means little if its inputs rarely get here.
        let mut runner = TestRunner::deterministic();
        let strategy = chat_markup();
        let samples: Vec<String> = (0..1000).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();
        let simple = samples.iter().filter(|s| fast(s).is_some()).count();
        assert!(simple > 300, "{simple} of 1000");
        assert!(simple < 950, "{simple} of 1000: too few near misses");
    }

    #[test]
    fn the_bench_message_takes_the_simple_path() {
        let input = "Hello <b>world</b>, see <a href=\"https://example.com/docs\">the docs</a> and reply soon!";
        let out = "Hello <b>world</b>, see <a href=\"https://example.com/docs\" rel=\"noopener noreferrer\">the docs</a> \
                   and reply soon!";
        assert_eq!(fast(input).as_deref(), Some(out));
        assert_eq!(fast(out).as_deref(), Some(out));
        assert_eq!(Html::new(blocked()).clean(input), Ok(Some(out.to_owned())));
    }

    #[test]
    fn what_the_grammar_accepts() {
        for (input, out) in [
            ("<b><i>x", "<b><i>x</i></b>"),
            ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
            ("&amp;&lt;&gt;&nbsp;\u{a0}", "&amp;&lt;&gt;&nbsp;&nbsp;"),
            ("<3 & <= ", "&lt;3 &amp; &lt;= "),
            ("<pre>x\ny</pre><br>", "<pre>x\ny</pre><br>"),
            ("<a href=\"https://evil.example/\">x</a>", "<a rel=\"noopener noreferrer\">x</a>"),
            ("<a>x", "<a rel=\"noopener noreferrer\">x</a>"),
            (
                "<a href=\"HTTPS://OK.example/?a=1&amp;b=2\">",
                "<a href=\"https://ok.example/?a=1&amp;b=2\" rel=\"noopener noreferrer\"></a>",
            ),
        ] {
            assert_eq!(fast(input).as_deref(), Some(out), "{input:?}");
        }
    }

    #[test]
    fn what_the_grammar_leaves_to_the_parser() {
        for input in [
            "</b>",
            "<b>x</i>",
            "<b><i>x</b>",
            "<b><b>x",
            "<a><a>",
            "<a href=\"https://ok.example/\"><b><a>",
            "<pre>\nx",
            "<B>",
            "<b class=x>",
            "<a href=https://ok.example/>",
            "<a href=\"https://ok.example/?a=1&b=2\">",
            "&copy;",
            "&#60;",
            "<!-- x -->",
            "<?x>",
            "\u{feff}<b>",
            "a\rb",
            "a\u{0}b",
            "a\u{85}b",
        ] {
            assert_eq!(fast(input), None, "{input:?}");
        }
    }
}
