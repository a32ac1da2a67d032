//! The bodies of Palisade's fuzz targets, one plain function per target.
//!
//! Each takes the fuzzer's bytes, drives one parser or the whole message
//! pipeline with them, and panics only when an invariant breaks (a crash is
//! a finding). Two drivers call them: the libFuzzer harnesses under `fuzz/`
//! (`scripts/fuzz.sh`, where a nightly toolchain and `cargo fuzz` exist) and
//! `tests/smoke.rs`, which runs every target over its committed seed corpus
//! (`fuzz/corpus/<target>/`) and seeded mutations of it on stable, in
//! `cargo test`. docs/SECURITY.md ("Fuzzing") records runs and findings.

mod audit;
mod env;
mod tls;
mod wire;

pub use audit::audit_record;
pub use env::{config_loader, pipeline, token};
pub use tls::tls_stream;
pub use wire::{bounded_json, frame_reader, sanitizers, xff};

/// A target's body: the fuzzer's bytes in, a panic out when an invariant
/// breaks.
pub type Target = fn(&[u8]);

/// Every target by its name under `fuzz/fuzz_targets/` and
/// `fuzz/corpus/`.
pub const TARGETS: [(&str, Target); 10] = [
    ("frame_reader", frame_reader),
    ("bounded_json", bounded_json),
    ("pipeline", pipeline),
    ("token", token),
    ("config_loader", config_loader),
    ("sanitizers", sanitizers),
    ("xff", xff),
    ("audit_record", audit_record),
    ("envelope", envelope),
    ("tls_stream", tls_stream),
];

/// The client envelope alone: `ClientFrame::parse` on any text, and the
/// pointer bound its error paths use.
pub fn envelope(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = palisade_protocol::ClientFrame::parse(text) {
        let _ = frame.id();
    }
    let bounded = palisade_protocol::bounded_pointer(text);
    assert!(text.starts_with(bounded), "bounded_pointer returns a prefix");
}
