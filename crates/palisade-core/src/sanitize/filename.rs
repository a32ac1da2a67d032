//! The `filename` rule: a name that is safe to save, serve or show on any OS.
//!
//! Only the last path component survives (`../../etc/passwd` is `passwd`),
//! from a portable alphabet (`[A-Za-z0-9 ._-]`, anything else becomes `_`), with
//! no `..`, no hidden or dot-only names and no trailing dots or spaces
//! (Windows drops those, so `evil.exe.` would become `evil.exe` on save).
//! Long names are cut to the configured byte length keeping a short
//! extension, so `report-….pdf` still opens as a PDF.
//!
//! Windows device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
//! `LPT0`–`LPT9`, in any case, with any extension: `nul.txt`, `COM1.tar.gz`)
//! open the device instead of a file there, so they are rewritten with a
//! leading `_` (`_CON.txt`) rather than refused: the upload still has a
//! recognizable name. `CONIN$`, `CONOUT$` and `CLOCK$` need no rule of their
//! own, because `$` is outside the alphabet (`CONIN_`).

/// Longest extension (with its dot) worth keeping when a name is cut.
const MAX_EXT: usize = 16;

/// Device names without a digit; `COM` and `LPT` take one.
const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// Cleans one name; `Ok(None)` if it was already clean.
pub(super) fn clean(input: &str, max_len: usize) -> Result<Option<String>, &'static str> {
    if is_clean(input, max_len) {
        return Ok(None);
    }
    let last = input.rsplit(['/', '\\']).next().unwrap_or(input);
    // Tidy again after cutting: the cut can leave a trailing dot or space.
    let mut out = tidy(&cap(&tidy(last), max_len));
    if is_device(&out) {
        // A name starting with `_` is never a device, however it is cut.
        out = tidy(&cap(&format!("_{out}"), max_len));
    }
    if out.is_empty() {
        return Err("empty file name");
    }
    Ok((out != input).then_some(out))
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')
}

/// What `clean` would return unchanged, checked without allocating.
fn is_clean(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name.chars().all(allowed)
        && !name.contains("..")
        && !name.contains("__")
        && !name.starts_with(['.', ' '])
        && !name.ends_with(['.', ' '])
        && !is_device(name)
}

