//! What a loaded [`Config`] becomes at run time: the core's gate and
//! policy, the transport limits, and the signer for `palisade token`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use palisade_core::addr::TrustedProxies;
use palisade_core::admin::{AdminRoles, ApiKeys};
use palisade_core::auth::{Issuers, KeyMaterial, TokenSigner, TokenVerifier, VerifyOptions};
use palisade_core::csrf::CsrfSettings;
use palisade_core::guard::GuardSettings;
use palisade_core::handshake::Gate;
use palisade_core::login::device::DeviceBinding;
use palisade_core::node::NodeId;
use palisade_core::origin::OriginPolicy;
use palisade_core::policy::{Policy, PolicySpec, RoomSpec};
use palisade_core::sanitize::SanitizeSettings;
use palisade_core::session::SessionLimits;

use crate::config::{
    AlertSecret, AuditKey, Config, ConfigError, DEV_ORIGINS, Env, GatewaySettings, SiemSettings, Source, StoreBackend,
    ThreatSettings, dev_key, load_issuers,
};
use crate::tls::Tls;

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
    /// Message policy; replaced whole by a reload, read once per message.
    pub policy: ArcSwap<Policy>,
    /// Per-connection session limits.
    pub session: SessionLimits,
    /// The abuse guard's limits.
    pub guard: GuardSettings,
    /// Whose `X-Forwarded-For` to believe.
    pub trusted_proxies: TrustedProxies,
    /// This node (`server.node_id`).
    pub node: NodeId,
    /// What a token used from another device than its session's gets.
    pub device_binding: DeviceBinding,
    /// The config file, when there is one to reload the policy from.
    pub source: Option<PathBuf>,
    /// The audit log's checkpoint key, when the log is on.
    pub audit_key: Option<AuditKey>,
    /// The alert webhook's signing secret, when `alerts.url` is set.
    pub alert_secret: Option<AlertSecret>,
    /// The admin listener's operator API keys (`admin.api_keys`,
    /// `admin.api_keys_file`).
    pub admin_keys: ApiKeys,
    /// Its viewer API keys (`admin.viewer_api_keys`).
    pub viewer_keys: ApiKeys,
    /// The roles that make an admin (`admin.operator_role`, `viewer_role`).
    pub admin_roles: AdminRoles,
    /// The public listener's TLS, when `server.tls` is set.
    pub tls: Option<Arc<Tls>>,
    /// Gateway mode, when `gateway.upstream` is set.
    pub gateway: Option<GatewaySettings>,
    /// `[threat]` and `[geo]` (boxed: `Settings` moves through the
    /// start-up futures, which clippy's `large_futures` bounds).
    pub threat: Box<ThreatSettings>,
    /// The SIEM stream, when `siem.syslog` is set (boxed, as `threat` is).
    pub siem: Option<Box<SiemSettings>>,
}

/// The public listener's TLS from `server.tls`. Production without it
/// needs `server.allow_plaintext`: plain text is never served by accident.
fn load_tls(config: &Config, profile: Profile) -> Result<Option<Arc<Tls>>, ConfigError> {
    let tls = &config.server.tls;
    if !tls.enabled() {
        if profile == Profile::Production && !config.server.allow_plaintext {
            return Err(ConfigError::invalid(
                "server.tls.cert",
                "missing: production serves TLS (set server.tls.cert and server.tls.key; `palisade cert \
                 --self-signed` writes a pair for testing), or set server.allow_plaintext = true behind a proxy \
                 that terminates TLS, or run with --dev",
            ));
        }
        return Ok(None);
    }
    let (cert, key) = tls.paths(&config.base_dir);
    Tls::load(&cert, &key)
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| ConfigError::invalid("server.tls.cert", e.to_string()))
}

