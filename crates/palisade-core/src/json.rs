//! Turning a client's untrusted JSON text into a `serde_json::Value` in
//! bounded time and memory.
//!
//! `serde_json::from_str::<Value>` is not enough for data an attacker wrote:
//! it recurses once per nesting level (up to its own limit of 128), and it
//! silently keeps the last of two duplicate keys, so a schema check and a
//! later consumer could disagree on what the message says. [`parse`] checks,
//! in this order: the size; the nesting depth, with a linear byte pre-scan
//! ([`check_depth`]) so the parser never recurses deeper than the limit; then
//! the syntax, refusing duplicate keys at any depth. Numbers that overflow
//! `f64` (`1e400`) and lone surrogate escapes (`"\ud800"`) are syntax errors
//! in serde_json already; the tests pin that.
//!
//! A depth limit above 127 is capped by serde_json's own recursion limit,
//! which then reports [`JsonError::Invalid`] instead of [`JsonError::TooDeep`].

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Limits for parsing untrusted JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects allowed; a scalar is depth 0,
    /// `[]` is depth 1.
    pub max_depth: usize,
    /// Longest text allowed, in bytes.
    pub max_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self { max_depth: 32, max_bytes: 64 * 1024 }
    }
}

/// Why untrusted JSON was refused (for the operator's log; the client only
/// ever sees `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The text is longer than the byte limit.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    /// Arrays and objects are nested deeper than the limit.
    #[error("nested deeper than {0}")]
    TooDeep(usize),
    /// An object has the same key twice.
    #[error("duplicate key")]
    DuplicateKey,
    /// Not JSON, or a number or string no `Value` can hold. The message is
    /// serde_json's fixed description plus line and column, never input text.
    #[error("invalid JSON: {0}")]
    Invalid(String),
}

/// Parses untrusted JSON text into a Value within `limits`.
pub fn parse(text: &str, limits: JsonLimits) -> Result<Value, JsonError> {
    if text.len() > limits.max_bytes {
        return Err(JsonError::TooLarge(limits.max_bytes));
    }
    check_depth(text, limits.max_depth)?;
    let duplicate = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = ValueSeed { duplicate: &duplicate }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    result.map_err(|e| {
        if duplicate.get() {
            JsonError::DuplicateKey
        } else if e.is_syntax() || e.is_eof() {
            // Every syntax/EOF message is a fixed string plus line and column.
            JsonError::Invalid(e.to_string())
        } else {
            // Data errors come from our visitor; keep the text fixed anyway.
            JsonError::Invalid(format!("invalid value at line {} column {}", e.line(), e.column()))
        }
    })
}

/// The depth pre-scan alone: Ok(max depth seen) or TooDeep. Linear, no
/// allocation.
///
/// Brackets inside string literals (including after escaped quotes) are not
/// counted. Malformed input gets an answer too; serde_json refuses it later,
/// never having nested deeper than this scan allowed.
pub fn check_depth(text: &str, max_depth: usize) -> Result<usize, JsonError> {
    let (mut depth, mut max_seen) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(JsonError::TooDeep(max_depth));
                }
                max_seen = max_seen.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(max_seen)
}

