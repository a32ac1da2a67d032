//! What a token may claim as its identity. `sub` and `name` are echoed to
//! every member of a room (`from` in `event` frames), so they must render as
//! what they say in any client: no markup, no characters that reorder or
//! hide text. The rules are in docs/PROTOCOL.md §1.4.

/// Longest `sub`/`name`, in bytes.
pub(crate) const MAX_IDENTITY_BYTES: usize = 128;

/// Characters that change how HTML or a template reads the text around them.
const MARKUP: &[char] = &['<', '>', '&', '"', '\'', '`'];

/// Why a `sub` or `name` was refused (for the operator's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Empty, blank, or over the byte limit.
    #[error("{0} is empty or too long")]
    Length(&'static str),
    /// `sub` outside visible ASCII.
    #[error("sub is not visible ASCII")]
    NotAscii,
    /// A markup character.
    #[error("{0} contains a markup character")]
    Markup(&'static str),
    /// A control, format (bidi, zero-width), separator or filler character.
    #[error("{0} contains an invisible or control character")]
    Invisible(&'static str),
}

/// `sub`: 1–128 visible ASCII characters other than the markup ones. Issuers
/// use ids like `auth0|abc123`, `google-oauth2|1234`, UUIDs or e-mail
/// addresses; all fit.
pub fn check_sub(sub: &str) -> Result<(), IdentityError> {
    if sub.is_empty() || sub.len() > MAX_IDENTITY_BYTES {
        return Err(IdentityError::Length("sub"));
    }
    if !sub.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdentityError::NotAscii);
    }
    if sub.contains(MARKUP) {
        return Err(IdentityError::Markup("sub"));
    }
    Ok(())
}

/// `name`: 1–128 bytes of any script, spaces allowed, not blank; no markup
/// characters and nothing invisible.
pub fn check_name(name: &str) -> Result<(), IdentityError> {
    if name.trim().is_empty() || name.len() > MAX_IDENTITY_BYTES {
        return Err(IdentityError::Length("name"));
    }
    if name.contains(MARKUP) {
        return Err(IdentityError::Markup("name"));
    }
    if name.chars().any(is_invisible) {
        return Err(IdentityError::Invisible("name"));
    }
    Ok(())
}

/// Control characters (Cc), line and paragraph separators, every format
/// character (Cf: bidi embeddings, overrides and isolates, zero-width
/// characters, the BOM, soft hyphen, tags…) and the Hangul fillers that
/// render as blanks: each can make a name look like another or reorder the
/// text shown after it.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{115F}'..='\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_issuers_use_are_accepted() {
        for sub in ["u1", "auth0|abc123", "google-oauth2|1234567890", "alice@example.com", "0b3f-9a1c", "https://id/x"]
        {
            assert_eq!(check_sub(sub), Ok(()), "{sub}");
        }
        assert_eq!(check_sub(&"a".repeat(MAX_IDENTITY_BYTES)), Ok(()));
    }

    #[test]
    fn subjects_with_markup_spaces_or_non_ascii_are_refused() {
        assert_eq!(check_sub(""), Err(IdentityError::Length("sub")));
        assert_eq!(check_sub(&"a".repeat(MAX_IDENTITY_BYTES + 1)), Err(IdentityError::Length("sub")));
        for sub in ["a b", "a\nb", "admin\u{202E}", "a\u{200B}", "é", "\u{FEFF}u1"] {
            assert_eq!(check_sub(sub), Err(IdentityError::NotAscii), "{sub:?}");
        }
        for sub in ["<script>", "a>b", "a&b", "a\"b", "a'b", "a`b"] {
            assert_eq!(check_sub(sub), Err(IdentityError::Markup("sub")), "{sub}");
        }
    }

    #[test]
    fn names_in_any_script_are_accepted() {
        for name in ["Alice", "José Müller", "李雷", "Ольга", "محمد", "Zoë 🎉", "a-b_c.d (e)"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn names_with_markup_are_refused() {
        for name in ["<img src=x onerror=alert(1)>", "Tom & Jerry", "\"quoted\"", "O'Brien", "`cmd`", "a>b"] {
            assert_eq!(check_name(name), Err(IdentityError::Markup("name")), "{name}");
        }
    }

    #[test]
    fn names_that_hide_or_reorder_text_are_refused() {
        let cases = [
            "admin\u{202E}txt.exe", // right-to-left override
            "a\u{202A}b",           // left-to-right embedding
            "a\u{2066}b",           // left-to-right isolate
            "a\u{2069}b",           // pop directional isolate
            "ad\u{200B}min",        // zero-width space
            "a\u{200D}b",           // zero-width joiner
            "a\u{200F}b",           // right-to-left mark
            "\u{FEFF}alice",        // byte-order mark
            "a\u{00AD}b",           // soft hyphen
            "a\u{2028}b",           // line separator
            "\u{3164}",             // Hangul filler, renders blank
            "a\u{E0041}",           // tag character
            "a\u{7F}b",
            "a\tb",
        ];
        for name in cases {
            assert_eq!(check_name(name), Err(IdentityError::Invisible("name")), "{name:?}");
        }
    }

    #[test]
    fn blank_or_oversized_names_are_refused() {
        for name in ["", "   ", &"é".repeat(MAX_IDENTITY_BYTES / 2 + 1)] {
            assert_eq!(check_name(name), Err(IdentityError::Length("name")), "{name:?}");
        }
    }
}
