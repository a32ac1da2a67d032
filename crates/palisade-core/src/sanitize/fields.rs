//! Which rules run on which fields of one event.
//!
//! Fields are named by JSON Pointer (RFC 6901), as in JSON Schema error paths,
//! plus `*` as a whole segment for "every array element or object value"
//! (`/attachments/*/name`). A literal `*` key therefore cannot be named; no
//! declared event needs one. Pointers that match nothing are fine (optional
//! fields), and non-string values are left to the schema, which ran first.

use serde_json::Value;

use super::{Refused, Rejected, Rule, Sanitizers, normalize};

/// Rules for one event: JSON Pointer → rules applied in order.
#[derive(Debug, Clone, Default)]
pub struct FieldRules {
    fields: Vec<Field>,
}

#[derive(Debug, Clone)]
struct Field {
    path: Vec<Segment>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object key, or an array index when it is a canonical number.
    Key(String),
    /// `*`.
    Any,
}

/// A rejection on its way up: the pointer segments, innermost first.
struct Trail {
    segments: Vec<String>,
    why: Refused,
}

impl Trail {
    fn under(mut self, segment: &str) -> Self {
        self.segments.push(segment.replace('~', "~0").replace('/', "~1"));
        self
    }
}

impl FieldRules {
    /// Parses `(pointer, rules)` pairs from config; the error names the bad
    /// pointer.
    pub fn new(rules: &[(String, Vec<Rule>)]) -> Result<Self, String> {
        let fields = rules
            .iter()
            .map(|(pointer, rules)| {
                let path = parse_pointer(pointer).map_err(|why| format!("`{pointer}` is not a JSON Pointer: {why}"))?;
                Ok(Field { path, rules: rules.clone() })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { fields })
    }

    /// Applies the field rules in place, to a value already passed through
    /// [`super::normalize`] (pointers name normalized keys); `Ok(true)` if
    /// some string changed. On `Err` the value is partly sanitized and must
    /// be dropped, never forwarded.
    pub fn apply(&self, sanitizers: &Sanitizers, value: &mut Value) -> Result<bool, Rejected> {
        let mut changed = false;
        for field in &self.fields {
            visit(value, &field.path, &field.rules, sanitizers, &mut changed).map_err(|trail| {
                let mut pointer = String::new();
                for segment in trail.segments.iter().rev() {
                    pointer.push('/');
                    pointer.push_str(segment);
                }
                Rejected { pointer, why: trail.why }
            })?;
        }
        Ok(changed)
    }
}

fn visit(
    value: &mut Value,
    path: &[Segment],
    rules: &[Rule],
    sanitizers: &Sanitizers,
    changed: &mut bool,
) -> Result<(), Trail> {
    let Some((first, rest)) = path.split_first() else {
        if let Value::String(s) = value {
            for &rule in rules {
                match sanitizers.apply(rule, s) {
                    Ok(Some(new)) => {
                        *s = new;
                        *changed = true;
                    }
                    Ok(None) => {}
                    Err(why) => return Err(Trail { segments: Vec::new(), why }),
                }
            }
        }
        return Ok(());
    };
    match (first, value) {
        (Segment::Any, Value::Array(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                visit(item, rest, rules, sanitizers, changed).map_err(|t| t.under(&i.to_string()))?;
            }
        }
        (Segment::Any, Value::Object(map)) => {
            for (key, item) in map.iter_mut() {
                visit(item, rest, rules, sanitizers, changed).map_err(|t| t.under(key))?;
            }
        }
        (Segment::Key(key), Value::Object(map)) => {
            if let Some(item) = map.get_mut(key) {
                visit(item, rest, rules, sanitizers, changed).map_err(|t| t.under(key))?;
            }
        }
        (Segment::Key(key), Value::Array(items)) => {
            if let Some(item) = array_index(key).and_then(|i| items.get_mut(i)) {
                visit(item, rest, rules, sanitizers, changed).map_err(|t| t.under(key))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// RFC 6901 array index: `0` or digits without a leading zero.
fn array_index(key: &str) -> Option<usize> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()));
    if canonical { key.parse().ok() } else { None }
}

fn parse_pointer(pointer: &str) -> Result<Vec<Segment>, &'static str> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or("must be empty or start with `/`")?;
    rest.split('/')
        .map(|raw| {
            if raw == "*" {
                return Ok(Segment::Any);
            }
            let key = unescape(raw)?;
            // Keys in the data are normalized before lookup; so is the pointer.
            Ok(Segment::Key(normalize::normalized(&key).unwrap_or(key)))
        })
        .collect()
}

fn unescape(raw: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err("`~` must be followed by 0 or 1"),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sanitize::{InvalidUrl, SanitizeSettings};

    fn rules(pairs: &[(&str, &[Rule])]) -> FieldRules {
        FieldRules::new(&pairs.iter().map(|(p, r)| ((*p).to_owned(), r.to_vec())).collect::<Vec<_>>()).unwrap()
    }

    fn sanitizers() -> Sanitizers {
        Sanitizers::new(&SanitizeSettings { profanity_words: vec!["darn".to_owned()], ..Default::default() }).unwrap()
    }

    #[test]
    fn pointers_parse_per_rfc_6901() {
        assert_eq!(parse_pointer(""), Ok(vec![]));
        assert_eq!(parse_pointer("/"), Ok(vec![Segment::Key(String::new())]));
        assert_eq!(
            parse_pointer("/a~1b/~0c/*/0/a*"),
            Ok(vec![
                Segment::Key("a/b".to_owned()),
                Segment::Key("~c".to_owned()),
                Segment::Any,
                Segment::Key("0".to_owned()),
                Segment::Key("a*".to_owned()),
            ])
        );
        for bad in ["a", "/a~", "/a~2", "#/a"] {
            let err = FieldRules::new(&[(bad.to_owned(), vec![Rule::Text])]).unwrap_err();
            assert!(err.starts_with(&format!("`{bad}` is not a JSON Pointer")), "{err}");
        }
    }

    #[test]
    fn rules_run_in_order_on_the_named_fields_only() {
        let r = rules(&[("/content", &[Rule::Profanity, Rule::Text]), ("/other", &[Rule::Html])]);
        let mut v = json!({"content": "<b>darn</b>", "other": "<i>x</i><script>", "untouched": "<b>darn</b>"});
        r.apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(v, json!({"content": "&lt;b&gt;****&lt;/b&gt;", "other": "<i>x</i>", "untouched": "<b>darn</b>"}));
        let mut clean = json!({"content": "fine", "other": "<i>x</i>"});
        assert_eq!(r.apply(&sanitizers(), &mut clean), Ok(false), "nothing changed");
    }

    #[test]
    fn wildcards_reach_every_element_and_value() {
        let r = rules(&[("/files/*/name", &[Rule::Filename]), ("/tags/*", &[Rule::Text])]);
        let mut v = json!({
            "files": [{"name": "../a.txt"}, {"name": "b.txt"}, {"size": 3}, "not an object"],
            "tags": {"x": "<", "y": 1, "z": ">"},
        });
        r.apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(
            v,
            json!({
                "files": [{"name": "a.txt"}, {"name": "b.txt"}, {"size": 3}, "not an object"],
                "tags": {"x": "&lt;", "y": 1, "z": "&gt;"},
            })
        );
    }

    #[test]
    fn array_indexes_and_the_root() {
        let r = rules(&[("/0", &[Rule::Text]), ("/01", &[Rule::Text]), ("/9", &[Rule::Text])]);
        let mut v = json!(["<", "<"]);
        r.apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(v, json!(["&lt;", "<"]));
        let mut v = json!("<");
        rules(&[("", &[Rule::Text])]).apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(v, json!("&lt;"));
    }

    #[test]
    fn non_strings_and_missing_fields_are_left_alone() {
        let r = rules(&[("/n", &[Rule::Url]), ("/missing/deep", &[Rule::Url]), ("/n/x", &[Rule::Url])]);
        let mut v = json!({"n": 5, "list": [1, 2]});
        r.apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(v, json!({"n": 5, "list": [1, 2]}));
    }

    #[test]
    fn rejections_name_the_concrete_field() {
        let r = rules(&[("/links/*/href", &[Rule::Url])]);
        let mut v = json!({"links": [{"href": "https://ok.example/"}, {"href": "javascript:alert(1)"}]});
        let err = r.apply(&sanitizers(), &mut v).unwrap_err();
        assert_eq!(err, Rejected { pointer: "/links/1/href".to_owned(), why: Refused::Invalid("url not allowed") });
        assert_eq!(err.to_string(), "/links/1/href: url not allowed");

        let r = rules(&[("/*", &[Rule::Filename])]);
        let mut v = json!({"a/b~c": ".."});
        let err = r.apply(&sanitizers(), &mut v).unwrap_err();
        assert_eq!(err.pointer, "/a~1b~0c");
        assert_eq!(err.why, Refused::Invalid("empty file name"));
    }

    #[test]
    fn url_remove_blanks_the_field() {
        let s = Sanitizers::new(&SanitizeSettings { url_invalid: InvalidUrl::Remove, ..Default::default() }).unwrap();
        let mut v = json!({"link": "javascript:alert(1)"});
        rules(&[("/link", &[Rule::Url])]).apply(&s, &mut v).unwrap();
        assert_eq!(v, json!({"link": ""}));
    }

    #[test]
    fn normalization_runs_first_and_everywhere() {
        let r = rules(&[("/café", &[Rule::Text])]);
        let mut v = json!({"cafe\u{301}": "<\u{0}", "deep": [{"x": {"y": {"__proto__": 1, "s": "e\u{301}"}}}]});
        super::super::normalize(&mut v);
        r.apply(&sanitizers(), &mut v).unwrap();
        assert_eq!(v, json!({"café": "&lt;", "deep": [{"x": {"y": {"s": "é"}}}]}));
    }
}
