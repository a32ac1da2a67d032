//! `[[auth.issuers]]`: external token issuers, with static keys or a JWKS
//! URL (docs/CONFIG.md §6a). Checked when the settings are built, like
//! `auth.keys`, because static keys are files to read.

use std::net::IpAddr;
use std::time::Duration;

use palisade_core::auth::{Algorithm, IssuerKeys, IssuerSpec, JwksSpec};
use serde::{Deserialize, Serialize};

use super::{ConfigError, KeyConfig, duration};

/// One `[[auth.issuers]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` of the issuer's tokens.
    pub issuer: String,
    /// Required `aud`, "" for none.
    #[serde(default)]
    pub audience: String,
    /// Algorithms the issuer's tokens may use.
    pub algorithms: Vec<Algorithm>,
    /// Static keys, shaped like `[[auth.keys]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConfig>,
    /// Where to fetch the issuer's JSON Web Key Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Largest key set document read, in bytes.
    #[serde(default = "default_max_bytes")]
    pub jwks_max_bytes: usize,
    /// Shortest time between two fetches of the key set.
    #[serde(default = "default_min_refresh", with = "duration")]
    pub jwks_min_refresh: Duration,
    /// Time allowed for one whole fetch.
    #[serde(default = "default_timeout", with = "duration")]
    pub jwks_timeout: Duration,
    /// Age after which the key set is fetched again on next use.
    #[serde(default = "default_max_age", with = "duration")]
    pub jwks_max_age: Duration,
}

fn default_max_bytes() -> usize {
    65_536
}

fn default_min_refresh() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_age() -> Duration {
    Duration::from_secs(3600)
}

/// Checks every entry and reads its key files. `own_issuer` is
/// `auth.issuer`: an external issuer may not reuse it, or a token could be
/// read as either issuer's.
pub fn load_issuers(issuers: &[IssuerConfig], own_issuer: &str) -> Result<Vec<IssuerSpec>, ConfigError> {
    let mut specs: Vec<IssuerSpec> = Vec::with_capacity(issuers.len());
    for (i, entry) in issuers.iter().enumerate() {
        let spec = entry.load(i)?;
        if spec.issuer == own_issuer {
            return Err(ConfigError::invalid(format!("auth.issuers[{i}].issuer"), "must differ from auth.issuer"));
        }
        if specs.iter().any(|s| s.issuer == spec.issuer) {
            return Err(ConfigError::invalid(format!("auth.issuers[{i}].issuer"), "duplicate issuer"));
        }
        specs.push(spec);
    }
    Ok(specs)
}

impl IssuerConfig {
    fn load(&self, i: usize) -> Result<IssuerSpec, ConfigError> {
        let key = |field: &str| format!("auth.issuers[{i}].{field}");
        if self.issuer.is_empty() {
            return Err(ConfigError::invalid(key("issuer"), "must not be empty"));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid(key("algorithms"), "must name at least one algorithm"));
        }
        let keys = match (&self.jwks_url, self.keys.is_empty()) {
            (Some(_), false) => return Err(ConfigError::invalid(key("jwks_url"), "give keys or jwks_url, not both")),
            (None, true) => return Err(ConfigError::invalid(key("keys"), "missing: give keys or jwks_url")),
            (None, false) => IssuerKeys::Static(self.static_keys(i)?),
            (Some(url), true) => IssuerKeys::Jwks(self.jwks(i, url)?),
        };
        Ok(IssuerSpec {
            issuer: self.issuer.clone(),
            audience: (!self.audience.is_empty()).then(|| self.audience.clone()),
            algorithms: self.algorithms.clone(),
            keys,
        })
    }

    fn static_keys(&self, i: usize) -> Result<Vec<palisade_core::auth::KeyMaterial>, ConfigError> {
        let mut loaded: Vec<palisade_core::auth::KeyMaterial> = Vec::with_capacity(self.keys.len());
        for (j, k) in self.keys.iter().enumerate() {
            let prefix = format!("auth.issuers[{i}].keys[{j}]");
            let material = k.load_as(&prefix)?;
            if !self.algorithms.contains(&material.algorithm) {
                return Err(ConfigError::invalid(format!("{prefix}.algorithm"), "not one of the issuer's algorithms"));
            }
            if loaded.iter().any(|l| l.id == material.id) {
                return Err(ConfigError::invalid(format!("{prefix}.id"), "duplicate key id"));
            }
            loaded.push(material);
        }
        Ok(loaded)
    }

    fn jwks(&self, i: usize, url: &str) -> Result<JwksSpec, ConfigError> {
        let key = |field: &str| format!("auth.issuers[{i}].{field}");
        if let Some(a) = self.algorithms.iter().find(|a| a.is_hmac()) {
            return Err(ConfigError::invalid(
                key("algorithms"),
                format!("{a:?} needs static keys: a shared secret is never taken from a key set"),
            ));
        }
        check_url(url).map_err(|why| ConfigError::invalid(key("jwks_url"), why))?;
        for (field, zero) in [
            ("jwks_max_bytes", self.jwks_max_bytes == 0),
            ("jwks_min_refresh", self.jwks_min_refresh.is_zero()),
            ("jwks_timeout", self.jwks_timeout.is_zero()),
            ("jwks_max_age", self.jwks_max_age.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::invalid(key(field), "must be greater than 0"));
            }
        }
        Ok(JwksSpec {
            url: url.to_owned(),
            max_bytes: self.jwks_max_bytes,
            min_refresh: self.jwks_min_refresh,
            timeout: self.jwks_timeout,
            max_age: self.jwks_max_age,
        })
    }
}

