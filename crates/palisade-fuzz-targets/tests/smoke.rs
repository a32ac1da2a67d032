#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every fuzz target's body on stable: its committed seed corpus, its
//! regressions (inputs that once crashed), then seeded mutations of the
//! seeds. The same inputs every run (a fixed seed per target), so a failure
//! here reproduces; `PALISADE_FUZZ_SMOKE_RUNS` scales the mutation count.
//! Helpers outside #[test] functions panic on setup failures by design.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target (the config loader's write a file each, so
/// it gets a fifth).
const RUNS: usize = 5_000;
/// Longest mutated input: longer finds nothing new in a smoke run.
const MAX_LEN: usize = 4096;
/// Byte strings the mutator splices in: what the parsers branch on.
const TOKENS: [&[u8]; 16] =
    [b"{", b"}", b"[", b"]", b"\"", b":", b",", b"\\u0000", b"<", b">", b"&#x27;", b"\n", b"\x00", b"\xff", b"%", b"="];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| match std::fs::read(p) {
            Ok(bytes) => Some(bytes),
            // A libFuzzer run beside the tests replaces corpus files as it
            // shrinks them: one gone since the listing is skipped.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{}: {e}", p.display()),
        })
        .collect()
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..6) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 => out.insert(at, rng.random()),
            2 => {
                let end = rng.random_range(at..=out.len());
                out.drain(at..end);
            }
            3 => {
                let end = rng.random_range(at..=out.len().min(at + 64));
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy.iter().copied().cycle().take(copy.len() * rng.random_range(1..8)));
            }
            4 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                out.splice(at.., other[from..].iter().copied());
            }
            _ => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
        }
    }
    out.truncate(MAX_LEN);
    out
}

fn smoke(name: &str, runs: usize) {
    let (_, target) = palisade_fuzz_targets::TARGETS.iter().find(|(n, _)| *n == name).expect("target");
    let seeds = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
    for input in seeds.iter().chain(&inputs(&fuzz_dir().join("regressions").join(name))) {
        target(input);
    }
    let scale = std::env::var("PALISADE_FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(1.0);
    let mut rng = StdRng::seed_from_u64(name.bytes().map(u64::from).sum());
    for _ in 0..((runs as f64 * scale) as usize) {
        target(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn every_target_has_a_harness_and_seeds() {
    for (name, _) in palisade_fuzz_targets::TARGETS {
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz/fuzz_targets/{name}.rs");
        assert!(!inputs(&fuzz_dir().join("corpus").join(name)).is_empty(), "fuzz/corpus/{name}");
    }
}

#[test]
fn frame_reader() {
    smoke("frame_reader", RUNS);
}

#[test]
fn envelope() {
    smoke("envelope", RUNS);
}

#[test]
fn bounded_json() {
    smoke("bounded_json", RUNS);
}

#[test]
fn pipeline() {
    smoke("pipeline", RUNS);
}

#[test]
fn token() {
    smoke("token", RUNS);
}

#[test]
fn config_loader() {
    smoke("config_loader", RUNS / 5);
}

#[test]
fn sanitizers() {
    smoke("sanitizers", RUNS);
}

#[test]
fn xff() {
    smoke("xff", RUNS);
}

#[test]
fn audit_record() {
    smoke("audit_record", RUNS);
}

#[test]
fn tls_stream() {
    smoke("tls_stream", RUNS);
}
