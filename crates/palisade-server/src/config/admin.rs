//! `[admin]`: the admin listener and its credentials (docs/CONFIG.md,
//! "admin").

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use palisade_core::admin::{AdminRoles, ApiKeys};
use serde::{Deserialize, Serialize};

use super::{ConfigError, duration};

/// Longest `admin.session_lifetime`: an admin session is a short-lived
/// credential, at most a working day.
const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Deadline for an admin request head, and for a whole admin connection.
pub(crate) const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Operator API keys, inline.
    pub api_keys: Vec<String>,
    /// A file of operator API keys, one per line; "" for none.
    pub api_keys_file: String,
    /// Viewer (read-only) API keys, inline.
    pub viewer_api_keys: Vec<String>,
    /// The token or user role that makes its holder an operator.
    pub operator_role: String,
    /// The token or user role that makes its holder a viewer.
    pub viewer_role: String,
    /// How long a browser's admin session lives from its login.
    #[serde(with = "duration")]
    pub session_lifetime: Duration,
    /// Admin browser sessions held at once.
    pub max_sessions: usize,
    /// Admin browser sessions one user holds at once; their next login
    /// ends their own least recently used one.
    pub max_sessions_per_user: usize,
    /// Most items one page of an admin API list holds (`limit` is capped
    /// here; the default page is this size or 100, whichever is smaller).
    pub max_page_size: usize,
    /// Largest admin API request body, in bytes.
    pub max_body_bytes: usize,
    /// Sockets the listener holds at once.
    pub max_connections: usize,
    /// Sockets one address holds at once.
    pub max_connections_per_peer: usize,
    /// Places kept for health and readiness probes.
    pub probe_places: usize,
    /// Deadline for a socket's first byte.
    #[serde(with = "duration")]
    pub first_byte_timeout: Duration,
}

impl std::fmt::Debug for AdminConfig {
    // The keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("api_keys", &format_args!("{} inline", self.api_keys.len()))
            .field("api_keys_file", &self.api_keys_file)
            .field("viewer_api_keys", &format_args!("{} inline", self.viewer_api_keys.len()))
            .field("operator_role", &self.operator_role)
            .field("viewer_role", &self.viewer_role)
            .field("session_lifetime", &self.session_lifetime)
            .field("max_sessions", &self.max_sessions)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("max_page_size", &self.max_page_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_peer", &self.max_connections_per_peer)
            .field("probe_places", &self.probe_places)
            .field("first_byte_timeout", &self.first_byte_timeout)
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
        for (key, role) in [("admin.operator_role", &self.operator_role), ("admin.viewer_role", &self.viewer_role)] {
            if role.trim().is_empty() {
                return Err(ConfigError::invalid(key, "must not be empty"));
            }
        }
        if self.operator_role == self.viewer_role {
            return Err(ConfigError::invalid("admin.viewer_role", "must differ from admin.operator_role"));
        }
        for (key, value) in [
            ("admin.max_page_size", self.max_page_size),
            ("admin.max_body_bytes", self.max_body_bytes),
            ("admin.max_sessions", self.max_sessions),
            ("admin.max_connections", self.max_connections),
            ("admin.max_connections_per_peer", self.max_connections_per_peer),
            ("admin.max_sessions_per_user", self.max_sessions_per_user),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.probe_places >= self.max_connections {
            return Err(ConfigError::invalid("admin.probe_places", "must be less than admin.max_connections"));
        }
        if self.first_byte_timeout.is_zero() || self.first_byte_timeout > ADMIN_REQUEST_TIMEOUT {
            return Err(ConfigError::invalid("admin.first_byte_timeout", "must be greater than 0 and at most 10s"));
        }
        if self.session_lifetime < Duration::from_secs(60) || self.session_lifetime > MAX_SESSION_LIFETIME {
            return Err(ConfigError::invalid("admin.session_lifetime", "must be between 1m and 12h"));
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            check_key(key, &format!("admin.api_keys[{i}]"))?;
        }
        for (i, key) in self.viewer_api_keys.iter().enumerate() {
            check_key(key, &format!("admin.viewer_api_keys[{i}]"))?;
        }
        Ok(())
    }

    /// The roles that make an admin.
    pub fn roles(&self) -> AdminRoles {
        AdminRoles { operator: self.operator_role.clone(), viewer: self.viewer_role.clone() }
    }

    /// The viewer API keys, digested.
    pub fn viewer_keys(&self) -> ApiKeys {
        ApiKeys::new(&self.viewer_api_keys)
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
            viewer_api_keys: Vec::new(),
            operator_role: "admin".into(),
            viewer_role: "viewer".into(),
            session_lifetime: Duration::from_secs(1800),
            max_sessions: 64,
            max_sessions_per_user: 4,
            max_page_size: 500,
            max_body_bytes: 262_144,
            max_connections: 64,
            max_connections_per_peer: 8,
            probe_places: 4,
            first_byte_timeout: Duration::from_secs(2),
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
        let short_viewer = AdminConfig { viewer_api_keys: vec!["hunter2".into()], ..admin("127.0.0.1:8081") };
        let err = short_viewer.validate("127.0.0.1:8080".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("admin.viewer_api_keys[0]") && !err.contains("hunter2"), "{err}");
        assert!(!format!("{short_viewer:?}").contains("hunter2"));
    }

    #[test]
    fn roles_and_sessions_are_checked_naming_the_key() {
        let public = "127.0.0.1:8080".parse().unwrap();
        let cases = [
            (AdminConfig { viewer_role: "admin".into(), ..admin("127.0.0.1:8081") }, "admin.viewer_role"),
            (AdminConfig { operator_role: " ".into(), ..admin("127.0.0.1:8081") }, "admin.operator_role"),
            (AdminConfig { max_sessions: 0, ..admin("127.0.0.1:8081") }, "admin.max_sessions"),
            (
                AdminConfig { session_lifetime: Duration::from_secs(30), ..admin("127.0.0.1:8081") },
                "admin.session_lifetime",
            ),
            (
                AdminConfig { session_lifetime: Duration::from_secs(13 * 3600), ..admin("127.0.0.1:8081") },
                "admin.session_lifetime",
            ),
            (AdminConfig { max_connections_per_peer: 0, ..admin("127.0.0.1:8081") }, "admin.max_connections_per_peer"),
            (AdminConfig { probe_places: 64, ..admin("127.0.0.1:8081") }, "admin.probe_places"),
            (
                AdminConfig { first_byte_timeout: Duration::from_secs(11), ..admin("127.0.0.1:8081") },
                "admin.first_byte_timeout",
            ),
            (AdminConfig { first_byte_timeout: Duration::ZERO, ..admin("127.0.0.1:8081") }, "admin.first_byte_timeout"),
        ];
        for (config, key) in cases {
            let err = config.validate(public).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
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
