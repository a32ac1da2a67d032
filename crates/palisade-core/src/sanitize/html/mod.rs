//! The `html` rule: a few inline tags survive, nothing executable does.
//!
//! ammonia parses with html5ever, the same tree builder algorithm browsers
//! use, and serializes the cleaned tree, so what comes out is what a browser
//! would build from it (no mutation-XSS gap between "what we checked" and
//! "what renders"). The allowlist is deliberately chat-sized: emphasis, code,
//! line breaks and links. Links must pass the same policy as the `url` rule.
//!
//! The tree builder can multiply its input: "reconstruct the active
//! formatting elements" reopens every unclosed formatting element (`<b>`,
//! `<i>`, `<u>`, `<a>`, … up to three of each distinct tag and attributes)
//! at every new block, so 2 KB of `<b id=1><i id=2>…` followed by `<p>x`
//! runs serializes to about 100 KB. A render pass that outgrows
//! [`budget`] is abandoned (serialization stops at the budget) and the
//! fragment refused, rather than shown as text: the sender learns that the
//! message was not sent as written, and no one pays for the copy.
//!
//! Markup of the shape chat messages carry (well-nested allowed tags around
//! text) skips the parser: [`simple`] writes what it would, and says why the
//! two agree.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io;

use ammonia::{Builder, UrlRelative};

use super::link::{self, BlockedHosts};
use super::normalize;

mod simple;
#[cfg(test)]
mod simple_tests;

const TAGS: [&str; 8] = ["b", "i", "em", "strong", "code", "pre", "br", "a"];

/// Dropped with everything inside them: their content is code, a separate
/// parsing context, or markup a user never means to show as text.
const DROP_WITH_CONTENT: [&str; 10] =
    ["script", "style", "svg", "math", "iframe", "noscript", "template", "object", "embed", "xmp"];

/// Rounds of re-cleaning before giving up on markup. Property tests never
/// needed more than two (a link nested in a link settles in two passes).
const MAX_ROUNDS: usize = 4;

/// Most `<` a fragment may contain and still be parsed. The tree builder's
/// scope checks walk the stack of open elements, so deeply nested input costs
/// quadratic time (400 KB of `<div>` took 30 s); above this, the
/// fragment is shown as text instead, which costs one linear pass. Browsers
/// cap nesting for the same reason.
const MAX_TAGS: usize = 512;

/// A render pass may write at most `GROWTH` × the input's escaped length +
/// `SLACK` bytes. Measured with the unit tests' corpora (XSS vectors,
/// allowed markup, chat messages with links and paragraphs, 3,000 of the
/// property tests' fragments): the largest ratio of output to escaped input
/// is 1.96, for a lone unclosed link (`<a href=https://x.io>x`, 28 bytes
/// escaped, gains quotes, a `/`, `rel="noopener noreferrer"` and `</a>`:
/// 55 bytes); twenty links in a row come to 1.40. The 2,000-character
/// amplification above comes to 96 KB, 23 times its escaped length.
const GROWTH: usize = 2;
/// See [`GROWTH`]: headroom for very short fragments.
const SLACK: usize = 256;

/// A render pass outgrew its [`budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expands;

/// The `html` sanitizer, shared by every connection (`Builder` is Send + Sync).
#[derive(Debug)]
pub(super) struct Html {
    builder: Builder<'static>,
    /// The hosts the builder's href filter blocks, for [`simple`].
    blocked: BlockedHosts,
}

impl Html {
    pub(super) fn new(blocked: BlockedHosts) -> Self {
        let mut builder = Builder::empty();
        let filter_blocked = blocked.clone();
        builder
            .tags(HashSet::from(TAGS))
            .clean_content_tags(HashSet::from(DROP_WITH_CONTENT))
            .generic_attributes(HashSet::new())
            .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
            .url_schemes(HashSet::from(["http", "https"]))
            // A relative href would resolve against whatever page renders
            // it, and `//host` would dodge the blocked-host list.
            .url_relative(UrlRelative::Deny)
            .link_rel(Some(simple::REL))
            .strip_comments(true)
            .attribute_filter(move |element, attribute, value| {
                if element == "a" && attribute == "href" {
                    link::allowed(value, &filter_blocked)
                        .map(|v| if v == value { Cow::Borrowed(value) } else { Cow::Owned(v) })
                } else {
                    Some(Cow::Borrowed(value))
                }
            });
        Self { builder, blocked }
    }

