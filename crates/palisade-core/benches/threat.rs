//! A threat feed of 1,000,000 prefixes (900,000 IPv4 /24 and /32, 100,000
//! IPv6 /48): how long a lookup takes, listed and not, and the memory the
//! table holds (docs/BENCHMARKS.md, "Threat feeds"). Memory is the table's
//! own count of its hash sets' capacity and the process's resident set
//! before and after (/proc/self/statm, Linux only).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::threat::parse;

mod rss;

use rss::resident_kib;

const PREFIXES: u32 = 1_000_000;

/// A spread of addresses that is the same every run (a multiplicative hash
/// of the index).
fn spread(i: u32) -> u32 {
    i.wrapping_mul(2_654_435_761)
}

fn feed_text() -> String {
    let mut text = String::with_capacity(20 * PREFIXES as usize);
    for i in 0..PREFIXES {
        if i % 10 == 9 {
            let v6 = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(spread(i)) << 80));
            writeln!(text, "{v6}/48 ; SBL{i}").unwrap();
        } else if i % 10 == 8 {
            writeln!(text, "{}", Ipv4Addr::from(spread(i))).unwrap();
        } else {
            writeln!(text, "{}/24", Ipv4Addr::from(spread(i) & 0xffff_ff00)).unwrap();
        }
    }
    text
}

fn bench(c: &mut Criterion) {
    let text = feed_text();
    let before = resident_kib();
    let started = std::time::Instant::now();
    let parsed = parse(&text, PREFIXES as usize);
    let took = started.elapsed();
    let after = resident_kib();
    println!(
        "threat: {} prefixes ({} malformed) parsed in {took:?}; table holds {} MiB; resident {} MiB more",
        parsed.table.len(),
        parsed.malformed,
        parsed.table.heap_bytes() / (1 << 20),
        before.zip(after).map_or("?".into(), |(b, a)| (a.saturating_sub(b) / 1024).to_string()),
    );
    let table = parsed.table;
    let listed = IpAddr::V4(Ipv4Addr::from(spread(4) | 0x7f));
    let unlisted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let listed6 = IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(spread(9)) << 80) | 1));
    assert!(table.contains(listed) && table.contains(listed6) && !table.contains(unlisted));
    c.bench_function("threat_lookup_listed_v4", |b| b.iter(|| table.longest(black_box(listed))));
    c.bench_function("threat_lookup_unlisted_v4", |b| b.iter(|| table.longest(black_box(unlisted))));
    c.bench_function("threat_lookup_listed_v6", |b| b.iter(|| table.longest(black_box(listed6))));
    c.bench_function("threat_parse_1m", |b| {
        b.iter_batched(
            || (),
            |()| parse(black_box(&text), PREFIXES as usize).table.len(),
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
