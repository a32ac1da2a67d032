//! `palisade.toml`: the config tree, how it is loaded, and what it becomes.
//!
//! Defaults live in one place, the commented template `palisade.toml` next
//! to this file, which is also what `palisade init` writes. A user's file is
//! merged over it (tables merge key by key; the policy maps `roles`, `rooms`
//! and `events`, and all arrays, are replaced whole), then `PALISADE_*`
//! overrides are applied, then the tree is deserialized with unknown keys
//! refused and every error naming its key.

mod abuse;
mod admin;
mod alerts;
mod audit;
mod duration;
pub mod env;
pub mod explain;
mod gateway;
mod init;
mod issuers;
mod keys;
mod locate;
mod login;
mod secret;
mod siem;
mod threat;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_core::policy::{EventSpec, RoleSpec, RoomSpec};
use palisade_core::sanitize::InvalidUrl;
use palisade_core::seams::FailMode;
use palisade_protocol::ENVELOPE_HEADROOM;
use serde::{Deserialize, Serialize};

pub use abuse::AbuseConfig;
pub(crate) use admin::ADMIN_REQUEST_TIMEOUT;
pub use admin::{AdminConfig, MIN_API_KEY_BYTES};
pub use alerts::{AlertSecret, AlertsConfig, MIN_ALERT_SECRET_BYTES};
pub use audit::{AuditConfig, AuditKey, RetentionConfig};
pub use env::{Env, ProcessEnv};
pub use gateway::{GatewayConfig, GatewaySettings, MIN_IDENTITY_SECRET_BYTES, OnRefusal, Preset};
pub use init::render_init;
pub use issuers::{IssuerConfig, load_issuers};
pub(crate) use keys::fresh_secret;
pub use keys::{KeyConfig, dev_key};
pub use login::{LoginConfig, LoginSettings};
pub use siem::{SiemConfig, SiemFormat, SiemSettings, Transport};
pub use threat::{FeedConfig, FeedSettings, FeedSource, GeoConfig, GeoSettings, ThreatConfig, ThreatSettings};
pub use tls::TlsConfig;

/// The default config, with comments: the single source of defaults.
pub(crate) const TEMPLATE: &str = include_str!("palisade.toml");

/// Origins the dev profile allows on top of the configured ones.
pub const DEV_ORIGINS: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// Top-level keys whose tables are replaced, not merged, by a user's file:
/// their entries are names the user chooses, so merging would keep default
/// rooms or roles the user meant to drop.
const REPLACED_TABLES: [&str; 3] = ["roles", "rooms", "events"];

/// A config that could not be loaded; the message names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML. Never the parser's `Display`: it quotes
    /// the line, which may hold a secret.
    #[error("{path} is not valid TOML at line {line}, column {column}{}: {message}", key_suffix(key))]
    Syntax {
        /// File.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The dotted key read last before the error, "" when none.
        key: String,
        /// The parser's message, without quoted text.
        message: String,
    },
    /// A key is unknown or has a bad value.
    #[error("config key `{key}`: {why}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// An environment override is malformed.
    #[error("environment variable {var}: {why}")]
    Env {
        /// Variable name.
        var: String,
        /// What is wrong.
        why: String,
    },
}

fn key_suffix(key: &str) -> String {
    if key.is_empty() { String::new() } else { format!(", near key `{key}`") }
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), why: why.into() }
    }
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[login]`
    pub login: LoginConfig,
    /// `[origins]`
    pub origins: OriginsConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[csrf]`
    pub csrf: CsrfConfig,
    /// `[replay]`
    pub replay: ReplayConfig,
    /// `[sanitize]`
    pub sanitize: SanitizeConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[abuse]`
    pub abuse: AbuseConfig,
    /// `[admin]`
    pub admin: AdminConfig,
    /// `[alerts]`
    pub alerts: AlertsConfig,
    /// `[siem]`
    pub siem: SiemConfig,
    /// `[gateway]`
    pub gateway: GatewayConfig,
    /// `[threat]`
    pub threat: ThreatConfig,
    /// `[geo]`
    pub geo: GeoConfig,
    /// `[roles.<name>]`
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSpec>,
    /// `[rooms."<pattern>"]`
    #[serde(default)]
    pub rooms: BTreeMap<String, RoomSpec>,
    /// `[events."<name>"]`
    #[serde(default)]
    pub events: BTreeMap<String, EventSpec>,
    /// Directory relative file names in the config resolve against (the
    /// config file's own directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[store]`: where bans, revocations, users, sessions, rooms' owners and
