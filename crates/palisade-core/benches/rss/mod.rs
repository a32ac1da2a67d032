//! The process's resident set, for the benches that measure memory. Reads
//! /proc/self/statm, so Linux only; `None` elsewhere.

/// Resident memory in KiB (4 KiB pages).
pub(crate) fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}
