//! `[login]`: the own issuer's login endpoints, sessions and failed-login
//! throttle, and what they become in core (docs/CONFIG.md, "login").

use std::time::Duration;

use palisade_core::login::device::DeviceBinding;
use palisade_core::login::throttle::{Steps, ThrottleSettings};
use palisade_core::login::{CapPolicy, SessionCap};
use serde::{Deserialize, Serialize};

use super::{ConfigError, duration};

/// `[login]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Serve `/auth/*`.
    pub enabled: bool,
    /// Lifetime of each refresh token; a session lives as long as its
    /// newest one.
    #[serde(with = "duration")]
    pub refresh_ttl: Duration,
    /// A used refresh token presented again within this is refused without
    /// ending the session.
    #[serde(with = "duration")]
    pub refresh_reuse_grace: Duration,
    /// Live sessions per user.
    pub max_sessions_per_user: usize,
    /// `evict` or `refuse` at the cap.
    pub session_cap: String,
    /// `off`, `log` or `enforce`.
    pub device_binding: String,
    /// Failed logins per user name from one address before they cost a
    /// wait.
    pub free_failures_per_user: u32,
    /// Failed logins per user name from one address that lock the name
    /// for that address.
    pub lock_after_per_user: u32,
    /// Distinct addresses failing on one name before every attempt at it
    /// waits (never a lock).
    pub free_addresses_per_user: u32,
    /// Failed logins per address before they cost a wait.
    pub free_failures_per_ip: u32,
    /// Failed logins per address that lock it.
    pub lock_after_per_ip: u32,
    /// The first wait; doubled per further failure.
    #[serde(with = "duration")]
    pub backoff_base: Duration,
    /// The longest wait short of a lock.
    #[serde(with = "duration")]
    pub backoff_max: Duration,
    /// How long a lock lasts.
    #[serde(with = "duration")]
    pub lock_for: Duration,
    /// Failures are forgotten this long after the last one.
    #[serde(with = "duration")]
    pub forget_after: Duration,
    /// Addresses and names tracked at most.
    pub max_tracked: usize,
    /// Password hashes computed at once (each takes 19 MiB).
    pub max_concurrent_hashes: usize,
    /// Longest body of an `/auth/*` request.
    pub max_body_bytes: usize,
}

/// What `[login]` becomes.
#[derive(Debug, Clone, Copy)]
pub struct LoginSettings {
    /// The session cap.
    pub cap: SessionCap,
    /// The device binding.
    pub device_binding: DeviceBinding,
    /// The throttle.
    pub throttle: ThrottleSettings,
}

impl LoginConfig {
    /// The core's settings; errors name the key.
    pub fn settings(&self) -> Result<LoginSettings, ConfigError> {
        let positive = [
            ("login.max_sessions_per_user", self.max_sessions_per_user),
            ("login.max_tracked", self.max_tracked),
            ("login.max_concurrent_hashes", self.max_concurrent_hashes),
            ("login.max_body_bytes", self.max_body_bytes),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.refresh_ttl.is_zero() {
            return Err(ConfigError::invalid("login.refresh_ttl", "must be greater than 0"));
        }
        for (key, free, lock) in [
            ("login.lock_after_per_user", self.free_failures_per_user, self.lock_after_per_user),
            ("login.lock_after_per_ip", self.free_failures_per_ip, self.lock_after_per_ip),
        ] {
            if lock <= free {
                return Err(ConfigError::invalid(key, "must be greater than the matching free_failures_*"));
            }
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return Err(ConfigError::invalid(
                "login.backoff_max",
                "must be at least login.backoff_base, which must be > 0",
            ));
        }
        let policy = match self.session_cap.as_str() {
            "evict" => CapPolicy::Evict,
            "refuse" => CapPolicy::Refuse,
            other => {
                return Err(ConfigError::invalid("login.session_cap", format!("`{other}`: expected evict or refuse")));
            }
        };
        let device_binding =
            self.device_binding.parse().map_err(|why| ConfigError::invalid("login.device_binding", why))?;
        Ok(LoginSettings {
            cap: SessionCap { max: self.max_sessions_per_user, policy },
            device_binding,
            throttle: ThrottleSettings {
                per_ip: Steps { free: self.free_failures_per_ip, lock_after: self.lock_after_per_ip },
                per_user: Steps { free: self.free_failures_per_user, lock_after: self.lock_after_per_user },
                free_addresses_per_user: self.free_addresses_per_user,
                base_delay: self.backoff_base,
                max_delay: self.backoff_max,
                lock_for: self.lock_for,
                forget_after: self.forget_after,
                max_tracked: self.max_tracked,
            },
        })
    }
}
