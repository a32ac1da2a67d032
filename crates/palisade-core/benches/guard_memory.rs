//! Memory the guard holds for 100k addresses and 100k users that each sent
//! one message and went idle, and what is left after the sweep forgets
//! them (docs/BENCHMARKS.md). Reads the process's resident set from
//! /proc/self/statm, so it runs on Linux only; elsewhere it says so.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::guard::{Guard, Standing};

mod rss;
mod shipped;

use rss::resident_kib;

const KEYS: u32 = 100_000;

fn main() {
    let Some(before) = resident_kib() else {
        println!("guard_memory: /proc/self/statm not readable; skipped");
        return;
    };
    // The shipped settings: max_tracked_keys (250,000) is above the 100k
    // measured here.
    let guard = Guard::new(shipped::guard_settings());
    let now = Timestamp::from_secs(1_800_000_000);
    for n in 0..KEYS {
        let ip = IpKey::of(Ipv4Addr::from(0x7f00_0000 | n).into());
        if let (_, Some(ticket)) = guard.connect(ip, now) {
            guard.release(ticket);
        }
        let mut standing = Standing::new(ip);
        let _ = guard.message(&mut standing, &format!("user-{n:06}"), now);
    }
    let full = resident_kib().unwrap();
    let (ips, users) = guard.tracked();
    guard.sweep(now.saturating_add(Duration::from_secs(3600)));
    let swept = resident_kib().unwrap();
    let per_key = (full - before) as f64 * 1024.0 / f64::from(KEYS * 2);
    println!("guard_memory: {ips} addresses + {users} users tracked");
    println!(
        "guard_memory: resident {before} KiB before, {full} KiB with them (+{} KiB, {per_key:.0} B per key)",
        full - before
    );
    println!("guard_memory: after the sweep {:?} tracked, resident {swept} KiB", guard.tracked());
}