/// the audit log are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which store.
    pub backend: StoreBackend,
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS,
    /// for `backend = "redis"`. Never logged or quoted: it may hold a
    /// password.
    pub redis_url: String,
    /// PEM file of the roots a `rediss://` server's certificate must chain
    /// to, instead of the system's (relative to `base_dir`); `""`: the
    /// system's.
    pub redis_ca_file: String,
    /// What every Redis key and channel of this cluster starts with.
    pub prefix: String,
    /// The longest a Redis call on the message path may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The most this node's clock may be off Redis's before it is not
    /// ready.
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
    /// What a handshake gets while this node cannot reach Redis.
    pub fail_mode: FailMode,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded SQLite file `<server.data_dir>/palisade.db`.
    Sqlite,
    /// Cluster mode: the message path, bans, revocations, users and login
    /// sessions on Redis (`store.redis_url`), rooms' owners and the audit
    /// log in each node's SQLite file (docs/OPERATIONS.md).
    Redis,
}

/// `[csrf]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfConfig {
    /// Rotation interval.
    #[serde(with = "duration")]
    pub rotate_every: Duration,
    /// How long the previous token stays valid.
    #[serde(with = "duration")]
    pub grace: Duration,
}

/// `[replay]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Accepted distance of `ts` from server time.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Most nonces remembered at once.
    pub max_nonces: usize,
    /// Most nonces remembered at once for one user.
    pub max_nonces_per_user: usize,
}

/// `[log]`: what client text and floods may cost the server's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Refusal log lines written per second at most, across all
    /// connections; the rest are counted and reported with the next line.
    pub refusals_per_second: u32,
    /// Longest client-supplied text written into one log field, in
    /// characters; the rest is cut and its size noted.
    pub max_client_text: usize,
}

/// `[sanitize]`: the core's sanitizer settings plus a word file to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanitizeConfig {
    /// Hosts links may not point to.
    pub url_blocked_hosts: Vec<String>,
    /// What to do with a bad `url` field.
    pub url_invalid: InvalidUrl,
    /// Words to mask.
    pub profanity_words: Vec<String>,
    /// File with more words, one per line; "" for none.
    pub profanity_file: String,
    /// Longest file name kept.
    pub filename_max_len: usize,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This node's id, which qualifies its connection ids.
    pub node_id: String,
    /// Listener address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Deadline for the HTTP upgrade request.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// Deadline for a socket's first byte, within `handshake_timeout`.
    #[serde(with = "duration")]
    pub first_byte_timeout: Duration,
    /// Time given to connections to close on shutdown.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Serve `/conformance/echo`.
    pub conformance_echo: bool,
    /// Serve plain HTTP and ws in production (behind a TLS-terminating
    /// proxy).
    pub allow_plaintext: bool,
    /// `Strict-Transport-Security` max-age on HTTPS answers; 0 for none.
    #[serde(with = "duration")]
    pub hsts_max_age: Duration,
    /// `[server.tls]`
    pub tls: TlsConfig,
    /// Peers whose `X-Forwarded-For` names the client (CIDRs).
    pub trusted_proxies: Vec<String>,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Required `iss`, "" for none.
    pub issuer: String,
    /// Required `aud`, "" for none.
    pub audience: String,
    /// Clock skew on `exp`/`nbf`, and grace after `exp`.
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// Lead time of the `expiring` notice.
    #[serde(with = "duration")]
    pub expiry_notice: Duration,
    /// Lifetime of minted tokens.
    #[serde(with = "duration")]
    pub token_ttl: Duration,
    /// Longest token accepted.
    pub max_token_bytes: usize,
    /// Accept `?access_token=`.
    pub allow_query_token: bool,
    /// Roles every user has.
    pub default_roles: Vec<String>,
    /// Verification and signing keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// External token issuers (`[[auth.issuers]]`).
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// `[origins]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginsConfig {
    /// Allowed origins and patterns.
    pub allow: Vec<String>,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest client frame/message.
    pub max_message_bytes: usize,
    /// Outbound queue length per connection.
    pub outbound_queue: usize,
    /// The largest frame queued for a socket.
    pub max_write_buffer_bytes: usize,
    /// Bytes asked for by each socket read.
    pub read_buffer_bytes: usize,
    /// Ping interval.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// Extra silence tolerated after a ping.
    #[serde(with = "duration")]
    pub heartbeat_timeout: Duration,
    /// Wait for the peer's close frame.
    #[serde(with = "duration")]
    pub close_timeout: Duration,
    /// Open connections per process.
    pub max_connections: usize,
    /// Accepted sockets that have not finished their handshake.
    pub max_pending_handshakes: usize,
    /// Rooms per connection.
    pub max_rooms_per_connection: usize,
    /// Deepest nesting in event data.
    pub max_json_depth: usize,
    /// Bytes of history one room may keep.
    pub max_history_bytes_per_room: usize,
    /// Bytes of history every room together may keep.
    pub max_history_bytes: usize,
    /// Rooms one user may own at once.
    pub max_owned_rooms_per_user: usize,
    /// Rooms with an owner, in all.
    pub max_owned_rooms: usize,
    /// How long a `send.cid` is remembered.
    #[serde(with = "duration")]
    pub client_id_window: Duration,
    /// `cid`s one user has remembered at once.
    pub max_client_ids_per_user: usize,
    /// `cid`s remembered in all.
    pub max_client_ids: usize,
}

