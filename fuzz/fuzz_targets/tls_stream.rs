//! libFuzzer harness for `palisade_fuzz_targets::tls_stream` (its invariants are
//! documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz_targets::tls_stream(data));
