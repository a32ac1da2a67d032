//! Randomness is an input (docs/ARCHITECTURE.md): core draws every id and
//! secret from the `rng` its caller passes, so a test that seeds it gets the
//! same ids and tokens every run. A generator reached for inside core would
//! quietly end that; this test reads core's sources and names any non-test
//! line that does.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

/// Ways to draw randomness without the caller's say.
const AMBIENT: &[&str] =
    &["rand::random", "rand::rng", "thread_rng", "ThreadRng", "OsRng", "from_os_rng", "from_entropy", "getrandom"];

/// The offending lines of one file's text, as `line: text`. Comments do
/// not count; neither do inline test modules (from `#[cfg(test)]` to the
/// module's closing brace, which rustfmt puts alone at the start of a line)
/// nor whole test files (left out by the caller).
fn ambient_draws(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut in_tests = false;
    let mut code = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        let opens_tests = *line == "#[cfg(test)]" && lines.get(n + 1).is_some_and(|next| next.starts_with("mod "));
        in_tests |= opens_tests && lines[n + 1].ends_with('{');
        code.push(if in_tests { "" } else { line.split("//").next().unwrap_or("") });
        in_tests &= *line != "}";
    }
    let mut found = Vec::new();
    for (n, line) in code.iter().enumerate() {
        let named = AMBIENT.iter().any(|word| line.contains(word));
        // `use rand::{random, rng}` would hide the calls from the list
        // above, so an import of those names counts by itself.
        let imported = line.trim_start().starts_with("use rand") && {
            let statement: String = code[n..].concat();
            let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
            statement.contains('*')
                || statement.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "random" || w == "rng")
        };
        if named || imported {
            found.push(format!("{}: {}", n + 1, line.trim()));
        }
    }
    found
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "testkit.rs"
}

fn scan(dir: &Path, scanned: &mut Vec<String>, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, scanned, found);
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
            let text = std::fs::read_to_string(&path).unwrap();
            found.extend(ambient_draws(&text).into_iter().map(|line| format!("{}:{line}", path.display())));
            scanned.push(path.display().to_string());
        }
    }
}

#[test]
fn core_draws_no_randomness_of_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut scanned, mut found) = (Vec::new(), Vec::new());
    scan(&src, &mut scanned, &mut found);
    assert!(scanned.iter().any(|p| p.ends_with("session.rs")), "scanned core's sources: {scanned:?}");
    assert!(found.is_empty(), "take `rng: &mut impl rand::CryptoRng` from the caller instead:\n{}", found.join("\n"));
}

#[test]
fn the_scan_sees_each_way_in() {
    for code in [
        "let bytes: [u8; 12] = rand::random();",
        "let mut rng = rand::rng();",
        "let n = rand::thread_rng().next_u32();",
        "rand::rngs::OsRng.fill_bytes(&mut bytes);",
        "let rng = StdRng::from_os_rng();",
        "use rand::{Rng, random};\nfn f() -> u8 { random() }",
        "use rand::{\n    CryptoRng,\n    rng,\n};",
        "use rand::prelude::*;",
    ] {
        assert!(!ambient_draws(code).is_empty(), "missed: {code}");
    }
    for code in [
        "use rand::CryptoRng;\nfn f(rng: &mut impl CryptoRng) { rng.fill_bytes(&mut [0u8; 4]); }",
        "// never rand::random() here\n/// nor rand::rng()",
        "fn f() {}\n\n#[cfg(test)]\nmod tests {\n    fn g() { let _: u8 = rand::random(); }\n}",
    ] {
        assert_eq!(ambient_draws(code), Vec::<String>::new(), "flagged: {code}");
    }
    // Code after a test module is code again.
    let after = "#[cfg(test)]\nmod tests {\n    fn g() {}\n}\n\npub fn leak() -> u8 { rand::random() }";
    assert_eq!(ambient_draws(after), vec!["6: pub fn leak() -> u8 { rand::random() }".to_owned()]);
}