/// Where the config comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Defaults only.
    Defaults,
    /// A file merged over the defaults.
    File(&'a Path),
}

impl Config {
    /// Loads and validates the config from `source` plus `env` overrides.
    pub fn load(source: Source<'_>, env: &dyn Env) -> Result<Self, ConfigError> {
        let defaults = template_table();
        let mut tree = defaults.clone();
        let mut base_dir = PathBuf::from(".");
        let mut text = String::new();
        if let Source::File(path) = source {
            base_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(base_dir, Path::to_path_buf);
            text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            Self::merge_text(&mut tree, &text, path)?;
        }
        env::apply(env, &mut tree, &defaults)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
            let key = e.path().to_string();
            // serde quotes a wrong-typed string whole (`api_keys = "<key>"`).
            let mut why = locate::without_values(&e.into_inner().to_string());
            if let Some(place) = locate::key(&text, &key) {
                why = format!("{why} (line {}, column {})", place.line, place.column);
            }
            ConfigError::invalid(if key == "." { String::new() } else { key }, why)
        })?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    /// Parses `text` (from `path`) over the tree, with the merge rules above.
    fn merge_text(tree: &mut toml::Table, text: &str, path: &Path) -> Result<(), ConfigError> {
        let user: toml::Table = toml::from_str(text).map_err(|e| {
            let place = locate::syntax_error(text, e.span().map_or(0, |s| s.start));
            let message = locate::without_values(e.message());
            ConfigError::Syntax {
                path: path.to_owned(),
                line: place.line,
                column: place.column,
                key: place.key,
                message,
            }
        })?;
        for (key, value) in user {
            if REPLACED_TABLES.contains(&key.as_str()) {
                tree.insert(key, value);
            } else {
                merge(tree, key, value);
            }
        }
        Ok(())
    }

    /// Cross-field checks serde cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("limits.max_json_depth", l.max_json_depth),
            ("replay.max_nonces", self.replay.max_nonces),
            ("replay.max_nonces_per_user", self.replay.max_nonces_per_user),
            ("sanitize.filename_max_len", self.sanitize.filename_max_len),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.outbound_queue", l.outbound_queue),
            ("limits.read_buffer_bytes", l.read_buffer_bytes),
            ("limits.max_connections", l.max_connections),
            ("limits.max_pending_handshakes", l.max_pending_handshakes),
            ("limits.max_rooms_per_connection", l.max_rooms_per_connection),
            ("limits.max_history_bytes_per_room", l.max_history_bytes_per_room),
            ("limits.max_history_bytes", l.max_history_bytes),
            ("limits.max_owned_rooms_per_user", l.max_owned_rooms_per_user),
            ("limits.max_owned_rooms", l.max_owned_rooms),
            ("limits.max_client_ids_per_user", l.max_client_ids_per_user),
            ("limits.max_client_ids", l.max_client_ids),
            ("log.max_client_text", self.log.max_client_text),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        // Every frame the server sends must fit the write buffer, or a
        // recipient would be closed for the size of someone else's message.
        if l.max_write_buffer_bytes < l.max_message_bytes.saturating_add(ENVELOPE_HEADROOM) {
            return Err(ConfigError::invalid(
                "limits.max_write_buffer_bytes",
                format!("must be at least limits.max_message_bytes + {ENVELOPE_HEADROOM} (the largest event frame)"),
            ));
        }
        if self.store.backend == StoreBackend::Redis {
            let url = &self.store.redis_url;
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                // Never the value: it may hold a password.
                return Err(ConfigError::invalid(
                    "store.redis_url",
                    "must be a redis:// or rediss:// URL when store.backend is \"redis\"",
                ));
            }
            if !self.store.redis_ca_file.is_empty() && !url.starts_with("rediss://") {
                return Err(ConfigError::invalid("store.redis_ca_file", "needs a rediss:// store.redis_url"));
            }
            if self.store.prefix.is_empty() || self.store.prefix.contains(['{', '}']) {
                return Err(ConfigError::invalid("store.prefix", "must be non-empty, without { or }"));
            }
            if self.store.timeout.is_zero() {
                return Err(ConfigError::invalid("store.timeout", "must be greater than 0"));
            }
            if self.store.max_clock_skew.is_zero() {
                return Err(ConfigError::invalid("store.max_clock_skew", "must be greater than 0"));
            }
        }
        if l.heartbeat_interval.is_zero() {
            return Err(ConfigError::invalid("limits.heartbeat_interval", "must be greater than 0"));
        }
        if self.replay.max_nonces_per_user > self.replay.max_nonces {
            return Err(ConfigError::invalid("replay.max_nonces_per_user", "must not exceed replay.max_nonces"));
        }
        if self.auth.max_token_bytes < 64 {
            return Err(ConfigError::invalid("auth.max_token_bytes", "must be at least 64"));
        }
        for (key, d) in [("csrf.rotate_every", self.csrf.rotate_every), ("replay.window", self.replay.window)] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.auth.token_ttl.is_zero() {
            return Err(ConfigError::invalid("auth.token_ttl", "must be greater than 0"));
        }
        if self.server.handshake_timeout.is_zero() {
            return Err(ConfigError::invalid("server.handshake_timeout", "must be greater than 0"));
        }
        let first_byte = self.server.first_byte_timeout;
        if first_byte.is_zero() || first_byte > self.server.handshake_timeout {
            return Err(ConfigError::invalid(
                "server.first_byte_timeout",
                "must be greater than 0 and at most server.handshake_timeout",
            ));
        }
        palisade_core::addr::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| ConfigError::invalid("server.trusted_proxies", e.to_string()))?;
        self.abuse.settings()?;
        self.login.settings()?;
        self.audit.validate()?;
        self.admin.validate(self.server.listen)?;
        self.alerts.validate()?;
        self.siem.settings(&self.base_dir, &self.server.node_id, self.audit.enabled)?;
        self.gateway.settings(&self.base_dir, l)?;
        self.threat.settings(&self.base_dir)?;
        self.geo.settings(&self.base_dir)?;
        self.server.tls.validate()?;
        Ok(())
    }
}

/// The defaults, parsed from the template.
pub(crate) fn template_table() -> toml::Table {
    // The template is compiled in and covered by tests; it always parses.
    toml::from_str(TEMPLATE).unwrap_or_default()
}

fn merge(tree: &mut toml::Table, key: String, value: toml::Value) {
    match (tree.get_mut(&key), value) {
        (Some(toml::Value::Table(base)), toml::Value::Table(over)) => {
            for (k, v) in over {
                merge(base, k, v);
            }
        }
        (_, value) => {
            tree.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests;