/// Does Windows read `name` as a device? It looks at the part before the
/// first dot, ignoring trailing spaces (`nul .txt`).
fn is_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    match stem.len() {
        3 => DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d)),
        4 => {
            let (prefix, digit) = stem.split_at(3);
            (prefix.eq_ignore_ascii_case("COM") || prefix.eq_ignore_ascii_case("LPT"))
                && digit.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Portable alphabet, runs of `_` and `.` collapsed, no leading or trailing
/// dots and spaces. Idempotent, and never longer than its input.
fn tidy(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().filter(|c| !c.is_control()) {
        let c = if allowed(c) { c } else { '_' };
        if matches!(c, '_' | '.') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(['.', ' ']).to_owned()
}

/// Cuts `name` (already tidy, so ASCII) to `max_len` bytes, keeping a short
/// extension when the stem is long enough to lose some.
fn cap(name: &str, max_len: usize) -> String {
    if name.len() <= max_len {
        return name.to_owned();
    }
    if let Some(dot) = name.rfind('.') {
        let ext = &name[dot..];
        if dot > 0 && ext.len() <= MAX_EXT.min(max_len / 2) {
            let stem = &name[..floor_boundary(name, max_len - ext.len())];
            return format!("{stem}{ext}");
        }
    }
    name[..floor_boundary(name, max_len)].to_owned()
}

/// The largest char boundary at or below `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len())).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(input: &str) -> Result<String, &'static str> {
        clean_max(input, 255)
    }

    fn clean_max(input: &str, max: usize) -> Result<String, &'static str> {
        clean(input, max).map(|out| out.unwrap_or_else(|| input.to_owned()))
    }

    #[test]
    fn path_traversal_keeps_only_the_last_component() {
        assert_eq!(cleaned("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(cleaned("C:\\x\\evil.exe").unwrap(), "evil.exe");
        assert_eq!(cleaned("..\\..\\windows\\win.ini").unwrap(), "win.ini");
        assert_eq!(cleaned("a/b/..").unwrap_err(), "empty file name");
        assert_eq!(cleaned("dir/").unwrap_err(), "empty file name");
        assert_eq!(cleaned("report..pdf").unwrap(), "report.pdf");
    }

    #[test]
    fn no_hidden_or_dot_names() {
        assert_eq!(cleaned(".htaccess").unwrap(), "htaccess");
        assert_eq!(cleaned(" . .bashrc").unwrap(), "bashrc");
        assert_eq!(cleaned("evil.exe. . ").unwrap(), "evil.exe");
        for empty in ["", ".", "..", "...", " ", "\u{0}\u{1}", "/"] {
            assert_eq!(cleaned(empty).unwrap_err(), "empty file name", "{empty:?}");
        }
    }

    #[test]
    fn controls_dropped_and_other_chars_replaced() {
        assert_eq!(cleaned("a\u{0}b\u{7f}c\u{85}.txt").unwrap(), "abc.txt");
        assert_eq!(cleaned("ré sumé.pdf").unwrap(), "r_ sum_.pdf");
        assert_eq!(cleaned("a<>:\"|?*b.txt").unwrap(), "a_b.txt");
        assert_eq!(cleaned("日本語.txt").unwrap(), "_.txt");
        assert_eq!(cleaned("x\u{202e}fdp.exe").unwrap(), "x_fdp.exe");
        assert_eq!(cleaned("__a__b__").unwrap(), "_a_b_");
    }

    #[test]
    fn clean_names_are_not_copied() {
        for ok in ["report.pdf", "My File-2024_v2.tar.gz", "a"] {
            assert_eq!(clean(ok, 255), Ok(None), "{ok}");
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.pdf", "a".repeat(1000));
        let out = cleaned(&long).unwrap();
        assert_eq!(out.len(), 255);
        assert!(out.ends_with("a.pdf"));
        let out = clean_max(&format!("{}.{}", "b".repeat(50), "x".repeat(40)), 20).unwrap();
        assert_eq!(out, "b".repeat(20), "an extension too long to keep is cut with the rest");
        assert_eq!(clean_max("abc.d.txt", 8).unwrap(), "abc.txt", "no `..` where the cut meets the extension");
        assert_eq!(clean_max("abc...txt", 6).unwrap(), "abc.tx");
        assert_eq!(clean_max("abcdef", 1).unwrap(), "a");
    }

    #[test]
    fn windows_device_names_are_rewritten() {
        for (input, out) in [
            ("CON.txt", "_CON.txt"),
            ("nul", "_nul"),
            ("COM1.pdf", "_COM1.pdf"),
            ("LPT9", "_LPT9"),
            ("lpt0.log", "_lpt0.log"),
            ("AUX.tar.gz", "_AUX.tar.gz"),
            ("Prn", "_Prn"),
            ("nul. . ", "_nul"),
            ("CON .txt", "_CON .txt"),
            ("dir/aux", "_aux"),
            ("CONIN$", "CONIN_"),
            ("conout$.txt", "conout_.txt"),
            ("CLOCK$", "CLOCK_"),
            ("COM\u{b9}.txt", "COM_.txt"),
        ] {
            assert_eq!(cleaned(input).unwrap(), out, "{input:?}");
        }
        for kept in ["CONSOLE.txt", "com10", "LPT", "nully.pdf", "my.con", "aux_file", "COMA"] {
            assert_eq!(clean(kept, 255), Ok(None), "{kept}");
        }
        assert_eq!(clean_max("CONX", 3).unwrap(), "_CO", "a cut that makes a device name");
        assert_eq!(clean_max("nul.txt", 4).unwrap(), "_nul");
        assert_eq!(clean_max("nul", 1).unwrap(), "n");
    }

    #[test]
    fn cleaning_twice_changes_nothing() {
        for input in ["../a..b/.c", "abcd. .txt", "x . y", "_._", "a\\b/c", "ÿ.ÿ.ÿ", "CON.txt", "nul. .x", "CONX"] {
            for max in [1, 3, 6, 255] {
                if let Ok(once) = clean_max(input, max) {
                    assert_eq!(clean(&once, max), Ok(None), "{input:?} max {max} -> {once:?}");
                }
            }
        }
    }
}
