//! A prefix table for IPv4 and IPv6: one hash set per prefix length, the
//! lengths present walked longest first, so a lookup costs at most one
//! hash probe per distinct length in the table (O(prefix length), and in
//! practice a handful: feeds use few lengths).
//!
//! Written here rather than taken from a crate: `ip_network_table` and
//! `prefix-trie` are tries with a node per bit or per stride, which hold a
//! million /24s in several times the memory of a set of 4-byte keys, and
//! they bring a dependency for what is ~100 lines on top of `ipnet` (which
//! the core already uses to parse prefixes). The measurement is in
//! docs/BENCHMARKS.md ("Threat feeds").

use std::collections::HashSet;
use std::hash::Hash;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One address family's prefixes: a set of masked networks per length.
#[derive(Debug, Clone)]
struct Family<K> {
    /// Index = prefix length.
    sets: Vec<HashSet<K>>,
    /// The lengths with at least one entry, longest first.
    lengths: Vec<u8>,
}

impl<K: Copy + Eq + Hash> Family<K> {
    fn new(bits: usize) -> Self {
        Self { sets: vec![HashSet::new(); bits + 1], lengths: Vec::new() }
    }

    fn add(&mut self, len: u8, key: K) -> bool {
        let Some(set) = self.sets.get_mut(usize::from(len)) else { return false };
        let added = set.insert(key);
        if added && set.len() == 1 {
            self.lengths.push(len);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        added
    }

    /// The longest `(length, network)` present, `mask` giving an address's
    /// network at a length.
    fn find(&self, mask: impl Fn(u8) -> K) -> Option<(u8, K)> {
        self.lengths.iter().find_map(|&len| {
            let key = mask(len);
            self.sets.get(usize::from(len)).is_some_and(|s| s.contains(&key)).then_some((len, key))
        })
    }

    fn capacity(&self) -> usize {
        self.sets.iter().map(HashSet::capacity).sum()
    }
}

/// A set of IPv4 and IPv6 prefixes; `longest` finds the longest that
/// contains an address.
#[derive(Debug, Clone)]
pub struct PrefixTable {
    v4: Family<u32>,
    v6: Family<u128>,
    len: usize,
}

impl Default for PrefixTable {
    fn default() -> Self {
        Self { v4: Family::new(32), v6: Family::new(128), len: 0 }
    }
}

fn mask4(bits: u32, len: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(bits: u128, len: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl PrefixTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `net` (its host bits ignored); false when it was there.
    pub fn insert(&mut self, net: IpNet) -> bool {
        let added = match net {
            IpNet::V4(n) => self.v4.add(n.prefix_len(), mask4(u32::from(n.addr()), n.prefix_len())),
            IpNet::V6(n) => {
                // An IPv4-mapped prefix is the IPv4 prefix it maps.
                if let Some(v4net) = n
                    .addr()
                    .to_ipv4_mapped()
                    .filter(|_| n.prefix_len() >= 96)
                    .and_then(|v4| Ipv4Net::new(v4, n.prefix_len() - 96).ok())
                {
                    return self.insert(IpNet::V4(v4net));
                }
                self.v6.add(n.prefix_len(), mask6(u128::from(n.addr()), n.prefix_len()))
            }
        };
        if added {
            self.len += 1;
        }
        added
    }

    /// The longest prefix in the table that contains `addr`.
    pub fn longest(&self, addr: IpAddr) -> Option<IpNet> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            IpAddr::V4(_) => addr,
        };
        match addr {
            IpAddr::V4(v4) => {
                let (len, key) = self.v4.find(|len| mask4(u32::from(v4), len))?;
                Ipv4Net::new(key.into(), len).ok().map(IpNet::V4)
            }
            IpAddr::V6(v6) => {
                let (len, key) = self.v6.find(|len| mask6(u128::from(v6), len))?;
                Ipv6Net::new(key.into(), len).ok().map(IpNet::V6)
            }
        }
    }

    /// Does any prefix contain `addr`?
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.longest(addr).is_some()
    }

    /// How many prefixes the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the sets hold (capacity, not just entries), for the metrics
    /// and docs/BENCHMARKS.md.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket beside each key.
        self.v4.capacity() * (4 + 1) + self.v6.capacity() * (16 + 1)
    }
}
