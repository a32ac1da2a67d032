//! `[admin]`: the admin listener and its credentials (docs/CONFIG.md,
//! "admin").

use std::net::SocketAddr;
use std::path::Path;

use palisade_core::admin::ApiKeys;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Shortest admin API key accepted: as long as the other secrets, so a key
/// cannot be guessed over the network however the rate limits are set.
pub const MIN_API_KEY_BYTES: usize = 32;

/// `[admin]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin listener.
    pub enabled: bool,
    /// Its address; never the public listener's.
    pub listen: SocketAddr,
    /// API keys, inline.
    pub api_keys: Vec<String>,
    /// A file of API keys, one per line; "" for none.
    pub api_keys_file: String,
    /// The token role that makes its holder an administrator.
    pub admin_role: String,
    /// Most items one page of an admin API list holds (`limit` is capped
    /// here; the default page is this size or 100, whichever is smaller).
    pub max_page_size: usize,
    /// Largest admin API request body, in bytes.
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for AdminConfig {
    // The keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("api_keys", &format_args!("{} inline", self.api_keys.len()))
            .field("api_keys_file", &self.api_keys_file)
            .field("admin_role", &self.admin_role)
            .field("max_page_size", &self.max_page_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl AdminConfig {
    /// Checks the values serde cannot, against the public listener's
    /// address `public` (checked again after `--listen` overrides it).
    pub(crate) fn validate(&self, public: SocketAddr) -> Result<(), ConfigError> {
        if self.enabled && clashes(self.listen, public) {
            return Err(ConfigError::invalid(
                "admin.listen",
                format!(
                    "{} is the public listener's address (server.listen = {public}); the admin listener must have \
                     its own, and should not be reachable from the internet (default 127.0.0.1:8081)",
                    self.listen
                ),
            ));
        }
        if self.admin_role.trim().is_empty() {
            return Err(ConfigError::invalid("admin.admin_role", "must not be empty"));
        }
        for (key, value) in [("admin.max_page_size", self.max_page_size), ("admin.max_body_bytes", self.max_body_bytes)]
        {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            check_key(key, &format!("admin.api_keys[{i}]"))?;
        }
        Ok(())
    }

    /// The API keys: the inline ones and those of `api_keys_file` (one per
    /// line; blank lines and `#` comments skipped), digested.
    pub fn keys(&self, base_dir: &Path) -> Result<ApiKeys, ConfigError> {
        let mut keys: Vec<&str> = self.api_keys.iter().map(String::as_str).collect();
        let text;
        if !self.api_keys_file.is_empty() {
            let path = base_dir.join(&self.api_keys_file);
            text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::invalid("admin.api_keys_file", format!("{}: {e}", path.display())))?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                check_key(line, "admin.api_keys_file")?;
                keys.push(line);
            }
        }
        Ok(ApiKeys::new(keys))
    }
}

/// Whether an admin listener on `admin` would take the public listener's
/// port: the same port on the same address, or on a wildcard address that
/// covers the other. Port 0 (any free port, as tests use) never clashes.
fn clashes(admin: SocketAddr, public: SocketAddr) -> bool {
    admin.port() != 0
        && admin.port() == public.port()
        && (admin.ip() == public.ip() || admin.ip().is_unspecified() || public.ip().is_unspecified())
}

fn check_key(key: &str, name: &str) -> Result<(), ConfigError> {
    // The message never quotes the key.
    if key.len() < MIN_API_KEY_BYTES {
        return Err(ConfigError::invalid(name, format!("an API key needs at least {MIN_API_KEY_BYTES} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(listen: &str) -> AdminConfig {
        AdminConfig {
            enabled: true,
            listen: listen.parse().unwrap(),
            api_keys: Vec::new(),
            api_keys_file: String::new(),
            admin_role: "admin".into(),
            max_page_size: 500,
            max_body_bytes: 262_144,
        }
    }

    #[test]
    fn the_public_address_is_refused_naming_the_key() {
        let public = "127.0.0.1:8080".parse().unwrap();
        for clash in ["127.0.0.1:8080", "0.0.0.0:8080", "[::]:8080"] {
            let err = admin(clash).validate(public).unwrap_err();
            assert!(err.to_string().contains("admin.listen"), "{clash}: {err}");
        }
        assert!(admin("127.0.0.1:8080").validate("0.0.0.0:8080".parse().unwrap()).is_err());
        for fine in ["127.0.0.1:8081", "127.0.0.2:8080", "127.0.0.1:0"] {
            assert!(admin(fine).validate(public).is_ok(), "{fine}");
        }
        assert!(admin("127.0.0.1:0").validate("127.0.0.1:0".parse().unwrap()).is_ok(), "tests use port 0 for both");
        let off = AdminConfig { enabled: false, ..admin("127.0.0.1:8080") };
        assert!(off.validate(public).is_ok(), "a listener that is off takes no port");
    }

    #[test]
    fn short_keys_are_refused_without_quoting_them() {
        let short = AdminConfig { api_keys: vec!["hunter2".into()], ..admin("127.0.0.1:8081") };
        let err = short.validate("127.0.0.1:8080".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("admin.api_keys[0]") && !err.contains("hunter2"), "{err}");
        let shown = format!("{short:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn keys_come_from_the_list_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let inline = "inline-admin-key-0123456789abcdef";
        let from_file = "file-admin-key-0123456789abcdef!";
        std::fs::write(dir.path().join("keys"), format!("# operators\n\n{from_file}\n")).unwrap();
        let config =
            AdminConfig { api_keys: vec![inline.into()], api_keys_file: "keys".into(), ..admin("127.0.0.1:8081") };
        let keys = config.keys(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.check(inline) && keys.check(from_file) && !keys.check("# operators"));
        std::fs::write(dir.path().join("keys"), "short\n").unwrap();
        let err = config.keys(dir.path()).unwrap_err().to_string();
        assert!(err.contains("admin.api_keys_file") && !err.contains("short\n"), "{err}");
    }
}
