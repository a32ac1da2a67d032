//! `[audit]`: the audit log's writer and its checkpoint key
//! (docs/CONFIG.md, "audit").

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_core::audit::MIN_KEY_BYTES;
use serde::{Deserialize, Serialize};

use super::keys::{create_private, create_private_dir, fresh_secret};
use super::secret::SecretKeys;
use super::{ConfigError, duration};

/// File under the data directory holding the dev profile's checkpoint key.
pub(crate) const DEV_AUDIT_KEY_FILE: &str = "audit-key";

/// `[audit]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record security decisions.
    pub enabled: bool,
    /// Records waiting for the writer; more are dropped and counted.
    pub queue: usize,
    /// A checkpoint after this many records.
    pub checkpoint_every: u64,
    /// A checkpoint this long after records were written.
    #[serde(with = "duration")]
    pub checkpoint_interval: Duration,
    /// HMAC key for checkpoints, inline; "" for none.
    pub checkpoint_key: String,
    /// HMAC key for checkpoints, from a file; "" for none.
    pub checkpoint_key_file: String,
    /// File each checkpoint line is appended to; "" for none.
    pub checkpoint_file: String,
    /// Repeats of one refusal kind from one subject within this interval
    /// are one record and one count; 0 for a record each.
    #[serde(with = "duration")]
    pub aggregate_interval: Duration,
    /// `[audit.retention]`
    pub retention: RetentionConfig,
}

/// `[audit.retention]`: how much of the log is kept. The oldest records go
/// first; a signed checkpoint anchors what is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Records older than this are removed; 0 keeps them whatever their age.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// At most this many records are kept; 0 for no bound.
    pub max_records: u64,
}

impl RetentionConfig {
    /// Whether anything is ever removed.
    pub fn prunes(&self) -> bool {
        !self.max_age.is_zero() || self.max_records > 0
    }
}

impl std::fmt::Debug for AuditConfig {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConfig")
            .field("enabled", &self.enabled)
            .field("queue", &self.queue)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("checkpoint_key_file", &self.checkpoint_key_file)
            .field("checkpoint_file", &self.checkpoint_file)
            .field("aggregate_interval", &self.aggregate_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The checkpoint key's bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey(pub(crate) Vec<u8>);

impl AuditKey {
    /// The key's bytes, to sign or check a checkpoint.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditConfig {
    /// Checks the values serde cannot.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.queue == 0 {
            return Err(ConfigError::invalid("audit.queue", "must be greater than 0"));
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::invalid("audit.checkpoint_every", "must be greater than 0"));
        }
        if self.checkpoint_interval.is_zero() {
            return Err(ConfigError::invalid("audit.checkpoint_interval", "must be greater than 0"));
        }
        Ok(())
    }

    /// The file checkpoints are appended to, resolved against `base_dir`.
    pub fn checkpoint_path(&self, base_dir: &Path) -> Option<PathBuf> {
        (!self.checkpoint_file.is_empty()).then(|| base_dir.join(&self.checkpoint_file))
    }

    /// The checkpoint key: the configured one, or with `dev_data_dir` (the
    /// dev profile) one generated on first use into
    /// `<data_dir>/audit-key` (mode 0600) and read back after. `None` when
    /// none is configured and not in the dev profile.
    pub fn key(&self, base_dir: &Path, dev_data_dir: Option<&Path>) -> Result<Option<AuditKey>, ConfigError> {
        let keys = SecretKeys {
            inline: ("audit.checkpoint_key", &self.checkpoint_key),
            file: ("audit.checkpoint_key_file", &self.checkpoint_key_file),
        };
        let key = match keys.read(base_dir, MIN_KEY_BYTES, "key")? {
            Some(key) => key,
            None => match dev_data_dir {
                Some(data_dir) => dev_audit_key(data_dir)?,
                None => return Ok(None),
            },
        };
        Ok(Some(AuditKey(key)))
    }

    /// [`AuditConfig::key`] for a server: required when the log is on and
    /// not in the dev profile.
    pub fn required_key(&self, base_dir: &Path, dev_data_dir: Option<&Path>) -> Result<Option<AuditKey>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        self.key(base_dir, dev_data_dir)?.map(Some).ok_or_else(|| {
            ConfigError::invalid(
                "audit.checkpoint_key",
                "missing: the audit log's checkpoints need an HMAC key of at least 32 bytes \
                 (set audit.checkpoint_key or audit.checkpoint_key_file; `palisade init` writes one), \
                 or set audit.enabled = false, or run with --dev",
            )
        })
    }
}

/// The dev profile's checkpoint key, generated into `<data_dir>/audit-key`
/// (0600) on first use, as the dev signing secret is.
fn dev_audit_key(data_dir: &Path) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join(DEV_AUDIT_KEY_FILE);
    let err = |e: std::io::Error| ConfigError::invalid("server.data_dir", format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim_end().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(data_dir).map_err(err)?;
            let secret = fresh_secret();
            let mut file = create_private(&path).map_err(err)?;
            writeln!(file, "{secret}").map_err(err)?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(err(e)),
    }
}
