//! Properties every rule owes the pipeline, whatever a client sends: no
//! panic, and a second pass changes nothing.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const RULES: [Rule; 5] = [Rule::Html, Rule::Text, Rule::Url, Rule::Filename, Rule::Profanity];

fn settings(url_invalid: InvalidUrl) -> SanitizeSettings {
    SanitizeSettings {
        url_blocked_hosts: vec!["evil.example".to_owned(), "*.tracker.example".to_owned()],
        url_invalid,
        profanity_words: vec!["darn".to_owned(), "heck".to_owned(), "bad word".to_owned()],
        filename_max_len: 12,
    }
}

/// Fragments that exercise the interesting paths of every rule, so random
/// strings reach markup, entities, links, traversal and words often.
pub(super) fn tricky() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("<"),
        Just(">"),
        Just("&"),
        Just("\""),
        Just("'"),
        Just("<b>"),
        Just("</b>"),
        Just("<i>"),
        Just("<pre>"),
        Just("</pre>"),
        Just("<a href=\""),
        Just("<a href="),
        Just("<script>"),
        Just("<svg>"),
        Just("<math>"),
        Just("<style>"),
        Just("<table>"),
        Just("<noscript>"),
        Just("<marquee>"),
        Just("<td>"),
        Just("<p>"),
        Just("<select>"),
        Just("<textarea>"),
        Just("<plaintext>"),
        Just("<a href=https://ok.example/>"),
        Just("</a>"),
        Just("<!--"),
        Just("-->"),
        Just("&amp;"),
        Just("&lt;"),
        Just("&#x27;"),
        Just("&#1;"),
        Just("&#x301;"),
        Just("http://"),
        Just("HTTPS://"),
        Just("javascript:"),
        Just("user:pw@"),
        Just("evil.example"),
        Just("a.tracker.example"),
        Just("ok.example"),
        Just("/"),
        Just("\\"),
        Just(".."),
        Just("."),
        Just(" "),
        Just("_"),
        Just("-"),
        Just("*"),
        Just("\n"),
        Just("\r"),
        Just("\t"),
        Just("\u{0}"),
        Just("\u{a0}"),
        Just("\u{301}"),
        Just("\u{feff}"),
        Just("\u{7f}"),
        Just("&#x7f;"),
        Just("darn"),
        Just("HECK"),
        Just("bad word"),
        Just("é"),
        Just("x"),
    ];
    prop_oneof![
        prop::collection::vec(
            prop_oneof![3 => token.prop_map(str::to_owned), 1 => any::<char>().prop_map(String::from)],
            0..24
        )
        .prop_map(|parts| parts.concat()),
        any::<String>(),
    ]
}

/// Formatting elements: the tree builder reopens them in every new block.
const FORMATTING: [&str; 14] =
    ["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"];

/// The room-killer chat message: a `<p>`, 80 distinct formatting elements,
/// then `<p>x` up to 2,000 characters.
pub(crate) fn amplifier() -> String {
    let mut out = String::from("<p>");
    for (i, tag) in FORMATTING.iter().cycle().take(80).enumerate() {
        out.push_str(&format!("<{tag} id={i}>"));
    }
    while out.len() + 4 <= 2000 {
        out.push_str("<p>x");
    }
    while out.len() < 2000 {
        out.push('x');
    }
    out
}