/// Builds a `Value` like serde_json's own, but refuses duplicate keys and
/// records that it did in `duplicate` (serde errors carry no kind we own).
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json already refuses overflow; never turn one into `null`.
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ok(text: &str) -> Value {
        parse(text, JsonLimits::default()).unwrap()
    }

    fn err(text: &str) -> JsonError {
        parse(text, JsonLimits::default()).unwrap_err()
    }

    fn nested(n: usize) -> String {
        "[".repeat(n) + &"]".repeat(n)
    }

    #[test]
    fn depth_counts_from_zero_and_32_is_the_default_limit() {
        assert_eq!(check_depth("1", 32), Ok(0));
        assert_eq!(check_depth("[]", 32), Ok(1));
        assert_eq!(check_depth("{}", 32), Ok(1));
        assert_eq!(check_depth("[[1]]", 32), Ok(2));
        assert_eq!(check_depth(r#"[{"a":[1]},[]]"#, 32), Ok(3));
        assert!(parse(&nested(32), JsonLimits::default()).is_ok());
        assert_eq!(err(&nested(33)), JsonError::TooDeep(32));
        let limits = JsonLimits { max_depth: 2, ..JsonLimits::default() };
        assert_eq!(parse("[[1]]", limits), Ok(json!([[1]])));
        assert_eq!(parse("[[[1]]]", limits), Err(JsonError::TooDeep(2)));
    }

    #[test]
    fn unclosed_nesting_bombs_are_too_deep_not_invalid() {
        let limits = JsonLimits { max_depth: 32, max_bytes: usize::MAX };
        assert_eq!(parse(&"[".repeat(100_000), limits), Err(JsonError::TooDeep(32)));
        assert_eq!(parse(&r#"{"a":"#.repeat(100_000), limits), Err(JsonError::TooDeep(32)));
    }

    #[test]
    fn brackets_and_escaped_quotes_inside_strings_are_not_nesting() {
        assert_eq!(check_depth(r#""[[[[\"]]]""#, 0), Ok(0));
        assert_eq!(ok(r#""[[[[\"]]]""#), json!("[[[[\"]]]"));
        assert_eq!(check_depth(r#"["\\", ["{"]]"#, 32), Ok(2));
        let limits = JsonLimits { max_depth: 1, ..JsonLimits::default() };
        assert_eq!(parse(r#"{"[[[": "{{{\"\\"}"#, limits), Ok(json!({"[[[": "{{{\"\\"})));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(err(r#"{"a":1,"a":2}"#), JsonError::DuplicateKey);
        assert_eq!(err(r#"[{"a":1},{"b":1,"c":{"x":0},"b":2}]"#), JsonError::DuplicateKey);
        assert_eq!(err(r#"{"k":[{"x":{"y":1,"y":1}}]}"#), JsonError::DuplicateKey);
        // Same key in sibling objects is fine, and escapes are compared decoded.
        assert_eq!(ok(r#"[{"a":1},{"a":2}]"#), json!([{"a":1},{"a":2}]));
        assert_eq!(err(r#"{"a":1,"\u0061":2}"#), JsonError::DuplicateKey);
    }

    #[test]
    fn numbers_must_fit_finitely() {
        for text in ["1e400", "-1e400", "[1e400]", &format!("1{}", "0".repeat(400))] {
            assert!(matches!(err(text), JsonError::Invalid(_)), "{text}");
        }
        assert_eq!(ok("18446744073709551615"), json!(u64::MAX));
        assert_eq!(ok("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(ok("1.5e300"), json!(1.5e300));
        assert_eq!(ok("1e-400"), json!(0.0));
    }

    #[test]
    fn lone_surrogates_are_refused_and_pairs_accepted() {
        for text in [r#""\ud800""#, r#""\udc00x""#, r#""\ud800\u0041""#, r#"{"\udfff":1}"#] {
            assert!(matches!(err(text), JsonError::Invalid(_)), "{text}");
        }
        assert_eq!(ok(r#""\ud83d\ude00""#), json!("\u{1F600}"));
    }

    #[test]
    fn size_limit_is_checked_first_and_inclusive() {
        let limits = JsonLimits { max_depth: 32, max_bytes: 7 };
        assert_eq!(parse(r#""12345""#, limits), Ok(json!("12345")));
        assert_eq!(parse(r#""123456""#, limits), Err(JsonError::TooLarge(7)));
        assert_eq!(parse("[[[[[[[[", limits), Err(JsonError::TooLarge(7)));
        assert_eq!(JsonLimits::default(), JsonLimits { max_depth: 32, max_bytes: 65536 });
    }

    #[test]
    fn invalid_messages_do_not_echo_the_input() {
        for text in [r#"{"secret":tru}"#, r#""secret"x"#, r#"["secret",]"#, "secret", r#""secret\q""#] {
            let JsonError::Invalid(msg) = err(text) else { panic!("{text}") };
            assert!(!msg.contains("secret"), "{msg}");
            assert!(msg.contains("line 1 column"), "{msg}");
        }
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse(&text, JsonLimits::default());
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"[\[\]{}",:\\0-9eE.+\-a-z ]{0,64}"#) {
            let _ = parse(&text, JsonLimits { max_depth: 3, max_bytes: 64 });
        }

        #[test]
        fn round_trips_values_within_the_depth_limit(v in any_value()) {
            // The strategy mostly yields depths 1-4, so 3 exercises both sides.
            let limits = JsonLimits { max_depth: 3, max_bytes: usize::MAX };
            let text = v.to_string();
            prop_assert_eq!(check_depth(&text, usize::MAX), Ok(depth(&v)));
            if depth(&v) <= limits.max_depth {
                prop_assert_eq!(parse(&text, limits), Ok(v));
            } else {
                prop_assert_eq!(parse(&text, limits), Err(JsonError::TooDeep(3)));
            }
        }
    }
}
