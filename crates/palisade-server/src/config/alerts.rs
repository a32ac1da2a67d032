//! `[alerts]`: the operator webhook (docs/CONFIG.md, "alerts";
//! docs/OPERATIONS.md, "Alerts").

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::SecretKeys;
use super::{ConfigError, duration};

/// Shortest webhook secret accepted, in bytes.
pub const MIN_ALERT_SECRET_BYTES: usize = 32;

/// `[alerts]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where alerts are POSTed; "" sends none (they are still listed).
    pub url: String,
    /// HMAC-SHA256 key of the signature header, inline.
    pub secret: String,
    /// The same, from a file.
    pub secret_file: String,
    /// The longest one delivery attempt may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Alerts waiting to be sent; past it the oldest is dropped and counted.
    pub max_queue: usize,
    /// Delivery attempts per alert.
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each next one.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Alerts kept in memory for `GET /api/alerts`.
    pub keep: usize,
    /// The window rates are measured over.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Refusals per second that raise an alert; 0 for none.
    pub refusals_per_second: u32,
    /// Authentication failures per second that raise an alert; 0 for none.
    pub auth_failures_per_second: u32,
}

impl std::fmt::Debug for AlertsConfig {
    // Neither the secret nor the URL (it may carry a token) reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("url_set", &!self.url.is_empty())
            .field("secret_file", &self.secret_file)
            .field("timeout", &self.timeout)
            .field("max_queue", &self.max_queue)
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .field("keep", &self.keep)
            .field("window", &self.window)
            .field("refusals_per_second", &self.refusals_per_second)
            .field("auth_failures_per_second", &self.auth_failures_per_second)
            .finish_non_exhaustive()
    }
}

/// The webhook secret's bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertSecret(pub(crate) Vec<u8>);

impl AlertSecret {
    /// The key's bytes, to sign a delivery.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AlertSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertSecret(..)")
    }
}

impl AlertsConfig {
    /// Checks the values serde cannot; never quotes the URL or the secret.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [("alerts.max_queue", self.max_queue), ("alerts.keep", self.keep)] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.attempts == 0 {
            return Err(ConfigError::invalid("alerts.attempts", "must be greater than 0"));
        }
        for (key, d) in [("alerts.timeout", self.timeout), ("alerts.window", self.window)] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        let http = ["https://", "http://"].iter().any(|scheme| self.url.starts_with(scheme));
        if !self.url.is_empty() && !http {
            return Err(ConfigError::invalid("alerts.url", "must be an http:// or https:// URL, or \"\""));
        }
        Ok(())
    }

    /// The webhook's secret when `url` is set: required then, at least
    /// [`MIN_ALERT_SECRET_BYTES`], inline or from a file (trailing newline
    /// ignored, relative to `base_dir`).
    pub fn secret(&self, base_dir: &Path) -> Result<Option<AlertSecret>, ConfigError> {
        if self.url.is_empty() {
            return Ok(None);
        }
        let keys =
            SecretKeys { inline: ("alerts.secret", &self.secret), file: ("alerts.secret_file", &self.secret_file) };
        match keys.read(base_dir, MIN_ALERT_SECRET_BYTES, "secret")? {
            Some(secret) => Ok(Some(AlertSecret(secret))),
            None => Err(ConfigError::invalid(
                "alerts.secret",
                "missing: alerts.url needs a secret to sign with (alerts.secret or alerts.secret_file)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, secret: &str) -> AlertsConfig {
        let mut tree = super::super::template_table();
        let alerts = tree.get_mut("alerts").and_then(toml::Value::as_table_mut).unwrap();
        alerts.insert("url".into(), url.into());
        alerts.insert("secret".into(), secret.into());
        tree.remove("alerts").unwrap().try_into().unwrap()
    }

    #[test]
    fn a_url_needs_a_long_secret_and_neither_is_ever_quoted() {
        let here = Path::new(".");
        let url = "https://hooks.example/T0KEN-in-the-path";
        assert_eq!(config("", "").secret(here).unwrap(), None, "no URL: nothing to sign");
        let missing = config(url, "").secret(here).unwrap_err().to_string();
        assert!(missing.contains("alerts.secret") && !missing.contains("T0KEN"), "{missing}");
        let short = config(url, "short-secret-value").secret(here).unwrap_err().to_string();
        assert!(short.contains("32") && !short.contains("short-secret-value"), "{short}");
        let secret = "s".repeat(32);
        let ok = config(url, &secret);
        assert_eq!(ok.secret(here).unwrap().unwrap().bytes(), secret.as_bytes());
        let shown = format!("{ok:?} {:?}", ok.secret(here).unwrap());
        assert!(!shown.contains(&secret) && !shown.contains("T0KEN"), "{shown}");
        let bad = AlertsConfig { url: "ftp://T0KEN@x".into(), ..ok };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("alerts.url") && !err.contains("T0KEN"), "{err}");
    }
}