    /// Cleans one fragment; `None` if it is already clean.
    pub(super) fn clean(&self, input: &str) -> Result<Option<String>, Expands> {
        if is_plain_text(input) {
            return Ok(None);
        }
        if input.bytes().filter(|&b| b == b'<').count() > MAX_TAGS {
            return Ok(as_text(input));
        }
        let budget = budget(input);
        // Over budget, the parser's pass would have stopped writing too.
        if let Some(out) = simple::render(input, &self.blocked).filter(|out| out.len() <= budget) {
            return Ok((out != input).then_some(out));
        }
        let mut out = render(&self.builder, input, budget)?;
        // Output equal to its input is a fixed point by definition; other
        // output may not be: the parser can build a tree that no HTML text
        // reproduces once disallowed elements are unwrapped (`<a>1<marquee>
        // <a>2` nests one link in another), and parsing the serialization
        // then builds a different tree. Clean until nothing changes.
        for _ in 0..MAX_ROUNDS {
            if out == input {
                return Ok(None);
            }
            // Output that `simple` renders to itself is what a pass of the
            // parser would write too (it is no longer than this pass wrote,
            // so within the budget): a fixed point, without parsing it.
            if simple::render(&out, &self.blocked).is_some_and(|again| again == out) {
                return Ok(Some(out));
            }
            let again = render(&self.builder, &out, budget)?;
            if again == out {
                return Ok(Some(out));
            }
            out = again;
        }
        Ok(as_text(input))
    }
}

/// The most a render pass of `input` may write. Escaping alone makes text
/// up to five times longer (`&` is `&amp;`), and refusing text for being
/// escaped would be wrong, so growth is measured against the length of
/// `input` written as text (what [`as_text`] writes, before it drops
/// anything).
fn budget(input: &str) -> usize {
    let escaped: usize = input
        .chars()
        .map(|c| match c {
            '&' => 5,
            '<' | '>' => 4,
            '\u{a0}' => 6,
            c => c.len_utf8(),
        })
        .sum();
    escaped.saturating_mul(GROWTH).saturating_add(SLACK)
}

/// A sink that refuses to grow past its limit, so an amplified tree is never
/// serialized whole.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() + bytes.len() > self.limit {
            return Err(io::Error::other("over budget"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `input` as inert text, written exactly as the serializer writes a text
/// node, so a later pass parses it back to the same text and changes nothing.
fn as_text(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            // The same repairs as `render`, for the same reasons.
            '\u{feff}' if out.is_empty() => {}
            c if normalize::stripped(c) => {}
            c => out.push(c),
        }
    }
    (out != input).then_some(out)
}

