//! libFuzzer harness for `palisade_fuzz_targets::token` (its invariants are
//! documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz_targets::token(data));
