//! `[[auth.keys]]` entries, and the dev profile's generated secret.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use palisade_core::auth::{Algorithm, KeyMaterial};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// File under the data directory holding the dev profile's HMAC secret.
pub(crate) const DEV_SECRET_FILE: &str = "dev-secret";
/// Key id of the dev profile's generated key.
pub(crate) const DEV_KEY_ID: &str = "dev";

/// One `[[auth.keys]]` entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, matched against the token's `kid`.
    pub id: String,
    /// The one algorithm the key accepts.
    pub algorithm: Algorithm,
    /// HMAC secret, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// HMAC secret, from a file (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// PEM public key file, to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// PEM private key file, to sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeyConfig {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig").field("id", &self.id).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// Reads the key's files and returns its material. `index` is the
    /// position in `auth.keys`, for error messages.
    pub fn load(&self, index: usize) -> Result<KeyMaterial, ConfigError> {
        self.load_as(&format!("auth.keys[{index}]"))
    }

    /// [`KeyConfig::load`] for an entry at `prefix` (`auth.issuers[0].keys[1]`).
    pub fn load_as(&self, prefix: &str) -> Result<KeyMaterial, ConfigError> {
        let key = |field: &str| format!("{prefix}.{field}");
        let read = |field: &str, path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid(key(field), format!("{}: {e}", path.display())))
        };
        if self.id.is_empty() {
            return Err(ConfigError::invalid(key("id"), "must not be empty"));
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(key("secret"), "give secret or secret_file, not both"));
            }
            (Some(s), None) => Some(s.clone().into_bytes()),
            (None, Some(path)) => Some(read("secret_file", path)?.trim_end_matches(['\r', '\n']).as_bytes().to_vec()),
            (None, None) => None,
        };
        if self.algorithm.is_hmac() {
            if secret.is_none() {
                return Err(ConfigError::invalid(key("secret"), "missing: an HMAC key needs a secret or secret_file"));
            }
            if self.public_key_file.is_some() || self.private_key_file.is_some() {
                return Err(ConfigError::invalid(key("algorithm"), "HMAC keys take a secret, not PEM files"));
            }
        } else if secret.is_some() {
            return Err(ConfigError::invalid(key("secret"), "asymmetric keys take PEM files, not a secret"));
        }
        let public_pem = self.public_key_file.as_deref().map(|p| read("public_key_file", p)).transpose()?;
        let private_pem = self.private_key_file.as_deref().map(|p| read("private_key_file", p)).transpose()?;
        Ok(KeyMaterial { id: self.id.clone(), algorithm: self.algorithm, secret, public_pem, private_pem })
    }
}

/// The dev profile's key: an HMAC secret generated on first use and kept in
/// `<data_dir>/dev-secret` (mode 0600), so tokens minted by `palisade token`
/// keep working across restarts.
pub fn dev_key(data_dir: &Path) -> Result<KeyMaterial, ConfigError> {
    let path = data_dir.join(DEV_SECRET_FILE);
    let err = |e: std::io::Error| ConfigError::invalid("server.data_dir", format!("{}: {e}", path.display()));
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim_end().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(data_dir).map_err(err)?;
            let secret = fresh_secret();
            let mut file = create_private(&path).map_err(err)?;
            writeln!(file, "{secret}").map_err(err)?;
            secret
        }
        Err(e) => return Err(err(e)),
    };
    Ok(KeyMaterial {
        id: DEV_KEY_ID.to_owned(),
        algorithm: Algorithm::HS256,
        secret: Some(secret.into_bytes()),
        public_pem: None,
        private_pem: None,
    })
}

/// 32 random bytes, URL-safe base64 (43 characters).
pub(crate) fn fresh_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates `dir` and its missing parents with mode 0700, as the store does:
/// the data directory holds secrets and the database.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}
