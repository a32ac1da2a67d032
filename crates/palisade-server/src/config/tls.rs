//! `[server.tls]`: the certificate and key the public listener terminates
//! TLS with (docs/CONFIG.md, "server.tls"; docs/OPERATIONS.md, "TLS").

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, duration};

/// `[server.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; "" for no TLS.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); "" for no TLS.
    pub key: String,
    /// How often the two files are checked for a change; 0 checks only on
    /// SIGHUP.
    #[serde(with = "duration")]
    pub watch_interval: Duration,
}

impl TlsConfig {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty()
    }

    /// Both files or neither.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match (self.cert.is_empty(), self.key.is_empty()) {
            (false, true) => Err(ConfigError::invalid("server.tls.key", "server.tls.cert is set: set the key too")),
            (true, false) => {
                Err(ConfigError::invalid("server.tls.cert", "server.tls.key is set: set the certificate too"))
            }
            _ => Ok(()),
        }
    }

    /// The two paths, relative ones against `base_dir` (the config file's).
    pub fn paths(&self, base_dir: &Path) -> (PathBuf, PathBuf) {
        (base_dir.join(&self.cert), base_dir.join(&self.key))
    }
}
