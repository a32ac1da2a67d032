//! The `text` rule: no markup at all, for fields a client may insert into
//! HTML (or an attribute) without escaping it itself.
//!
//! The five characters that matter in HTML text and quoted attributes become
//! character references. An `&` that already starts one of those five
//! references is left alone: that keeps the rule idempotent (data relayed
//! twice does not turn into `&amp;amp;`) and costs nothing in safety, because
//! a character reference is text, never markup. The price is that a user who
//! literally types `&lt;` sees `<`.

const REFERENCES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"];

/// Escapes `input`; `None` if nothing needed escaping.
pub(super) fn escape(input: &str) -> Option<String> {
    let mut out = String::new();
    // Every index below is that of an ASCII byte, hence a char boundary.
    let mut copied = 0;
    for (i, byte) in input.bytes().enumerate() {
        let reference = match byte {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'&' if !REFERENCES.iter().any(|r| input[i..].starts_with(r)) => "&amp;",
            _ => continue,
        };
        if out.is_empty() {
            out.reserve(input.len() + 16);
        }
        out.push_str(&input[copied..i]);
        out.push_str(reference);
        copied = i + 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&input[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_references() {
        assert_eq!(
            escape("<img src=x onerror='alert(1)'> & \"q\"").as_deref(),
            Some("&lt;img src=x onerror=&#x27;alert(1)&#x27;&gt; &amp; &quot;q&quot;")
        );
        assert_eq!(escape("a&b").as_deref(), Some("a&amp;b"));
        assert_eq!(escape("&#60;script&#62;").as_deref(), Some("&amp;#60;script&amp;#62;"));
        assert_eq!(escape("é<").as_deref(), Some("é&lt;"));
    }

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(escape("hello, world — ünïcödé"), None);
        assert_eq!(escape(""), None);
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        for input in ["<b>", "a & b", "&amp;", "&lt;&gt;&quot;&#x27;", "&&amp", "'\"<>&"] {
            let once = escape(input).unwrap_or_else(|| input.to_owned());
            assert_eq!(escape(&once), None, "{input}");
        }
    }
}
