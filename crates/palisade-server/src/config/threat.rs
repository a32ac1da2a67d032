//! `[threat]` and `[[threat.feeds]]`: blocklist feeds and the addresses
//! they never refuse (docs/CONFIG.md, "threat"; docs/OPERATIONS.md,
//! "Threat feeds").

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use palisade_core::threat::geo::{GeoRules, Unknown, iso_codes};
use palisade_core::threat::stuffing::{SpraySettings, StuffingSettings};
use palisade_core::threat::{Action, PrefixTable};
use serde::{Deserialize, Serialize};

use super::{ConfigError, duration};

/// `[threat]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatConfig {
    /// `[[threat.feeds]]`, in order: the first `deny` feed listing an
    /// address names the refusal.
    pub feeds: Vec<FeedConfig>,
    /// Addresses or CIDRs no feed or geo rule refuses, and credential
    /// stuffing never scores.
    pub allow: Vec<String>,
    /// The longest one fetch or file read may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The most bytes one fetch or file read takes in.
    pub max_bytes: usize,
    /// The most prefixes one feed keeps.
    pub max_entries: usize,
    /// Distinct names failing from one address that count as stuffing.
    pub stuffing_names: usize,
    /// Within this window.
    #[serde(with = "duration")]
    pub stuffing_window: Duration,
    /// Added to the address's score when it does.
    pub stuffing_weight: u32,
    /// Addresses tracked at most.
    pub stuffing_max_addresses: usize,
    /// Distinct addresses one wrong password fails from within
    /// `stuffing_window` that count as stuffing.
    pub stuffing_addresses: usize,
    /// Wrong passwords (keyed fingerprints) tracked at most.
    pub stuffing_max_passwords: usize,
    /// Addresses kept per wrong password at most.
    pub stuffing_max_addresses_per_password: usize,
}

/// One `[[threat.feeds]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Shown in metrics, the audit record and `/api/threat`.
    pub name: String,
    /// A file path (relative to the config file) or an `http(s)://` URL.
    pub source: String,
    /// Only `cidr` (which reads Spamhaus DROP's `cidr ; id` lines too).
    #[serde(default = "cidr")]
    pub format: String,
    /// How often the source is fetched again (a file: re-read if changed).
    #[serde(with = "duration", default = "hourly")]
    pub refresh: Duration,
    /// `deny` or `score`.
    #[serde(default = "deny")]
    pub action: String,
    /// Added to a listed address's score on its first request (`score`).
    #[serde(default)]
    pub weight: u32,
}

fn cidr() -> String {
    "cidr".into()
}

fn hourly() -> Duration {
    Duration::from_secs(3600)
}

fn deny() -> String {
    "deny".into()
}

/// Where a feed is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    /// Fetched with the server's bounded HTTP client.
    Url(String),
    /// Read from disk, again when its modification time changes.
    File(PathBuf),
}

/// One feed, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSettings {
    /// Its name.
    pub name: String,
    /// Where from.
    pub source: FeedSource,
    /// Refresh interval.
    pub refresh: Duration,
    /// What a listing does.
    pub action: Action,
    /// The weight of a `score` feed.
    pub weight: u32,
}

/// `[threat]`, checked.
#[derive(Debug, Clone)]
pub struct ThreatSettings {
    /// The feeds, in order.
    pub feeds: Vec<FeedSettings>,
    /// `threat.allow`.
    pub allow: PrefixTable,
    /// The allow entries as written, for `config explain`.
    pub allow_listed: Vec<IpNet>,
    /// Per fetch.
    pub timeout: Duration,
    /// Per fetch.
    pub max_bytes: usize,
    /// Per feed.
    pub max_entries: usize,
    /// `[geo]`, when `geo.database` is set.
    pub geo: Option<GeoSettings>,
    /// Credential stuffing detection: many names from one address.
    pub stuffing: StuffingSettings,
    /// And one password from many addresses.
    pub spray: SpraySettings,
    /// `threat.stuffing_weight`.
    pub stuffing_weight: u32,
}

/// `[geo]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// The `.mmdb` file; "" for none.
    pub database: String,
    /// Only these countries are served.
    pub allow_countries: Vec<String>,
    /// These countries are refused.
    pub deny_countries: Vec<String>,
    /// `allow` or `deny`: addresses the database does not place.
    pub unknown: String,
    /// How often the file is checked for a change.
    #[serde(with = "duration")]
    pub refresh: Duration,
}

/// `[geo]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoSettings {
    /// The database file.
    pub database: PathBuf,
    /// What it decides.
    pub rules: GeoRules,
    /// How often the file is checked for a change.
    pub refresh: Duration,
}

impl GeoConfig {
    /// `geo.unknown`, checked (the room rules' countries read it too).
    pub fn unknown(&self) -> Result<Unknown, ConfigError> {
        match self.unknown.as_str() {
            "allow" => Ok(Unknown::Allow),
            "deny" => Ok(Unknown::Deny),
            _ => Err(ConfigError::invalid("geo.unknown", "must be \"allow\" or \"deny\"")),
        }
    }

