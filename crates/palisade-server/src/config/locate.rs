//! Where in a config file an error is, told without the file's text.
//!
//! The TOML parser's `Display` quotes the offending line under a caret, and
//! serde's type errors quote the value (`invalid type: string "…"`): the
//! line may be `secret = "…"`, and a start-up or reload error ends up in
//! the log. Errors name the key, line and column instead, found from the
//! spans of the keys the parser read; the parser's one-line message stays,
//! with quoted strings cut out of it.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where an error is: 1-based line and column (in characters), and the
/// dotted key at or before it (`auth.keys[0].secret`), "" when none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) key: String,
}

/// The place of a syntax error at byte `offset` of `text`: the key is the
/// last one the parser read before it.
pub(crate) fn syntax_error(text: &str, offset: usize) -> Place {
    let offset = offset.min(text.len());
    let key = keys(text).into_iter().filter(|(_, at)| *at <= offset).max_by_key(|(_, at)| *at).map(|(k, _)| k);
    let (line, column) = line_column(text, offset);
    Place { line, column, key: key.unwrap_or_default() }
}

/// The place of `key` (as `serde_path_to_error` writes it) in `text`, when
/// the file sets it; `None` for a key that came from the defaults or the
/// environment.
pub(crate) fn key(text: &str, key: &str) -> Option<Place> {
    let at = keys(text).into_iter().find(|(k, _)| k == key).map(|(_, at)| at)?;
    let (line, column) = line_column(text, at);
    Some(Place { line, column, key: key.to_owned() })
}

/// A parser or serde message with every quoted string (a value from the
/// file) replaced by `"…"`, on one line. Text in backticks is the parser's
/// own (a token it expected, a key name) and stays.
pub(crate) fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push('`');
                for c in chars.by_ref() {
                    out.push(if c.is_control() { ' ' } else { c });
                    if c == '`' {
                        break;
                    }
                }
            }
            '"' => {
                out.push_str("\"…\"");
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// Every key the parser could read in `text` (it recovers past errors),
/// dotted, with the byte offset where it is written.
fn keys(text: &str) -> Vec<(String, usize)> {
    let (table, _) = DeTable::parse_recoverable(text);
    let mut out = Vec::new();
    walk_table(table.get_ref(), "", &mut out);
    out
}

fn walk_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, usize)>) {
    for (name, value) in table {
        let path = if prefix.is_empty() { name.get_ref().to_string() } else { format!("{prefix}.{}", name.get_ref()) };
        out.push((path.clone(), name.span().start));
        walk_value(value, &path, out);
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, path: &str, out: &mut Vec<(String, usize)>) {
    match value.get_ref() {
        DeValue::Table(inner) => walk_table(inner, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push((path.clone(), item.span().start));
                walk_value(item, &path, out);
            }
        }
        _ => {}
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_is_placed_after_the_last_key_read() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[[auth.keys]]\nid = \"a\"\nsecret = \"s3cret\n";
        let offset = text.find("s3cret").unwrap();
        let place = syntax_error(text, offset);
        assert_eq!((place.line, place.column), (6, 11));
        assert_eq!(place.key, "auth.keys[0].secret");
    }

    #[test]
    fn keys_are_found_where_the_file_sets_them() {
        let text = "[admin]\n  api_keys = \"k\"\n";
        assert_eq!(key(text, "admin.api_keys"), Some(Place { line: 2, column: 3, key: "admin.api_keys".into() }));
        assert_eq!(key(text, "admin.listen"), None);
    }

    #[test]
    fn quoted_values_are_cut_from_messages() {
        assert_eq!(
            without_values("invalid type: string \"s3\\\"cret\", expected a sequence\n"),
            "invalid type: string \"…\", expected a sequence"
        );
        assert_eq!(without_values("unknown field `secrett`"), "unknown field `secrett`");
        assert_eq!(without_values("invalid basic string, expected `\"`"), "invalid basic string, expected `\"`");
    }
}
