//! The guard's settings: `[abuse]` as the server's config compiles it.

use std::time::Duration;

use super::{BanTerms, Rate, SpamRules};
use crate::refusal::Kind;

/// The guard's settings (`[abuse]`, docs/CONFIG.md).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    /// Compute, log and count every decision, enforce none.
    pub dry_run: bool,
    /// Handshake attempts per address.
    pub connect_rate: Rate,
    /// Other HTTP requests per address (`/auth/*`).
    pub request_rate: Rate,
    /// Open connections per address.
    pub max_connections_per_ip: u32,
    /// Sockets of one address waiting for their request to be answered.
    pub max_pending_per_ip: u32,
    /// Open connections per user.
    pub max_connections_per_user: u32,
    /// Messages per connection.
    pub connection_rate: Rate,
    /// Messages per user, across their connections.
    pub user_rate: Rate,
    /// Messages per address, across its connections.
    pub ip_rate: Rate,
    /// Pings and pongs per connection.
    pub control_rate: Rate,
    /// `recover` requests per user: each may replay a room's whole
    /// history, so they are counted apart from the message rates.
    pub recover_rate: Rate,
    /// A restricted key's rates are divided by this.
    pub restrict_divisor: u32,
    /// Scores halve in this time.
    pub score_half_life: Duration,
    /// Score at which rates are restricted.
    pub restrict_at: f64,
    /// Connection or user score at which the connection is closed (4008).
    pub disconnect_at: f64,
    /// Address (or, with `ban_users`, user) score at which it is banned.
    pub ban_at: f64,
    /// Ban users as well as addresses.
    pub ban_users: bool,
    /// How long automatic bans last.
    pub ban_terms: BanTerms,
    /// Score weight of each kind of refusal.
    pub weights: Weights,
    /// Most addresses, and most users, tracked at once.
    pub max_tracked_keys: usize,
    /// Most subjects the ban list holds (see [`crate::guard::BanList`]).
    pub max_bans: usize,
    /// Spam heuristics.
    pub spam: SpamRules,
}

/// Score weight per [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub struct Weights([u32; Kind::ALL.len()]);

impl Default for Weights {
    fn default() -> Self {
        Self(Kind::ALL.map(Kind::default_weight))
    }
}

impl Weights {
    /// The weight of `kind`.
    pub fn get(&self, kind: Kind) -> u32 {
        self.0[kind as usize]
    }

    /// Sets the weight of `kind`.
    pub fn set(&mut self, kind: Kind, weight: u32) {
        self.0[kind as usize] = weight;
    }
}