/// One pass of a builder, plus the repairs that make passes agree; `Err`
/// as soon as it would write more than `budget` bytes.
fn render(builder: &Builder<'static>, input: &str, budget: usize) -> Result<String, Expands> {
    let mut sink = Capped { buf: Vec::with_capacity(input.len() + input.len() / 4), limit: budget };
    // The only error the sink returns is its own.
    builder.clean(input).write_to(&mut sink).map_err(|_| Expands)?;
    // The serializer writes whole `str`s, so the bytes are UTF-8.
    let out = String::from_utf8(sink.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    // `&#1;` decodes to a control character that normalization would have
    // stripped (and `&#13;` to a CR the next parse turns into LF). Outside
    // text, the output holds only our own tag and attribute names and hrefs
    // the URL parser percent-encoded, so this only touches text.
    let mut out = normalize::without_controls(&out).unwrap_or(out);
    // The parser drops a newline right after `<pre>` and the serializer does
    // not put it back, so each pass would eat one more leading newline.
    // `<pre>` appears in the output only as our own attribute-less tag.
    if out.contains("<pre>\n") {
        out = out.replace("<pre>\n", "<pre>\n\n");
    }
    // The parser skips a byte order mark at the very start, so one that ends
    // up there (`<p>\u{feff}x`) would vanish on the next pass.
    if out.starts_with('\u{feff}') {
        out = out.trim_start_matches('\u{feff}').to_owned();
    }
    Ok(out)
}

/// Text that the parser and serializer would both leave byte-for-byte alone:
/// most chat messages, which then skip parsing entirely.
fn is_plain_text(input: &str) -> bool {
    !input.contains(['<', '>', '&', '\r', '\0', '\u{a0}']) && !input.starts_with('\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean_with(blocked: &[&str], input: &str) -> String {
        let blocked = BlockedHosts::new(&blocked.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        Html::new(blocked).clean(input).unwrap().unwrap_or_else(|| input.to_owned())
    }

    fn cleaned(input: &str) -> String {
        clean_with(&[], input)
    }

    /// One start tag of serialized output: name and (name, value) attributes.
    type Tag = (String, Vec<(String, String)>);

    /// Reads the start tags out of serialized ammonia output (which always
    /// quotes attributes with `"` and escapes `<` in text), so assertions can
    /// look at attributes instead of grepping text that is harmless.
    fn start_tags(html: &str) -> Vec<Tag> {
        let mut tags = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            if rest.starts_with('/') {
                continue;
            }
            let end = rest.find(['>', ' ']).unwrap_or(rest.len());
            let name = rest[..end].to_ascii_lowercase();
            rest = &rest[end..];
            let mut attrs = Vec::new();
            loop {
                rest = rest.trim_start_matches(' ');
                if rest.starts_with('>') || rest.starts_with("/>") || rest.is_empty() {
                    break;
                }
                let eq = rest.find('=').unwrap();
                let attr = rest[..eq].to_ascii_lowercase();
                let value_start = &rest[eq + 1..];
                assert!(value_start.starts_with('"'), "unquoted attribute in {html}");
                let close = value_start[1..].find('"').unwrap();
                attrs.push((attr, value_start[1..=close].to_owned()));
                rest = &value_start[close + 2..];
            }
            tags.push((name, attrs));
        }
        tags
    }

    fn assert_inert(input: &str) {
        let out = cleaned(input);
        let lower = out.to_ascii_lowercase();
        for needle in ["<script", "<svg", "<math", "<style", "<iframe", "<img", "<noscript"] {
            assert!(!lower.contains(needle), "{needle} in {out:?} from {input:?}");
        }
        for (tag, attrs) in start_tags(&out) {
            assert!(TAGS.contains(&tag.as_str()), "tag {tag} in {out:?} from {input:?}");
            for (name, value) in attrs {
                assert!(!name.starts_with("on"), "handler {name} in {out:?} from {input:?}");
                assert!(matches!((tag.as_str(), name.as_str()), ("a", "href" | "rel")), "{name} in {out:?}");
                let value = value.to_ascii_lowercase();
                for scheme in ["javascript:", "vbscript:", "data:"] {
                    assert!(!value.contains(scheme), "{scheme} in {out:?} from {input:?}");
                }
            }
        }
        assert_eq!(cleaned(&out), out, "not idempotent for {input:?}");
    }

    #[test]
    fn xss_corpus_comes_out_inert() {
        for attack in [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
            "<scr<script>ipt>alert(1)</script>",
            "<<script>script>alert(1)<</script>/script>",
            "<img src=x onerror=alert(1)>",
            "<b onmouseover=alert(1)>x</b>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "<a href=\"&#x6A;&#x61;vascript&colon;alert(1)\">x</a>",
            "<a href=\"java&#x09;script:alert(1)\">x</a>",
            "<a href=\"java\nscript:alert(1)\">x</a>",
            "<a href=\" javascript:alert(1)\">x</a>",
            "<a href=\"vbscript:msgbox(1)\">x</a>",
            "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
            "<a href=javascript:alert(1) onclick=alert(1) style=x>x</a>",
            "<svg><set attributeName=\"href\" to=\"javascript:alert(1)\"/></svg>",
            "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
            "<svg onload=alert(1)>",
            "<math><annotation-xml encoding=\"text/html\"><style><img src=x onerror=alert(1)></style></annotation-xml></math>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
            "<style>@import 'http://evil.example/x.css';</style>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<object data=\"data:text/html,<script>alert(1)</script>\"></object>",
            "<embed src=\"javascript:alert(1)\">",
            "<form action=\"javascript:alert(1)\"><button>x</button></form>",
            "<template><img src=x onerror=alert(1)></template>",
            "<xmp><img src=x onerror=alert(1)></xmp>",
            "<textarea><img src=x onerror=alert(1)></textarea>",
            "<title></title><img src=x onerror=alert(1)>",
            "<plaintext><img src=x onerror=alert(1)>",
            "<a href=\"https://ok.example/?q=<script>&x=\\\"\">x</a>",
            "<!--<img src=x onerror=alert(1)>-->",
            "<![CDATA[<img src=x onerror=alert(1)>]]>",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
            "<base href=\"javascript:alert(1)//\">",
            "<b><i>x",
            "<a href=\"https://ok.example/\" onfocus=alert(1) autofocus>x</a>",
            "<pre>\n\n<b>x</b></pre>",
        ] {
            assert_inert(attack);
        }
    }

    #[test]
    fn allowed_markup_is_kept() {
        assert_eq!(
            cleaned("<a href=\"https://ok.example/\">ok</a>"),
            "<a href=\"https://ok.example/\" rel=\"noopener noreferrer\">ok</a>"
        );
        let kept = "<b>b</b><i>i</i><em>em</em><strong>s</strong><code>c</code><pre>p</pre><br>";
        assert_eq!(Html::new(BlockedHosts::default()).clean(kept), Ok(None));
        assert_eq!(cleaned("<b><i>x"), "<b><i>x</i></b>");
        assert_eq!(cleaned("<p class=x>para</p>"), "para");
        assert_eq!(cleaned("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    }

    #[test]
    fn hrefs_follow_the_url_policy() {
        let out = clean_with(&["*.evil.example"], "<a href=\"https://x.evil.example/\">x</a>");
        assert_eq!(out, "<a rel=\"noopener noreferrer\">x</a>");
        for dropped in ["/relative", "//ok.example/", "http://u:p@ok.example/", "ftp://ok.example/"] {
            let out = cleaned(&format!("<a href=\"{dropped}\">x</a>"));
            assert_eq!(out, "<a rel=\"noopener noreferrer\">x</a>", "{dropped}");
        }
        assert_eq!(
            cleaned("<a href=\"HTTPS://OK.example\">x</a>"),
            "<a href=\"https://ok.example/\" rel=\"noopener noreferrer\">x</a>"
        );
    }

    #[test]
    fn passes_agree() {
        assert_eq!(cleaned("<pre>\n\nx</pre>"), "<pre>\n\nx</pre>", "the newline the parser eats is put back");
        assert_eq!(cleaned("<pre>\nx</pre>"), "<pre>x</pre>", "as a browser reads it");
        assert_eq!(cleaned("a&#1;b&#13;c&#x7f;d"), "abcd", "controls decoded from references are stripped");
        assert_eq!(cleaned("&#x9f;"), "\u{178}", "a C1 reference means windows-1252");
        for nested in [
            "<a href=https://ok.example/>1<marquee><a href=https://ok.example/>2",
            "<a href=https://ok.example/><table><td><a href=https://ok.example/>x</a></td></table>",
            "<s><a href=https://ok.example/><colgroup><table><a href=https://ok.example/>",
        ] {
            let once = cleaned(nested);
            assert_eq!(cleaned(&once), once, "{nested}");
            assert_eq!(once.matches("<a ").count(), once.matches("</a>").count(), "{once}");
        }
    }

    #[test]
    fn deep_nesting_is_shown_as_text_in_linear_time() {
        for unit in ["<div>", "<pre>\n", "<b><p>", "<a href=https://ok.example/>"] {
            let input = unit.repeat(200_000 / unit.len());
            let out = cleaned(&input);
            assert!(!out.contains('<'), "{unit}");
            assert_eq!(cleaned(&out), out);
        }
        let just_under = "<b>x</b>".repeat(MAX_TAGS / 2);
        assert_eq!(cleaned(&just_under), just_under);
    }

    #[test]
    fn plain_text_skips_the_parser() {
        assert!(is_plain_text("hello \"world\" it's fine"));
        assert_eq!(cleaned("hello \"world\" it's fine"), "hello \"world\" it's fine");
        assert!(!is_plain_text("a<b"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 512, failure_persistence: None, ..Default::default()
        })]

        #[test]
        fn the_fast_path_agrees_with_the_parser(input in crate::sanitize::tests::tricky()) {
            let html = Html::new(BlockedHosts::default());
            if is_plain_text(&input) {
                proptest::prop_assert_eq!(html.builder.clean(&input).to_string(), input);
            }
        }

        #[test]
        fn the_fallback_is_a_fixed_point(input in crate::sanitize::tests::tricky()) {
            let html = Html::new(BlockedHosts::default());
            let text = as_text(&input).unwrap_or(input);
            proptest::prop_assert!(!text.contains('<'), "{}", text);
            proptest::prop_assert_eq!(html.clean(&text), Ok(None));
        }
    }
}
