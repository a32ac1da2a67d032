//! The `simple` path against the parser: on random markup, what `simple`
//! writes is what a pass of the parser writes, it renders to itself, and
//! `Html::clean` answers as it did before `simple` existed.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;

use super::simple::render;
use super::{Expands, Html, MAX_ROUNDS, MAX_TAGS, as_text, budget, is_plain_text, render as parse};
use crate::sanitize::link::BlockedHosts;

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
    "hello", " ", "x", "é", "e\u{301}", "🎉", "\"", "'", "\n", "\t", "a & b", "&", "&amp;", "&lt;", "&gt;", "&nbsp;",
    "\u{a0}", ">", "a < b", "<3", "<", "&;", "&&", "=", "/", "-", "1", "\u{200b}", "<=", "& #",
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
