//! `[gateway]`: gateway mode, Palisade in front of an existing WebSocket
//! backend (docs/GATEWAY.md; docs/CONFIG.md, "gateway"). Off while
//! `upstream` is "".

use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_core::json::JsonLimits;
use palisade_core::passthrough::{FieldPointers, Framing, OutboundRules, RawFormat};
use serde::{Deserialize, Serialize};

use super::secret::SecretKeys;
use super::{ConfigError, LimitsConfig, duration};

/// Shortest identity secret accepted, in bytes.
pub const MIN_IDENTITY_SECRET_BYTES: usize = 32;

/// `[gateway]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The backend's `ws://` or `wss://` URL; "" for native mode.
    pub upstream: String,
    /// HMAC-SHA256 key of the identity headers, inline.
    pub identity_secret: String,
    /// The same, from a file.
    pub identity_secret_file: String,
    /// PEM file of the roots a `wss://` backend's certificate must chain
    /// to; "" for the Mozilla roots compiled in.
    pub ca_file: String,
    /// Pass the client's `Cookie` and `Authorization` headers upstream.
    pub forward_credentials: bool,
    /// The longest the upstream connection may take to open.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// The retry hint a client gets when the backend cannot be reached.
    #[serde(with = "duration")]
    pub retry_after: Duration,
    /// The message format: "json" or "socket.io".
    pub preset: Preset,
    /// JSON Pointer to the event name; "" for the preset's.
    pub event_field: String,
    /// JSON Pointer to the room; "" for none.
    pub room_field: String,
    /// JSON Pointer to the data; "" for the preset's.
    pub data_field: String,
    /// JSON Pointer to the CSRF token; "" for the preset's.
    pub csrf_field: String,
    /// JSON Pointer to the replay nonce; "" for the preset's.
    pub nonce_field: String,
    /// JSON Pointer to the replay timestamp; "" for the preset's.
    pub ts_field: String,
    /// What a refused client message gets: "error" or "close".
    pub on_refusal: OnRefusal,
    /// Forward the client's binary frames.
    pub allow_binary: bool,
    /// Send Palisade's `welcome` and `csrf` frames to the client.
    pub welcome: bool,
    /// Longest backend message passed to the client.
    pub outbound_max_bytes: usize,
    /// Run declared events' schema and sanitizers on backend messages.
    pub outbound_check: bool,
}

impl std::fmt::Debug for GatewayConfig {
    // Neither the secret nor the URL (its query may carry a token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("upstream_set", &!self.upstream.is_empty())
            .field("preset", &self.preset)
            .field("on_refusal", &self.on_refusal)
            .finish_non_exhaustive()
    }
}

/// `gateway.preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    /// One JSON object per text frame.
    #[serde(rename = "json")]
    Json,
    /// Socket.IO over Engine.IO v4, WebSocket transport.
    #[serde(rename = "socket.io")]
    SocketIo,
}

/// `gateway.on_refusal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRefusal {
    /// Answer with Palisade's error frame; the connection stays.
    Error,
    /// Close the connection with 1008.
    Close,
}