impl Settings {
    /// Compiles a config; errors name the key to fix.
    pub fn new(config: Config, profile: Profile) -> Result<Self, ConfigError> {
        if profile == Profile::Dev && config.store.backend == StoreBackend::Redis {
            // Each node would make its own dev key and accept only its own
            // tokens: a cluster needs the same configured keys on every node.
            return Err(ConfigError::invalid(
                "store.backend",
                "cluster mode (\"redis\") needs configured keys: run without --dev",
            ));
        }
        let keys = load_keys(&config, profile)?;
        let options = verify_options(&config);
        let issuers = Issuers::new(&load_issuers(&config.auth.issuers, &config.auth.issuer)?, &options)
            .map_err(|e| ConfigError::invalid("auth.issuers", e.to_string()))?;
        let verifier = TokenVerifier::new(&keys, options)
            .map_err(|e| ConfigError::invalid("auth.keys", e.to_string()))?
            .with_issuers(issuers);
        let mut origins = config.origins.allow.clone();
        if profile == Profile::Dev {
            origins.extend(DEV_ORIGINS.iter().map(|o| (*o).to_owned()));
        }
        let origins = OriginPolicy::new(&origins).map_err(|e| ConfigError::invalid("origins.allow", e.to_string()))?;
        let gate = Gate::new(origins, verifier, config.auth.allow_query_token);
        let policy = ArcSwap::from_pointee(compile_policy(&config)?);
        let session = SessionLimits {
            max_rooms: config.limits.max_rooms_per_connection,
            expiry_notice: config.auth.expiry_notice,
            expiry_grace: config.auth.leeway,
            csrf: CsrfSettings { rotate_every: config.csrf.rotate_every, grace: config.csrf.grace },
            heartbeat_interval: config.limits.heartbeat_interval,
            silence_limit: config.limits.heartbeat_interval.saturating_add(config.limits.heartbeat_timeout),
        };
        let guard = config.abuse.settings()?;
        let node = NodeId::parse(&config.server.node_id).map_err(|why| ConfigError::invalid("server.node_id", why))?;
        let trusted_proxies = TrustedProxies::parse(&config.server.trusted_proxies)
            .map_err(|e| ConfigError::invalid("server.trusted_proxies", e.to_string()))?;
        let device_binding = config.login.settings()?.device_binding;
        let dev_data_dir = (profile == Profile::Dev).then_some(config.server.data_dir.as_path());
        let audit_key = config.audit.required_key(&config.base_dir, dev_data_dir)?;
        let alert_secret = config.alerts.secret(&config.base_dir)?;
        let gateway = config.gateway.settings(&config.base_dir, &config.limits)?;
        let siem = config.siem.settings(&config.base_dir, &config.server.node_id, config.audit.enabled)?;
        if let Some(SiemSettings { ca_file: Some(ca_file), .. }) = &siem {
            // Read once here, so a bad file stops the start instead of
            // every connection attempt.
            crate::jwks::connector_with(Some(ca_file)).map_err(|why| ConfigError::invalid("siem.ca_file", why))?;
        }
        let threat = config.threat_settings()?;
        // Again here: `--listen` may have moved the public listener since
        // the file was checked.
        config.admin.validate(config.server.listen)?;
        let admin_keys = config.admin.keys(&config.base_dir)?;
        let viewer_keys = config.admin.viewer_keys();
        let tls = load_tls(&config, profile)?;
        let admin_roles = config.admin.roles();
        Ok(Self {
            config,
            profile,
            gate,
            policy,
            session,
            guard,
            trusted_proxies,
            node,
            device_binding,
            source: None,
            audit_key,
            alert_secret,
            admin_keys,
            viewer_keys,
            admin_roles,
            tls,
            gateway,
            threat: Box::new(threat),
            siem: siem.map(Box::new),
        })
    }

