//! `[abuse]`: the guard's limits, score thresholds and bans, and what they
//! become in core (docs/CONFIG.md, "abuse").

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_core::guard::{BanTerms, GuardSettings, Rate, SpamRules, Weights};
use palisade_core::refusal::Kind;
use serde::{Deserialize, Serialize};

use super::{ConfigError, duration};

/// `[abuse]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseConfig {
    /// Compute, log and count every decision; enforce none.
    pub dry_run: bool,
    /// Handshake attempts per address.
    #[serde(with = "rate")]
    pub connect_rate: Rate,
    /// Other HTTP requests per address (`/auth/*`).
    #[serde(with = "rate")]
    pub request_rate: Rate,
    /// Open connections per address.
    pub max_connections_per_ip: u32,
    /// Sockets of one address waiting for their request to be answered.
    pub max_pending_per_ip: u32,
    /// Open connections per user.
    pub max_connections_per_user: u32,
    /// Messages per connection.
    #[serde(with = "rate")]
    pub connection_rate: Rate,
    /// Messages per user, across their connections.
    #[serde(with = "rate")]
    pub user_rate: Rate,
    /// Messages per address, across its connections.
    #[serde(with = "rate")]
    pub ip_rate: Rate,
    /// Pings and pongs per connection.
    #[serde(with = "rate")]
    pub control_rate: Rate,
    /// `recover` requests per user.
    #[serde(with = "rate")]
    pub recover_rate: Rate,
    /// Restricted rates are divided by this.
    pub restrict_divisor: u32,
    /// Scores halve in this time.
    #[serde(with = "duration")]
    pub score_half_life: Duration,
    /// Score at which rates are restricted.
    pub restrict_at: u32,
    /// Connection or user score at which the connection is closed (4008).
    pub disconnect_at: u32,
    /// Address (and with `ban_users`, user) score at which it is banned.
    pub ban_at: u32,
    /// Ban users as well as addresses.
    pub ban_users: bool,
    /// The first automatic ban's length.
    #[serde(with = "duration")]
    pub ban_first: Duration,
    /// Each repeat lasts this many times longer.
    pub ban_factor: u32,
    /// Longest automatic ban.
    #[serde(with = "duration")]
    pub ban_max: Duration,
    /// How long after a ban ends a new one counts as a repeat.
    #[serde(with = "duration")]
    pub ban_memory: Duration,
    /// Most addresses, and most users, tracked at once.
    pub max_tracked_keys: usize,
    /// Most bans held, in memory and in the store's `bans` table.
    pub max_bans: usize,
    /// Ban history records older than this are deleted.
    #[serde(with = "duration")]
    pub ban_history_max_age: Duration,
    /// Most ban history records kept; the oldest go first.
    pub ban_history_max_rows: usize,
    /// Longest run of one character in event data (0: off).
    pub spam_max_repeat: usize,
    /// Most links in event data (0: off).
    pub spam_max_links: usize,
    /// Score weight per refusal kind.
    pub weights: BTreeMap<String, u32>,
}

impl AbuseConfig {
    /// The core's settings; errors name the key.
    pub fn settings(&self) -> Result<GuardSettings, ConfigError> {
        let zero = [
            ("abuse.max_connections_per_ip", self.max_connections_per_ip == 0),
            ("abuse.max_pending_per_ip", self.max_pending_per_ip == 0),
            ("abuse.max_connections_per_user", self.max_connections_per_user == 0),
            ("abuse.restrict_divisor", self.restrict_divisor == 0),
            ("abuse.ban_factor", self.ban_factor == 0),
            ("abuse.max_tracked_keys", self.max_tracked_keys == 0),
            ("abuse.max_bans", self.max_bans == 0),
            ("abuse.ban_history_max_rows", self.ban_history_max_rows == 0),
        ];
        if let Some((key, _)) = zero.into_iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError::invalid(key, "must be greater than 0"));
        }
        // Younger than ban_memory, the history would forget a ban whose
        // strikes still count, and `ban history` would not explain them.
        if self.ban_history_max_age < self.ban_memory {
            return Err(ConfigError::invalid("abuse.ban_history_max_age", "must be at least abuse.ban_memory"));
        }
        if !(self.restrict_at <= self.disconnect_at && self.disconnect_at <= self.ban_at) || self.restrict_at == 0 {
            return Err(ConfigError::invalid(
                "abuse.restrict_at",
                "thresholds must satisfy 0 < restrict_at <= disconnect_at <= ban_at",
            ));
        }
        if self.ban_first.is_zero() || self.ban_max < self.ban_first {
            return Err(ConfigError::invalid("abuse.ban_max", "must be at least abuse.ban_first, which must be > 0"));
        }
        let mut weights = Weights::default();
        for (name, weight) in &self.weights {
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                let known: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
                ConfigError::invalid(
                    format!("abuse.weights.{name}"),
                    format!("unknown kind; known: {}", known.join(", ")),
                )
            })?;
            weights.set(kind, *weight);
        }
        Ok(GuardSettings {
            dry_run: self.dry_run,
            connect_rate: self.connect_rate,
            request_rate: self.request_rate,
            max_connections_per_ip: self.max_connections_per_ip,
            max_pending_per_ip: self.max_pending_per_ip,
            max_connections_per_user: self.max_connections_per_user,
            connection_rate: self.connection_rate,
            user_rate: self.user_rate,
            ip_rate: self.ip_rate,
            control_rate: self.control_rate,
            recover_rate: self.recover_rate,
            restrict_divisor: self.restrict_divisor,
            score_half_life: self.score_half_life,
            restrict_at: f64::from(self.restrict_at),
            disconnect_at: f64::from(self.disconnect_at),
            ban_at: f64::from(self.ban_at),
            ban_users: self.ban_users,
            ban_terms: BanTerms {
                first: self.ban_first,
                factor: self.ban_factor,
                max: self.ban_max,
                memory: self.ban_memory,
            },
            weights,
            max_tracked_keys: self.max_tracked_keys,
            max_bans: self.max_bans,
            spam: SpamRules { max_repeat: self.spam_max_repeat, max_links: self.spam_max_links },
        })
    }
}

/// Rates in config are strings like "20/s" or "30/min".
mod rate {
    use palisade_core::guard::Rate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let raw = String::deserialize(d)?;
        Rate::parse(&raw).map_err(|why| serde::de::Error::custom(format!("`{raw}`: {why}")))
    }

    pub(super) fn serialize<S: Serializer>(rate: &Rate, s: S) -> Result<S::Ok, S::Error> {
        let unit = match rate.per.as_secs() {
            3600 => "h",
            60 => "min",
            _ => "s",
        };
        s.serialize_str(&format!("{}/{unit}", rate.count))
    }
}
