//! The own issuer's shared state (docs/PROTOCOL.md §11): the signing key,
//! the login settings, the two login throttles (public and admin), the
//! decoy hash and the turns at password hashing. The `/auth/*` handlers
//! (`auth`) and the admin listener's login (`admin::browser`) use it; it
//! uses neither.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{KeyError, TokenRequest, TokenSigner, hash_password};
use palisade_core::login::throttle::ThrottleCounts;
use palisade_core::store::LoginSession;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, LoginSettings};
use crate::settings::{Profile, Settings, signer};

/// Everything the endpoints share.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) signer: TokenSigner,
    pub(crate) settings: LoginSettings,
    pub(crate) throttle: Arc<dyn ThrottleCounts>,
    /// The admin listener's `/api/login` counts: separate, so failures on
    /// one listener never hold up logins on the other.
    pub(crate) admin_throttle: Arc<dyn ThrottleCounts>,
    /// Verified against when the user does not exist, so an unknown name
    /// costs the same time as a wrong password.
    pub(crate) decoy_hash: String,
    /// Turns at argon2id, which takes 19 MiB and tens of milliseconds each.
    pub(crate) hashing: Arc<Semaphore>,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) reuse_grace: Duration,
    pub(crate) max_body: usize,
    /// `Secure` on cookies: everywhere but the dev profile, which serves
    /// plain http on localhost.
    secure_cookies: bool,
}

impl Login {
    /// The endpoints' state, or `None` (with the reason, for the start-up
    /// log) when they are off: `login.enabled = false`, or no key can sign.
    pub(crate) fn new(settings: &Settings) -> Result<Option<Self>, ConfigError> {
        let config = &settings.config;
        if !config.login.enabled {
            return Ok(None);
        }
        let signer = match signer(config, settings.profile) {
            Ok(signer) => signer,
            Err(e) => {
                tracing::warn!(error = %e, "login endpoints off: the own issuer needs a key that can sign");
                return Ok(None);
            }
        };
        let login = config.login.settings()?;
        let salt: [u8; 16] = rand::random();
        let decoy_hash = hash_password(&crate::config::fresh_secret(), salt)
            .map_err(|e| ConfigError::invalid("login", format!("cannot prepare password hashing: {e}")))?;
        Ok(Some(Self {
            signer,
            throttle: throttle(config, login.throttle, "login")?,
            admin_throttle: throttle(config, login.throttle, "admin-login")?,
            settings: login,
            decoy_hash,
            hashing: Arc::new(Semaphore::new(config.login.max_concurrent_hashes)),
            access_ttl: config.auth.token_ttl,
            refresh_ttl: config.login.refresh_ttl,
            reuse_grace: config.login.refresh_reuse_grace,
            max_body: config.login.max_body_bytes,
            secure_cookies: settings.profile != Profile::Dev,
        }))
    }

    /// Whether cookies are set `Secure` (all but the dev profile, which
    /// serves plain http).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// The failed-login counts of `/auth/login`, or with `admin` of the
    /// admin listener's `/api/login`.
    pub(crate) fn throttle(&self, admin: bool) -> &Arc<dyn ThrottleCounts> {
        if admin { &self.admin_throttle } else { &self.throttle }
    }

    /// Forgets idle failure counts.
    pub(crate) fn sweep(&self, now: Timestamp) {
        self.throttle.sweep(now);
        self.admin_throttle.sweep(now);
    }

    /// An access token for `session`'s user with `roles`, bound to the
    /// session's device when binding is on.
    pub(crate) fn mint(&self, session: &LoginSession, roles: Vec<String>, now: Timestamp) -> Result<String, KeyError> {
        let device = (self.settings.device_binding != palisade_core::login::device::DeviceBinding::Off)
            .then(|| session.device.clone());
        let request = TokenRequest {
            user_id: session.user_id.clone(),
            roles,
            ttl: self.access_ttl,
            session_id: Some(session.id.clone()),
            device,
            ..TokenRequest::default()
        };
        self.signer.mint(request, now, &mut rand::rng())
    }
}

/// A listener's failed-login counts, where `[store]` keeps them.
fn throttle(
    config: &crate::config::Config,
    settings: palisade_core::login::throttle::ThrottleSettings,
    listener: &'static str,
) -> Result<Arc<dyn ThrottleCounts>, ConfigError> {
    crate::store::login_throttle(config, settings, listener).map_err(|e| ConfigError::invalid("store.redis_url", e.0))
}
