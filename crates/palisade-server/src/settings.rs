//! What a loaded [`Config`] becomes at run time: the core's gate and
//! policy, the transport limits, and the signer for `palisade token`.

use std::time::Duration;

use palisade_core::auth::{KeyMaterial, TokenSigner, TokenVerifier, VerifyOptions};
use palisade_core::handshake::Gate;
use palisade_core::origin::OriginPolicy;
use palisade_core::policy::{Policy, PolicySpec};
use palisade_core::session::SessionLimits;

use crate::config::{Config, ConfigError, DEV_ORIGINS, dev_key};

/// Which defaults apply on top of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Production: keys and origins must be configured.
    Production,
    /// Development: localhost origins, and a generated key when none is set.
    Dev,
}

/// Everything a running server needs, validated.
#[derive(Debug)]
pub struct Settings {
    /// The config it came from.
    pub config: Config,
    /// Profile in force.
    pub profile: Profile,
    /// Handshake checks.
    pub gate: Gate,
    /// Message policy.
    pub policy: Policy,
    /// Per-connection session limits.
    pub session: SessionLimits,
}

impl Settings {
    /// Compiles a config; errors name the key to fix.
    pub fn new(config: Config, profile: Profile) -> Result<Self, ConfigError> {
        let keys = load_keys(&config, profile)?;
        let options = verify_options(&config);
        let verifier =
            TokenVerifier::new(&keys, options).map_err(|e| ConfigError::invalid("auth.keys", e.to_string()))?;
        let mut origins = config.origins.allow.clone();
        if profile == Profile::Dev {
            origins.extend(DEV_ORIGINS.iter().map(|o| (*o).to_owned()));
        }
        let origins = OriginPolicy::new(&origins).map_err(|e| ConfigError::invalid("origins.allow", e.to_string()))?;
        let gate = Gate::new(origins, verifier, config.auth.allow_query_token);
        let policy =
            Policy::compile(&policy_spec(&config)).map_err(|e| ConfigError::Invalid { key: e.key, why: e.why })?;
        let session = SessionLimits {
            max_rooms: config.limits.max_rooms_per_connection,
            expiry_notice: config.auth.expiry_notice,
            expiry_grace: config.auth.leeway,
        };
        Ok(Self { config, profile, gate, policy, session })
    }

    /// The heartbeat deadline: a connection silent this long is dead.
    pub fn silence_limit(&self) -> Duration {
        self.config.limits.heartbeat_interval + self.config.limits.heartbeat_timeout
    }
}

/// The signer `palisade token` uses: the first configured key that can
/// sign, or the dev key.
pub fn signer(config: &Config, profile: Profile) -> Result<TokenSigner, ConfigError> {
    let keys = load_keys(config, profile)?;
    let key = keys.iter().find(|k| k.can_sign()).ok_or_else(|| {
        ConfigError::invalid("auth.keys", "no key can sign: give an HMAC secret or a private_key_file")
    })?;
    TokenSigner::new(key, &verify_options(config)).map_err(|e| ConfigError::invalid("auth.keys", e.to_string()))
}

fn load_keys(config: &Config, profile: Profile) -> Result<Vec<KeyMaterial>, ConfigError> {
    let keys = config.auth.keys.iter().enumerate().map(|(i, k)| k.load(i)).collect::<Result<Vec<_>, _>>()?;
    if let Some(i) = (0..keys.len()).find(|&i| keys[..i].iter().any(|k| k.id == keys[i].id)) {
        return Err(ConfigError::invalid(format!("auth.keys[{i}].id"), "duplicate key id"));
    }
    match (keys.is_empty(), profile) {
        (false, _) => Ok(keys),
        (true, Profile::Dev) => Ok(vec![dev_key(&config.server.data_dir)?]),
        (true, Profile::Production) => Err(ConfigError::invalid(
            "auth.keys",
            "missing: configure at least one key (`palisade init` writes a config with a fresh secret), or run with --dev",
        )),
    }
}

fn verify_options(config: &Config) -> VerifyOptions {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    VerifyOptions {
        leeway: config.auth.leeway,
        issuer: non_empty(&config.auth.issuer),
        audience: non_empty(&config.auth.audience),
        max_token_bytes: config.auth.max_token_bytes,
    }
}

fn policy_spec(config: &Config) -> PolicySpec {
    PolicySpec {
        roles: config.roles.clone(),
        rooms: config.rooms.clone(),
        events: config.events.clone(),
        default_roles: config.auth.default_roles.clone(),
    }
}
