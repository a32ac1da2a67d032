//! The normalization every string and key gets, whatever the event declares.
//!
//! - NFC, so two clients comparing "é" agree on what they received;
//! - control characters (Unicode `Cc`: C0, DEL, C1) removed except `\n` and
//!   `\t`, because they corrupt logs and terminals and hide text from readers;
//! - keys `__proto__`, `constructor` and `prototype` dropped at any depth,
//!   because a JavaScript client that merges the data into an object would
//!   otherwise let a sender rewrite every object's prototype.
//!
//! Already-clean strings (nearly all of them) are checked without allocating.

use serde_json::{Map, Value};
use unicode_normalization::{IsNormalized, UnicodeNormalization as _, is_nfc_quick};

const DROPPED_KEYS: [&str; 3] = ["__proto__", "constructor", "prototype"];

/// Normalizes every string and key in `value`, in place. Recursion is bounded
/// by the depth limit of the parser that built `value`.
pub(super) fn value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(n) = normalized(s) {
                *s = n;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(self::value),
        Value::Object(map) => {
            object_keys(map);
            map.values_mut().for_each(self::value);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The normalized string, if it differs.
pub(super) fn normalized(s: &str) -> Option<String> {
    // ASCII is NFC (no two ASCII characters compose), so only its controls
    // can need removing: one pass over bytes instead of two over chars.
    if s.is_ascii() {
        let control = |b: &u8| b.is_ascii_control() && *b != b'\n' && *b != b'\t';
        return s.bytes().any(|b| control(&b)).then(|| s.bytes().filter(|b| !control(b)).map(char::from).collect());
    }
    let has_controls = s.chars().any(stripped);
    if !has_controls && is_nfc_quick(s.chars()) == IsNormalized::Yes {
        return None;
    }
    // Strip first: a control between a letter and a combining mark blocks
    // composition, so composing first would leave a non-NFC result.
    let out: String = s.chars().filter(|c| !stripped(*c)).nfc().collect();
    (out != s).then_some(out)
}

/// `s` without control characters, if it had any.
pub(super) fn without_controls(s: &str) -> Option<String> {
    s.contains(stripped).then(|| s.chars().filter(|c| !stripped(*c)).collect())
}

/// A control character normalization removes.
pub(super) fn stripped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn object_keys(map: &mut Map<String, Value>) {
    if !map.keys().any(|k| DROPPED_KEYS.contains(&k.as_str()) || normalized(k).is_some()) {
        return;
    }
    let mut renamed = Vec::new();
    for (key, v) in std::mem::take(map) {
        match normalized(&key) {
            None if !DROPPED_KEYS.contains(&key.as_str()) => {
                map.insert(key, v);
            }
            Some(key) if !DROPPED_KEYS.contains(&key.as_str()) => renamed.push((key, v)),
            _ => {}
        }
    }
    // A key that only equals another after normalization never replaces it:
    // the clean one is the one the schema validated.
    for (key, v) in renamed {
        map.entry(key).or_insert(v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn normalized_value(mut v: Value) -> Value {
        value(&mut v);
        v
    }

    #[test]
    fn strings_become_nfc() {
        assert_eq!(normalized("e\u{301}"), Some("é".to_owned()));
        assert_eq!(normalized("é"), None);
        assert_eq!(normalized("\u{212b}"), Some("\u{c5}".to_owned()), "the Ångström sign becomes Å");
        assert_eq!(normalized("한"), None);
        assert_eq!(normalized("\u{1112}\u{1161}\u{11ab}"), Some("한".to_owned()));
    }

    #[test]
    fn controls_are_stripped_except_newline_and_tab() {
        assert_eq!(normalized("a\u{0}b\u{1b}[31mc\u{7f}d\u{85}e\u{9f}f"), Some("ab[31mcdef".to_owned()));
        assert_eq!(normalized("line\nnext\tcol"), None);
        assert_eq!(normalized("cr\r\nlf"), Some("cr\nlf".to_owned()));
        assert_eq!(normalized("e\u{1}\u{301}"), Some("é".to_owned()), "strip, then compose");
        assert_eq!(normalized("\u{200b}\u{202e}"), None, "format characters are not controls");
    }

    #[test]
    fn ascii_is_checked_byte_by_byte_with_the_same_result() {
        for b in 0..=0x7f_u8 {
            let s = format!("a{}b", char::from(b));
            let by_chars: String = s.chars().filter(|c| !stripped(*c)).collect();
            assert_eq!(normalized(&s), (by_chars != s).then_some(by_chars), "{b:#x}");
        }
    }

    #[test]
    fn clean_strings_are_not_copied() {
        for s in ["", "plain ascii", "ünïcödé", "emoji 🎉", "tab\tand\nnewline"] {
            assert_eq!(normalized(s), None, "{s:?}");
        }
    }

    #[test]
    fn prototype_keys_dropped_at_any_depth() {
        let v = normalized_value(json!({
            "__proto__": {"isAdmin": true},
            "a": {"b": {"constructor": {"prototype": 1}, "prototype": 2, "keep": 3}},
            "list": [{"__proto__": 1, "x": [{"constructor": 2, "y": 3}]}],
            "not__proto__": 4,
        }));
        assert_eq!(v, json!({"a": {"b": {"keep": 3}}, "list": [{"x": [{"y": 3}]}], "not__proto__": 4}));
    }

    #[test]
    fn keys_are_normalized_too() {
        let v =
            normalized_value(json!({"e\u{301}": "e\u{301}", "k\u{0}": [{"x\u{7}": "v\u{1b}"}], "__proto__\u{0}": 1}));
        assert_eq!(v, json!({"é": "é", "k": [{"x": "v"}]}));
    }

    #[test]
    fn a_normalized_key_never_overwrites_a_clean_one() {
        for raw in [r#"{"role\u0000": "admin", "role": "user"}"#, r#"{"role": "user", "role\u0000": "admin"}"#] {
            let v = normalized_value(serde_json::from_str(raw).unwrap());
            assert_eq!(v, json!({"role": "user"}), "{raw}");
        }
    }

    #[test]
    fn other_values_are_left_alone() {
        let v = json!([null, true, 1, -2.5, {"n": 3}]);
        assert_eq!(normalized_value(v.clone()), v);
    }
}
