//! Threat intelligence (docs/CONFIG.md, `[threat]`): which addresses the
//! operator's blocklist feeds name, and what that means for a handshake or
//! an `/auth/*` request. Pure: the server fetches and re-reads the feeds,
//! parses them here, and swaps a whole [`Threats`] in, like the policy.

pub mod geo;
pub mod stuffing;
mod table;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::refusal::{Kind, Refusal};
pub use table::PrefixTable;

/// What a feed's listing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse the handshake or request (403, like a ban).
    Deny,
    /// Add the feed's weight to the address's anomaly score on its first
    /// request.
    Score,
}

/// A feed's text, read: the prefixes, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The prefixes read.
    pub table: PrefixTable,
    /// Lines that are neither blank, a comment, an address nor a prefix.
    pub malformed: usize,
    /// Entries past `max_entries`, dropped.
    pub dropped: usize,
}

/// Reads a feed: one address or prefix per line, `#` comments, and
/// Spamhaus DROP's `prefix ; id` lines (`;` starts a comment too). A bad
/// line is counted, never fatal; at most `max_entries` prefixes are kept.
pub fn parse(text: &str, max_entries: usize) -> Parsed {
    let mut out = Parsed::default();
    for line in text.lines() {
        let entry = line.split(['#', ';']).next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            None => out.malformed += 1,
            Some(_) if out.table.len() >= max_entries => out.dropped += 1,
            Some(net) => {
                out.table.insert(net);
            }
        }
    }
    out
}

/// One feed's list in force.
#[derive(Debug, Clone)]
pub struct FeedList {
    /// The feed's `name` in the config.
    pub name: String,
    /// Its `action`.
    pub action: Action,
    /// Added to the score by a `score` feed.
    pub weight: u32,
    /// The last good list (empty until the first load succeeds).
    pub table: Arc<PrefixTable>,
}

/// What the feeds say about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No feed lists it.
    Clear,
    /// A `threat.allow` prefix covers it: never refused by a feed.
    Allowed(IpNet),
    /// The first `deny` feed that lists it, and the prefix.
    Deny {
        /// The feed's name.
        feed: String,
        /// The prefix that lists the address.
        prefix: IpNet,
    },
    /// Only `score` feeds list it: the sum of their weights.
    Score {
        /// Summed weights.
        weight: u32,
        /// The feeds' names.
        feeds: Vec<String>,
    },
}

impl Verdict {
    /// The refusal a `deny` verdict is: a ban hit's kind (403, the generic
    /// body, the ban's weight), the reason naming the feed for the audit.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Deny { feed, prefix } => Some(Refusal::new(Kind::Banned, format!("threat feed {feed}: {prefix}"))),
            _ => None,
        }
    }
}

/// One feed's listing of an address, for `palisade threat check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The feed's name.
    pub feed: String,
    /// Its action.
    pub action: Action,
    /// The longest of its prefixes containing the address.
    pub prefix: IpNet,
}

/// The feeds and the allow list in force.
#[derive(Debug, Clone, Default)]
pub struct Threats {
    /// In config order.
    pub feeds: Vec<FeedList>,
    /// `threat.allow`.
    pub allow: Arc<PrefixTable>,
}

impl Threats {
    /// Whether there is anything to check (no feeds: every lookup skipped).
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// Every feed that lists `addr`, in config order.
    pub fn listings(&self, addr: IpAddr) -> Vec<Listing> {
        self.feeds
            .iter()
            .filter_map(|f| {
                f.table.longest(addr).map(|prefix| Listing { feed: f.name.clone(), action: f.action, prefix })
            })
            .collect()
    }

    /// Whether a `threat.allow` entry covers `addr`: never refused by a
    /// feed or a geo rule, never scored for credential stuffing
    /// ([`stuffing::Failing`]).
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.allow.longest(addr).is_some()
    }

    /// What the feeds say about `addr`: the allow list first, then the
    /// first `deny` feed listing it, else the `score` feeds' weights.
    pub fn judge(&self, addr: IpAddr) -> Verdict {
        if let Some(prefix) = self.allow.longest(addr) {
            return Verdict::Allowed(prefix);
        }
        if self.feeds.is_empty() {
            return Verdict::Clear;
        }
        let listings = self.listings(addr);
        if let Some(deny) = listings.iter().find(|l| l.action == Action::Deny) {
            return Verdict::Deny { feed: deny.feed.clone(), prefix: deny.prefix };
        }
        let mut weight = 0u32;
        let mut feeds = Vec::new();
        for l in listings {
            let w = self.feeds.iter().find(|f| f.name == l.feed).map_or(0, |f| f.weight);
            weight = weight.saturating_add(w);
            feeds.push(l.feed);
        }
        if feeds.is_empty() { Verdict::Clear } else { Verdict::Score { weight, feeds } }
    }

    /// A copy with feed `name`'s list replaced (a refresh).
    pub fn with_table(&self, name: &str, table: Arc<PrefixTable>) -> Self {
        let mut next = self.clone();
        if let Some(f) = next.feeds.iter_mut().find(|f| f.name == name) {
            f.table = table;
        }
        next
    }
}