/// What `[gateway]` compiles to.
#[derive(Clone)]
pub struct GatewaySettings {
    /// The backend.
    pub upstream: http::Uri,
    /// The identity headers' key.
    pub secret: Vec<u8>,
    /// The backend's message format.
    pub format: RawFormat,
    /// Checks on backend→client messages.
    pub outbound: OutboundRules,
    /// Bounds of a client message's parse.
    pub json: JsonLimits,
    /// Roots for `wss://`; `None` for the compiled-in ones.
    pub ca_file: Option<PathBuf>,
    /// `gateway.forward_credentials`.
    pub forward_credentials: bool,
    /// `gateway.connect_timeout`.
    pub connect_timeout: Duration,
    /// `gateway.retry_after`.
    pub retry_after: Duration,
    /// `gateway.on_refusal`.
    pub on_refusal: OnRefusal,
    /// `gateway.allow_binary`.
    pub allow_binary: bool,
    /// `gateway.welcome`.
    pub welcome: bool,
    /// Largest backend message read at all (the write buffer's bound).
    pub max_upstream_bytes: usize,
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings").field("format", &self.format).finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Gateway mode's settings, `None` when it is off. Never quotes the
    /// URL or the secret.
    pub fn settings(&self, base_dir: &Path, limits: &LimitsConfig) -> Result<Option<GatewaySettings>, ConfigError> {
        if self.upstream.is_empty() {
            return Ok(None);
        }
        let upstream = self
            .upstream
            .parse::<http::Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("ws" | "wss")) && u.host().is_some_and(|h| !h.is_empty()));
        let Some(upstream) = upstream else {
            return Err(ConfigError::invalid("gateway.upstream", "must be a ws:// or wss:// URL with a host, or \"\""));
        };
        let keys = SecretKeys {
            inline: ("gateway.identity_secret", &self.identity_secret),
            file: ("gateway.identity_secret_file", &self.identity_secret_file),
        };
        let Some(secret) = keys.read(base_dir, MIN_IDENTITY_SECRET_BYTES, "secret")? else {
            return Err(ConfigError::invalid(
                "gateway.identity_secret",
                "missing: gateway.upstream needs a secret to sign the identity headers with",
            ));
        };
        for (key, d) in [("gateway.connect_timeout", self.connect_timeout), ("gateway.retry_after", self.retry_after)] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.outbound_max_bytes == 0 || self.outbound_max_bytes > limits.max_write_buffer_bytes {
            return Err(ConfigError::invalid(
                "gateway.outbound_max_bytes",
                "must be greater than 0 and at most limits.max_write_buffer_bytes (every frame sent must fit it)",
            ));
        }
        let format = self.format()?;
        // The envelope around the data: the data's own depth is the event's
        // to bound, so the whole message gets a few levels more.
        let json =
            JsonLimits { max_depth: limits.max_json_depth.saturating_add(4), max_bytes: limits.max_message_bytes };
        Ok(Some(GatewaySettings {
            upstream,
            secret,
            format,
            outbound: OutboundRules {
                max_bytes: self.outbound_max_bytes,
                check_events: self.outbound_check,
                json: JsonLimits { max_bytes: self.outbound_max_bytes, ..json },
            },
            json,
            ca_file: (!self.ca_file.is_empty()).then(|| base_dir.join(&self.ca_file)),
            forward_credentials: self.forward_credentials,
            connect_timeout: self.connect_timeout,
            retry_after: self.retry_after,
            on_refusal: self.on_refusal,
            allow_binary: self.allow_binary,
            welcome: self.welcome,
            max_upstream_bytes: limits.max_write_buffer_bytes,
        }))
    }

    fn format(&self) -> Result<RawFormat, ConfigError> {
        let framing = match self.preset {
            Preset::Json => Framing::Json,
            Preset::SocketIo => Framing::SocketIo,
        };
        let preset = FieldPointers::preset(framing);
        let or = |set: &str, default: String| if set.is_empty() { default } else { set.to_owned() };
        let fields = FieldPointers {
            event: or(&self.event_field, preset.event),
            room: (!self.room_field.is_empty()).then(|| self.room_field.clone()),
            data: or(&self.data_field, preset.data),
            csrf: or(&self.csrf_field, preset.csrf),
            nonce: or(&self.nonce_field, preset.nonce),
            ts: or(&self.ts_field, preset.ts),
        };
        RawFormat::new(framing, fields).map_err(|(field, why)| ConfigError::invalid(format!("gateway.{field}"), why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl FnOnce(&mut toml::Table)) -> (GatewayConfig, LimitsConfig) {
        let mut tree = super::super::template_table();
        let gateway = tree.get_mut("gateway").and_then(toml::Value::as_table_mut).unwrap();
        edit(gateway);
        let limits = tree.remove("limits").unwrap().try_into().unwrap();
        (tree.remove("gateway").unwrap().try_into().unwrap(), limits)
    }

    #[test]
    fn off_by_default_and_an_upstream_needs_a_long_secret_never_quoted() {
        let here = Path::new(".");
        let (off, limits) = config(|_| {});
        assert!(off.settings(here, &limits).unwrap().is_none());
        let url = "ws://127.0.0.1:9000/ws?key=T0KEN";
        let (missing, _) = config(|g| {
            g.insert("upstream".into(), url.into());
        });
        let err = missing.settings(here, &limits).unwrap_err().to_string();
        assert!(err.contains("gateway.identity_secret") && !err.contains("T0KEN"), "{err}");
        let (bad, _) = config(|g| {
            g.insert("upstream".into(), "http://T0KEN@x/".into());
            g.insert("identity_secret".into(), "s".repeat(32).into());
        });
        let err = bad.settings(here, &limits).unwrap_err().to_string();
        assert!(err.contains("gateway.upstream") && !err.contains("T0KEN"), "{err}");
        let (ok, _) = config(|g| {
            g.insert("upstream".into(), url.into());
            g.insert("identity_secret".into(), "s".repeat(32).into());
        });
        let settings = ok.settings(here, &limits).unwrap().unwrap();
        assert_eq!(settings.secret, "s".repeat(32).into_bytes());
        let shown = format!("{ok:?} {settings:?}");
        assert!(!shown.contains("T0KEN") && !shown.contains(&"s".repeat(32)), "{shown}");
    }

    #[test]
    fn a_bad_pointer_names_its_key() {
        let (bad, limits) = config(|g| {
            g.insert("upstream".into(), "ws://127.0.0.1:9000/".into());
            g.insert("identity_secret".into(), "s".repeat(32).into());
            g.insert("event_field".into(), "type".into());
        });
        let err = bad.settings(Path::new("."), &limits).unwrap_err().to_string();
        assert!(err.contains("gateway.event_field"), "{err}");
    }
}
