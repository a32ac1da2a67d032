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
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A set of IPv4 and IPv6 prefixes; `longest` finds the longest that
/// contains an address.
#[derive(Debug, Clone)]
pub struct PrefixTable {
    /// Index = prefix length (0..=32); keys are the masked network.
    v4: Vec<HashSet<u32>>,
    /// Index = prefix length (0..=128).
    v6: Vec<HashSet<u128>>,
    /// The lengths with at least one entry, longest first.
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
    len: usize,
}

impl Default for PrefixTable {
    fn default() -> Self {
        Self {
            v4: vec![HashSet::new(); 33],
            v6: vec![HashSet::new(); 129],
            v4_lengths: Vec::new(),
            v6_lengths: Vec::new(),
            len: 0,
        }
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
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = mask4(u32::from(n.addr()), len);
                let set = &mut self.v4[usize::from(len)];
                let added = set.insert(key);
                if added && set.len() == 1 {
                    self.v4_lengths.push(len);
                    self.v4_lengths.sort_unstable_by(|a, b| b.cmp(a));
                }
                added
            }
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
                let len = n.prefix_len();
                let key = mask6(u128::from(n.addr()), len);
                let set = &mut self.v6[usize::from(len)];
                let added = set.insert(key);
                if added && set.len() == 1 {
                    self.v6_lengths.push(len);
                    self.v6_lengths.sort_unstable_by(|a, b| b.cmp(a));
                }
                added
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
                let bits = u32::from(v4);
                self.v4_lengths.iter().find_map(|&len| {
                    let key = mask4(bits, len);
                    self.v4[usize::from(len)]
                        .contains(&key)
                        .then(|| Ipv4Net::new(key.into(), len).ok().map(IpNet::V4))
                        .flatten()
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6_lengths.iter().find_map(|&len| {
                    let key = mask6(bits, len);
                    self.v6[usize::from(len)]
                        .contains(&key)
                        .then(|| Ipv6Net::new(key.into(), len).ok().map(IpNet::V6))
                        .flatten()
                })
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
        let v4: usize = self.v4.iter().map(|s| s.capacity() * (4 + 1)).sum();
        let v6: usize = self.v6.iter().map(|s| s.capacity() * (16 + 1)).sum();
        v4 + v6
    }
}