/// Markup-heavy strings: runs of formatting elements (distinct by their
/// attributes, so none is deduplicated), blocks, quotes and `&`.
pub(crate) fn markup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        (0..FORMATTING.len(), 0..1000u32).prop_map(|(t, id)| format!("<{} id={id}>", FORMATTING[t])),
        Just("<p>x".to_owned()),
        Just("<p>".to_owned()),
        Just("<div>".to_owned()),
        Just("<li>".to_owned()),
        Just("<table><td>".to_owned()),
        Just("<a href=https://ok.example/>".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("&".to_owned()),
        Just("&nbsp;".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("<".to_owned()),
        Just("x".to_owned()),
    ];
    prop::collection::vec(token, 0..200).prop_map(|parts| parts.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("__proto__".to_owned()),
        Just("constructor".to_owned()),
        Just("prototype".to_owned()),
        Just("__proto__\u{0}".to_owned()),
        Just("a\u{1}".to_owned()),
        tricky(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        tricky().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every key and string in `v`: no prototype keys, no control characters.
fn assert_normalized(v: &Value) {
    let clean = |s: &str| !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    match v {
        Value::String(s) => assert!(clean(s), "{s:?}"),
        Value::Array(items) => items.iter().for_each(assert_normalized),
        Value::Object(map) => {
            for (k, item) in map {
                assert!(clean(k) && !["__proto__", "constructor", "prototype"].contains(&k.as_str()), "{k:?}");
                assert_normalized(item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

proptest! {
    // Failures are reported, not written next to the crate: copy a shrunk
    // case into a unit test instead.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_rule_is_idempotent(input in tricky()) {
        for url_invalid in [InvalidUrl::Reject, InvalidUrl::Remove] {
            let s = Sanitizers::new(&settings(url_invalid)).unwrap();
            for rule in RULES {
                if let Ok(out) = s.apply(rule, &input) {
                    prop_assert_ne!(out.as_deref(), Some(input.as_str()), "Some means changed");
                    let once = out.unwrap_or_else(|| input.clone());
                    prop_assert_eq!(s.apply(rule, &once), Ok(None), "{:?} on {:?} gave {:?}", rule, input, once);
                }
            }
        }
    }

    #[test]
    fn field_rules_never_panic_and_always_normalize(mut value in json_value()) {
        let s = Sanitizers::new(&settings(InvalidUrl::Remove)).unwrap();
        let pairs: Vec<(String, Vec<Rule>)> = vec![
            ("/a".to_owned(), vec![Rule::Html, Rule::Profanity]),
            ("/*/b".to_owned(), vec![Rule::Text]),
            ("/*/*".to_owned(), vec![Rule::Url]),
            ("/b/0".to_owned(), vec![Rule::Profanity, Rule::Filename]),
            ("/*/*/*".to_owned(), vec![Rule::Html]),
        ];
        let rules = FieldRules::new(&pairs).unwrap();
        super::normalize(&mut value);
        if rules.apply(&s, &mut value).is_ok() {
            assert_normalized(&value);
        }
    }
}

#[test]
fn formatting_amplification_is_refused_not_rendered() {
    let s = Sanitizers::new(&SanitizeSettings::default()).unwrap();
    let attack = amplifier();
    assert_eq!(attack.chars().count(), 2000);
    assert_eq!(s.apply(Rule::Html, &attack), Err(Refused::Expands));
    // The same shape, small enough to stay within the budget, is cleaned.
    assert_eq!(
        s.apply(Rule::Html, "<p><b id=1><i id=2>hi<p>x<p>y"),
        Ok(Some("<b><i>hi</i></b><b><i>x</i></b><b><i>y</i></b>".to_owned()))
    );
}

#[test]
fn escaped_text_is_never_refused_for_its_growth() {
    let s = Sanitizers::new(&SanitizeSettings::default()).unwrap();
    for text in ["&".repeat(2000), "<".repeat(500), "\u{a0}".repeat(1000), "a < b && c > d ".repeat(100)] {
        let out = s.apply(Rule::Html, &text).unwrap().unwrap();
        assert!(!out.contains('<'), "{out}");
    }
}

#[test]
fn rule_output_is_normalized_like_its_input() {
    let s = Sanitizers::new(&SanitizeSettings::default()).unwrap();
    // The parser decodes a combining accent that normalization never saw.
    assert_eq!(s.apply(Rule::Html, "<b>e&#x301;</b>"), Ok(Some("<b>\u{e9}</b>".to_owned())));
    assert_eq!(s.apply(Rule::Html, "e&#x301;"), Ok(Some("\u{e9}".to_owned())));
}

#[test]
fn rule_names_match_config() {
    for (name, rule) in [
        ("html", Rule::Html),
        ("text", Rule::Text),
        ("url", Rule::Url),
        ("filename", Rule::Filename),
        ("profanity", Rule::Profanity),
    ] {
        assert_eq!(name.parse::<Rule>(), Ok(rule));
        assert_eq!(serde_json::to_value(rule).unwrap(), Value::from(name));
        assert_eq!(serde_json::from_value::<Rule>(Value::from(name)).unwrap(), rule);
    }
    let err = "HTML".parse::<Rule>().unwrap_err();
    assert!(err.contains("`HTML`") && err.contains("html, text, url, filename, profanity"), "{err}");
}

#[test]
fn settings_default_from_an_empty_table_and_refuse_unknown_keys() {
    let empty: SanitizeSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, SanitizeSettings::default());
    assert_eq!(empty.filename_max_len, 255);
    assert_eq!(empty.url_invalid, InvalidUrl::Reject);
    let some: SanitizeSettings = serde_json::from_str(r#"{"url_invalid": "remove"}"#).unwrap();
    assert_eq!(some.url_invalid, InvalidUrl::Remove);
    assert!(serde_json::from_str::<SanitizeSettings>(r#"{"url_blocked": []}"#).is_err());
}

#[test]
fn bad_settings_are_named() {
    let bad = |s: SanitizeSettings| Sanitizers::new(&s).unwrap_err();
    let err = bad(SanitizeSettings { url_blocked_hosts: vec!["a b".to_owned()], ..Default::default() });
    assert!(err.starts_with("url_blocked_hosts"), "{err}");
    let err = bad(SanitizeSettings { profanity_words: vec!["*".to_owned()], ..Default::default() });
    assert!(err.starts_with("profanity_words"), "{err}");
    let err = bad(SanitizeSettings { filename_max_len: 0, ..Default::default() });
    assert!(err.starts_with("filename_max_len"), "{err}");
}

#[test]
fn sanitizers_are_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Sanitizers>();
    shared::<FieldRules>();
}

#[test]
fn each_rule_through_the_public_api() {
    let s = Sanitizers::new(&settings(InvalidUrl::Reject)).unwrap();
    assert_eq!(s.apply(Rule::Html, "<b onclick=x>hi</b>"), Ok(Some("<b>hi</b>".to_owned())));
    assert_eq!(s.apply(Rule::Html, "just text"), Ok(None));
    assert_eq!(s.apply(Rule::Text, "<b>"), Ok(Some("&lt;b&gt;".to_owned())));
    assert_eq!(s.apply(Rule::Url, "https://ok.example/"), Ok(None));
    assert_eq!(s.apply(Rule::Url, "HTTP://ok.example"), Ok(Some("http://ok.example/".to_owned())));
    assert_eq!(s.apply(Rule::Url, "https://x.tracker.example/"), Err(Refused::Invalid("url not allowed")));
    assert_eq!(s.apply(Rule::Filename, "../x.txt"), Ok(Some("x.txt".to_owned())));
    assert_eq!(s.apply(Rule::Filename, "/.."), Err(Refused::Invalid("empty file name")));
    assert_eq!(s.apply(Rule::Profanity, "oh heck"), Ok(Some("oh ****".to_owned())));

    let remove = Sanitizers::new(&settings(InvalidUrl::Remove)).unwrap();
    assert_eq!(remove.apply(Rule::Url, "ftp://ok.example/"), Ok(Some(String::new())));
    assert_eq!(remove.apply(Rule::Url, ""), Ok(None));
}