    /// The checked settings (`None` without a database).
    pub fn settings(&self, base_dir: &Path) -> Result<Option<GeoSettings>, ConfigError> {
        let codes = |key: &str, list: &[String]| iso_codes(list).map_err(|why| ConfigError::invalid(key, why));
        let allow = codes("geo.allow_countries", &self.allow_countries)?;
        let deny = codes("geo.deny_countries", &self.deny_countries)?;
        if !allow.is_empty() && !deny.is_empty() {
            return Err(ConfigError::invalid("geo.allow_countries", "not both with geo.deny_countries"));
        }
        let unknown = self.unknown()?;
        if self.refresh.is_zero() {
            return Err(ConfigError::invalid("geo.refresh", "must be greater than 0"));
        }
        let rules = GeoRules { allow, deny, unknown };
        if self.database.is_empty() {
            if rules.is_active() {
                return Err(ConfigError::invalid("geo.database", "required by the geo rules"));
            }
            return Ok(None);
        }
        Ok(Some(GeoSettings { database: base_dir.join(&self.database), rules, refresh: self.refresh }))
    }
}

impl super::Config {
    /// `[threat]` and `[geo]`, checked: what the server (at start and on a
    /// reload) and `palisade threat check` run on.
    pub fn threat_settings(&self) -> Result<ThreatSettings, ConfigError> {
        let mut threat = self.threat.settings(&self.base_dir)?;
        threat.geo = self.geo.settings(&self.base_dir)?;
        Ok(threat)
    }
}

impl ThreatConfig {
    /// The checked settings; `base_dir` resolves relative file sources.
    pub fn settings(&self, base_dir: &Path) -> Result<ThreatSettings, ConfigError> {
        for (key, value) in [("threat.max_bytes", self.max_bytes), ("threat.max_entries", self.max_entries)] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        for (key, d) in [("threat.timeout", self.timeout), ("threat.stuffing_window", self.stuffing_window)] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        for (key, value) in [
            ("threat.stuffing_max_addresses", self.stuffing_max_addresses),
            ("threat.stuffing_max_passwords", self.stuffing_max_passwords),
            ("threat.stuffing_max_addresses_per_password", self.stuffing_max_addresses_per_password),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.stuffing_addresses > self.stuffing_max_addresses_per_password {
            return Err(ConfigError::invalid(
                "threat.stuffing_addresses",
                "must be at most threat.stuffing_max_addresses_per_password (else it is never reached)",
            ));
        }
        let mut allow = PrefixTable::new();
        let mut allow_listed = Vec::new();
        for entry in &self.allow {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::invalid("threat.allow", format!("`{entry}` is not an address or CIDR")))?;
            allow.insert(net);
            allow_listed.push(net);
        }
        let mut feeds: Vec<FeedSettings> = Vec::new();
        for f in &self.feeds {
            let key = |k: &str| format!("threat.feeds.{}.{k}", f.name);
            if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(ConfigError::invalid("threat.feeds.name", "must be non-empty: letters, digits, - _ ."));
            }
            if feeds.iter().any(|g| g.name == f.name) {
                return Err(ConfigError::invalid(key("name"), "names another feed too"));
            }
            if f.format != "cidr" {
                return Err(ConfigError::invalid(key("format"), "must be \"cidr\""));
            }
            if f.refresh.is_zero() {
                return Err(ConfigError::invalid(key("refresh"), "must be greater than 0"));
            }
            let action = match f.action.as_str() {
                "deny" => Action::Deny,
                "score" if f.weight > 0 => Action::Score,
                "score" => return Err(ConfigError::invalid(key("weight"), "must be greater than 0 for \"score\"")),
                _ => return Err(ConfigError::invalid(key("action"), "must be \"deny\" or \"score\"")),
            };
            let source = if f.source.starts_with("https://") {
                FeedSource::Url(f.source.clone())
            } else if let Some(rest) = f.source.strip_prefix("http://") {
                // Plain http only to this host: a feed decides who is
                // refused, so it must not be rewritable on the way.
                let host = rest.split(['/', '?']).next().unwrap_or("");
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
                let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(ConfigError::invalid(key("source"), "http:// only to a loopback host; use https://"));
                }
                FeedSource::Url(f.source.clone())
            } else if f.source.is_empty() {
                return Err(ConfigError::invalid(key("source"), "must be a file path or an http(s):// URL"));
            } else {
                FeedSource::File(base_dir.join(&f.source))
            };
            feeds.push(FeedSettings { name: f.name.clone(), source, refresh: f.refresh, action, weight: f.weight });
        }
        Ok(ThreatSettings {
            feeds,
            allow,
            allow_listed,
            timeout: self.timeout,
            max_bytes: self.max_bytes,
            max_entries: self.max_entries,
            geo: None,
            stuffing: StuffingSettings {
                names: self.stuffing_names,
                window: self.stuffing_window,
                max_addresses: self.stuffing_max_addresses,
            },
            spray: SpraySettings {
                addresses: self.stuffing_addresses,
                window: self.stuffing_window,
                max_passwords: self.stuffing_max_passwords,
                max_addresses_per_password: self.stuffing_max_addresses_per_password,
            },
            stuffing_weight: self.stuffing_weight,
        })
    }
}