    /// Re-reads the config file, swaps in its policy (everything
    /// [`compile_policy`] reads: roles, rooms, events, `[sanitize]`,
    /// `auth.default_roles`, `limits.max_json_depth`,
    /// `limits.max_message_bytes`, `replay.window`, `geo.unknown`) and
    /// returns its `[threat]` and `[geo]` for the threat service to swap
    /// in. Both are checked before either is swapped: on error the policy
    /// in force stays, and the caller swaps nothing. Other settings need a
    /// restart.
    pub fn reload(&self, env: &dyn Env) -> Result<Box<ThreatSettings>, ConfigError> {
        let path = self.source.as_deref().ok_or_else(|| {
            ConfigError::invalid("", "the server was started without a config file, so there is nothing to reload")
        })?;
        let config = Config::load(Source::File(path), env)?;
        let policy = compile_policy(&config)?;
        let threat = config.threat_settings()?;
        self.policy.store(Arc::new(policy));
        Ok(Box::new(threat))
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

/// Compiles the policy sections of `config`, reading the files they name
/// (schema files, the profanity word file) relative to the config file.
pub fn compile_policy(config: &Config) -> Result<Policy, ConfigError> {
    let mut events = config.events.clone();
    for (name, event) in &mut events {
        if let Some(file) = event.schema_file.take() {
            let key = format!("events.\"{name}\".schema_file");
            if event.schema.is_some() {
                return Err(ConfigError::invalid(key, "give schema or schema_file, not both"));
            }
            let text = read(&config.base_dir, &file, &key)?;
            let schema = serde_json::from_str(&text)
                .map_err(|e| ConfigError::invalid(key, format!("{file} is not valid JSON: {e}")))?;
            event.schema = Some(schema);
        }
    }
    let s = &config.sanitize;
    let mut profanity_words = s.profanity_words.clone();
    if !s.profanity_file.is_empty() {
        let text = read(&config.base_dir, &s.profanity_file, "sanitize.profanity_file")?;
        profanity_words
            .extend(text.lines().map(str::trim).filter(|w| !w.is_empty() && !w.starts_with('#')).map(String::from));
    }
    let spec = PolicySpec {
        roles: config.roles.clone(),
        rooms: config.rooms.clone(),
        events,
        default_roles: config.auth.default_roles.clone(),
        sanitize: SanitizeSettings {
            url_blocked_hosts: s.url_blocked_hosts.clone(),
            url_invalid: s.url_invalid,
            profanity_words,
            filename_max_len: s.filename_max_len,
        },
        max_json_depth: config.limits.max_json_depth,
        max_message_bytes: config.limits.max_message_bytes,
        replay_window: config.replay.window,
        geo_unknown: config.geo.unknown()?,
    };
    if config.geo.database.is_empty() {
        // Without a database every connection is exempt: the rule would
        // silently let every country in.
        let countries = |r: &RoomSpec| !r.allow_countries.is_empty() || !r.deny_countries.is_empty();
        if let Some((room, rule)) = config.rooms.iter().find(|(_, r)| countries(r)) {
            let field = if rule.allow_countries.is_empty() { "deny_countries" } else { "allow_countries" };
            return Err(ConfigError::invalid(
                format!("rooms.\"{room}\".{field}"),
                "room countries need geo.database (the country database addresses are looked up in)",
            ));
        }
    }
    Policy::compile(&spec).map_err(|e| ConfigError::Invalid { key: e.key, why: e.why })
}

fn read(base: &Path, file: &str, key: &str) -> Result<String, ConfigError> {
    let path = base.join(file);
    std::fs::read_to_string(&path).map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))
}

/// The limits a connection task needs, taken from the config once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Events queued for the connection before it is a slow consumer.
    pub(crate) outbound_queue: usize,
    /// Longest one write may wait for the peer to drain its socket before
    /// the peer is a slow consumer: the heartbeat's silence limit.
    pub(crate) write_timeout: Duration,
    /// How long closing waits for the peer.
    pub(crate) close_timeout: Duration,
    /// Told to the client in `welcome`.
    pub(crate) heartbeat_interval: Duration,
    /// Told to the client in `welcome`.
    pub(crate) max_message_bytes: usize,
    /// Longest client text written into one log field.
    pub(crate) max_logged_text: usize,
}

impl ConnLimits {
    /// What a connection needs of `settings`.
    pub(crate) fn new(settings: &Settings) -> Self {
        let limits = &settings.config.limits;
        Self {
            outbound_queue: limits.outbound_queue,
            write_timeout: settings.session.silence_limit,
            close_timeout: limits.close_timeout,
            heartbeat_interval: limits.heartbeat_interval,
            max_message_bytes: limits.max_message_bytes,
            max_logged_text: settings.config.log.max_client_text,
        }
    }
}