/// A key set URL: `https://`, or `http://` to a loopback host only (tests,
/// a sidecar), with a host and no user info.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let authority = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{url}`: user info is not allowed"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(authority.host()) => Ok(()),
        Some("http") => Err(format!("`{url}`: plain http is allowed for loopback hosts only; use https")),
        _ => Err(format!("`{url}`: the scheme must be https")),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml: &str) -> IssuerConfig {
        toml::from_str(toml).unwrap()
    }

    fn error_key(issuers: &[IssuerConfig]) -> String {
        match load_issuers(issuers, "palisade") {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const JWKS: &str = "issuer = \"https://idp\"\nalgorithms = [\"RS256\"]\njwks_url = \"https://idp/jwks\"\n";

    #[test]
    fn defaults_and_a_valid_entry() {
        let specs = load_issuers(&[entry(JWKS)], "palisade").unwrap();
        let IssuerKeys::Jwks(jwks) = &specs[0].keys else { panic!("a key set") };
        assert_eq!(
            (jwks.max_bytes, jwks.min_refresh, jwks.timeout, jwks.max_age),
            (65_536, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(3600))
        );
        assert_eq!(specs[0].audience, None);
    }

    #[test]
    fn every_error_names_its_key() {
        let with = |extra: &str| entry(&format!("{JWKS}{extra}"));
        assert_eq!(error_key(&[entry(&JWKS.replace("https://idp\"\n", "\"\n"))]), "auth.issuers[0].issuer");
        assert_eq!(
            error_key(&[entry(&JWKS.replace("https://idp\"\nalg", "palisade\"\nalg"))]),
            "auth.issuers[0].issuer"
        );
        assert_eq!(error_key(&[entry(JWKS), entry(JWKS)]), "auth.issuers[1].issuer");
        assert_eq!(error_key(&[entry(&JWKS.replace("[\"RS256\"]", "[]"))]), "auth.issuers[0].algorithms");
        assert_eq!(
            error_key(&[entry(&JWKS.replace("[\"RS256\"]", "[\"RS256\", \"HS256\"]"))]),
            "auth.issuers[0].algorithms"
        );
        assert_eq!(
            error_key(&[entry(&JWKS.replace("https://idp/jwks", "http://idp/jwks"))]),
            "auth.issuers[0].jwks_url"
        );
        assert_eq!(error_key(&[with("jwks_max_bytes = 0")]), "auth.issuers[0].jwks_max_bytes");
        assert_eq!(error_key(&[with("jwks_min_refresh = \"0s\"")]), "auth.issuers[0].jwks_min_refresh");
        assert_eq!(error_key(&[with("jwks_timeout = \"0s\"")]), "auth.issuers[0].jwks_timeout");
        assert_eq!(error_key(&[with("jwks_max_age = \"0s\"")]), "auth.issuers[0].jwks_max_age");
        let both = with("[[keys]]\nid = \"k\"\nalgorithm = \"RS256\"\npublic_key_file = \"/nonexistent\"\n");
        assert_eq!(error_key(&[both]), "auth.issuers[0].jwks_url");
        let neither = entry("issuer = \"https://idp\"\nalgorithms = [\"RS256\"]\n");
        assert_eq!(error_key(&[neither]), "auth.issuers[0].keys");
        let static_keys = "issuer = \"https://idp\"\nalgorithms = [\"HS256\"]\n[[keys]]\nid = \"k\"\nalgorithm = \"HS384\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
        assert_eq!(error_key(&[entry(static_keys)]), "auth.issuers[0].keys[0].algorithm");
        let unreadable = "issuer = \"https://idp\"\nalgorithms = [\"ES256\"]\n[[keys]]\nid = \"k\"\nalgorithm = \"ES256\"\npublic_key_file = \"/nonexistent\"\n";
        assert_eq!(error_key(&[entry(unreadable)]), "auth.issuers[0].keys[0].public_key_file");
        // An HMAC secret for a static issuer is fine.
        assert!(load_issuers(&[entry(&static_keys.replace("HS384", "HS256"))], "palisade").is_ok());
    }

    #[test]
    fn key_set_urls_are_https_or_loopback_http() {
        for ok in [
            "https://idp.example/.well-known/jwks.json",
            "https://idp.example:8443/keys",
            "http://127.0.0.1:9000/jwks",
            "http://127.3.4.5/jwks",
            "http://localhost:8080/jwks",
            "http://[::1]:8080/jwks",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.example/jwks",
            "ftp://idp.example/jwks",
            "https://user:pw@idp.example/jwks",
            "/jwks",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
