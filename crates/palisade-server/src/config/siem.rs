//! `[siem]`: the audit trail streamed to a SIEM as syslog (docs/CONFIG.md,
//! "siem"; docs/OPERATIONS.md, "Sending the audit trail to a SIEM").

use std::path::{Path, PathBuf};

use palisade_core::audit::siem::{Body, MAX_APP_NAME, MAX_HOSTNAME, is_header_field};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[siem]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemConfig {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`; "" sends
    /// nothing.
    pub syslog: String,
    /// What a message's body is.
    pub format: SiemFormat,
    /// Records waiting to be sent; past it the oldest is dropped, counted
    /// and told in a gap record.
    pub queue: usize,
    /// The messages' APP-NAME.
    pub app_name: String,
    /// The messages' HOSTNAME; "" for `server.node_id`.
    pub hostname: String,
    /// PEM file of the roots a `tls://` receiver's certificate must chain
    /// to, instead of the compiled-in ones (relative to the config's
    /// directory); "" for those.
    pub ca_file: String,
}

/// `siem.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiemFormat {
    /// The record as a JSON object.
    Json,
    /// An ArcSight CEF line.
    Cef,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram per record (RFC 5426).
    Udp,
    /// Octet-counted frames on TCP (RFC 6587).
    Tcp,
    /// Octet-counted frames on TLS (RFC 5425).
    Tls,
}

/// `[siem]` checked, when `siem.syslog` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct SiemSettings {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// The receiver's host name or address (also the name its TLS
    /// certificate must carry).
    pub host: String,
    /// The receiver's port.
    pub port: u16,
    /// The messages' body.
    pub body: Body,
    /// `siem.queue`.
    pub queue: usize,
    /// `siem.app_name`.
    pub app_name: String,
    /// `siem.hostname`, or `server.node_id`.
    pub hostname: String,
    /// `siem.ca_file`, resolved.
    pub ca_file: Option<PathBuf>,
}

impl SiemConfig {
    /// The settings `syslog` asks for, `None` when it is ""; the error
    /// names the key.
    pub fn settings(
        &self,
        base_dir: &Path,
        node_id: &str,
        audit_enabled: bool,
    ) -> Result<Option<SiemSettings>, ConfigError> {
        if self.queue == 0 {
            return Err(ConfigError::invalid("siem.queue", "must be greater than 0"));
        }
        if !is_header_field(&self.app_name, MAX_APP_NAME) {
            return Err(ConfigError::invalid("siem.app_name", "must be 1 to 48 printable ASCII characters, not \"-\""));
        }
        if !self.hostname.is_empty() && !is_header_field(&self.hostname, MAX_HOSTNAME) {
            return Err(ConfigError::invalid(
                "siem.hostname",
                "must be \"\" or 1 to 255 printable ASCII characters, not \"-\"",
            ));
        }
        if self.syslog.is_empty() {
            return Ok(None);
        }
        let (transport, host, port) = target(&self.syslog)?;
        if !self.ca_file.is_empty() && transport != Transport::Tls {
            return Err(ConfigError::invalid("siem.ca_file", "needs a tls:// siem.syslog"));
        }
        if !audit_enabled {
            return Err(ConfigError::invalid("siem.syslog", "streams the audit log: needs audit.enabled = true"));
        }
        Ok(Some(SiemSettings {
            transport,
            host,
            port,
            body: match self.format {
                SiemFormat::Json => Body::Json,
                SiemFormat::Cef => Body::Cef,
            },
            queue: self.queue,
            app_name: self.app_name.clone(),
            hostname: if self.hostname.is_empty() { node_id.to_owned() } else { self.hostname.clone() },
            ca_file: (!self.ca_file.is_empty()).then(|| base_dir.join(&self.ca_file)),
        }))
    }
}

/// The transport, host and port of `url`: a scheme, a host and a port,
/// nothing else.
fn target(url: &str) -> Result<(Transport, String, u16), ConfigError> {
    const WANT: &str = "must be udp://host:port, tcp://host:port or tls://host:port";
    let bad = || ConfigError::invalid("siem.syslog", WANT);
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let transport = match uri.scheme_str() {
        Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some("tls") => Transport::Tls,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    if authority.as_str().contains('@') || rest != authority.as_str() {
        return Err(bad());
    }
    let port = authority.port_u16().filter(|port| *port != 0).ok_or_else(bad)?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((transport, host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(syslog: &str) -> SiemConfig {
        let mut tree = super::super::template_table();
        let siem = tree.get_mut("siem").and_then(toml::Value::as_table_mut).unwrap();
        siem.insert("syslog".into(), syslog.into());
        tree.remove("siem").unwrap().try_into().unwrap()
    }

    #[test]
    fn the_default_sends_nothing_and_a_target_is_a_scheme_host_and_port() {
        let here = Path::new("/etc/palisade");
        assert_eq!(config("").settings(here, "n1", true).unwrap(), None);
        let tcp = config("tcp://siem.example:6514").settings(here, "n1", true).unwrap().unwrap();
        assert_eq!((tcp.transport, tcp.host.as_str(), tcp.port), (Transport::Tcp, "siem.example", 6514));
        assert_eq!((tcp.hostname.as_str(), tcp.app_name.as_str(), tcp.queue), ("n1", "palisade", 10_000));
        assert_eq!(tcp.body, Body::Json);
        let v6 = config("udp://[::1]:514").settings(here, "n1", true).unwrap().unwrap();
        assert_eq!((v6.transport, v6.host.as_str()), (Transport::Udp, "::1"));
        let tls = SiemConfig { ca_file: "ca.pem".into(), ..config("tls://h:6514") };
        assert_eq!(tls.settings(here, "n1", true).unwrap().unwrap().ca_file, Some(here.join("ca.pem")));
    }

    #[test]
    fn bad_values_are_refused_naming_their_key() {
        let here = Path::new(".");
        let refused = |c: SiemConfig, audit: bool| c.settings(here, "n1", audit).unwrap_err().to_string();
        for url in
            ["http://h:1", "tcp://h", "tcp://h:0", "tcp://u:p@h:1", "tcp://h:1/x", "tcp://h:1?q", "h:1", "tcp://:1"]
        {
            assert!(refused(config(url), true).contains("siem.syslog"), "{url}");
        }
        assert!(refused(config("tcp://h:1"), false).contains("audit.enabled"));
        assert!(refused(SiemConfig { ca_file: "ca.pem".into(), ..config("tcp://h:1") }, true).contains("siem.ca_file"));
        assert!(refused(SiemConfig { queue: 0, ..config("") }, true).contains("siem.queue"));
        assert!(refused(SiemConfig { app_name: "my app".into(), ..config("") }, true).contains("siem.app_name"));
        assert!(refused(SiemConfig { hostname: "-".into(), ..config("") }, true).contains("siem.hostname"));
    }
}
