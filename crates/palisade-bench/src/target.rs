//! The server under test: where it is, how to authenticate to it, and which
//! local addresses connections come from.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_client::{Client, ClientError, ConnectOptions, socket_addr};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::MaybeTlsStream;

/// Most connections one generator process opens: the file limit here is
/// 20,000 per process, and the process needs a few for itself.
pub const MAX_CONNECTIONS_PER_PROCESS: usize = 19_000;
/// Longest any scenario runs.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not `ws://IP:PORT/…` or `wss://IP:PORT/…`.
    #[error("url must be ws://IP:PORT/path or wss://IP:PORT/path: {0}")]
    BadUrl(String),
    /// A `wss://` target without certificates to trust, or certificates
    /// for a `ws://` one.
    #[error("wss:// needs --ca (the server's certificate, PEM), and only wss:// takes it: {0}")]
    Trust(String),
    /// The certificates to trust do not load.
    #[error("{0}")]
    Ca(String),
    /// Benchmarks only ever talk to this machine.
    #[error("refusing non-loopback target {0}: benchmarks only run against 127.0.0.0/8 or ::1")]
    NotLoopback(IpAddr),
}

/// A server to drive.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://…/ws`.
    pub url: String,
    /// Its socket address.
    pub addr: SocketAddr,
    /// HS256 secret its tokens are signed with.
    pub secret: String,
    /// `Origin` to send, if any.
    pub origin: Option<String>,
    /// How many 127.0.0.x source addresses to spread connections over.
    pub sources: u8,
    /// For `wss://`: the TLS client, set by [`Target::trusting`].
    pub tls: Option<Tls>,
}

/// A TLS client that trusts only the given certificates, for a server
/// whose certificate names the target's IP address.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Target {
    /// Validates the URL (loopback only).
    pub fn new(url: &str, secret: &str, origin: Option<String>, sources: u8) -> Result<Self, TargetError> {
        let addr = socket_addr(url).map_err(|_| TargetError::BadUrl(url.to_owned()))?;
        if !addr.ip().is_loopback() {
            return Err(TargetError::NotLoopback(addr.ip()));
        }
        Ok(Self { url: url.to_owned(), addr, secret: secret.to_owned(), origin, sources: sources.max(1), tls: None })
    }

    /// For a `wss://` target: trusts the certificates in `ca` (PEM) and
    /// nothing else, TLS 1.2 and 1.3, on the provider the server uses. The
    /// server's certificate must name the target's IP address
    /// (`palisade cert --self-signed --host 127.0.0.1`).
    pub fn trusting(mut self, ca: &Path) -> Result<Self, TargetError> {
        if !self.url.starts_with("wss://") {
            return Err(TargetError::Trust(self.url));
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .and_then(Iterator::collect)
            .map_err(|e| TargetError::Ca(format!("{}: not PEM certificates: {e}", ca.display())))?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| TargetError::Ca(format!("{}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(TargetError::Ca(format!("{}: no certificate in it", ca.display())));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Ca(format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::IpAddress(self.addr.ip().into());
        self.tls = Some(Tls { connector: TlsConnector::from(Arc::new(config)), name });
        Ok(self)
    }

    /// Connects, authenticates and waits for `welcome`: over TLS for a
    /// `wss://` target, the whole within `opts.timeout`.
    pub async fn connect(&self, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let Some(tls) = &self.tls else { return Client::connect(opts).await };
        let secured = async {
            let tcp = palisade_client::dial(opts).await?;
            Ok::<_, ClientError>(tls.connector.connect(tls.name.clone(), tcp).await?)
        };
        let stream = tokio::time::timeout(opts.timeout, secured).await.map_err(|_| ClientError::Timeout)??;
        Client::connect_on(opts, MaybeTlsStream::Rustls(stream)).await
    }

    /// Connection options for user `user`, the `n`th connection overall.
    pub fn options(&self, user: &str, n: usize) -> ConnectOptions {
        let mut opts = ConnectOptions::new(self.url.clone(), self.token(user, &["user"]));
        opts.origin.clone_from(&self.origin);
        opts.bind = self.source(n);
        opts
    }

    /// The local address the `n`th connection comes from: spread over
    /// 127.0.0.1 … 127.0.0.N so 50k connections do not run out of
    /// ephemeral ports on one source address (and a server's per-address
    /// limits see several clients). `None` for an IPv6 target.
    pub fn source(&self, n: usize) -> Option<IpAddr> {
        self.addr.is_ipv4().then(|| {
            let last = 1 + u8::try_from(n % usize::from(self.sources)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
        })
    }

    /// A source address for hostile client `client` outside 127.0.0.x,
    /// where [`Target::source`] puts every other connection: 127.`range`.`client`.`k + 1`
    /// (client and k taken modulo 256 and 254). The bans such a client earns
    /// then never fall on an honest client's address. `None` for an IPv6
    /// target, which has one loopback address only.
    pub fn outside_source(&self, range: u8, client: usize, k: usize) -> Option<IpAddr> {
        self.addr.is_ipv4().then(|| {
            let third = u8::try_from(client % 256).unwrap_or(0);
            let last = 1 + u8::try_from(k % 254).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::new(127, range.max(1), third, last))
        })
    }

    /// An HS256 token for `user`, valid for an hour. It carries a `jti`
    /// and an `iat`, as issuers' tokens do, so a server's revocation check
    /// looks the token up rather than skipping tokens without an id.
    pub fn token(&self, user: &str, roles: &[&str]) -> String {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let jti = format!("b{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let claims = serde_json::json!({
            "sub": user, "roles": roles, "iat": now, "exp": now + 3600, "jti": jti, "iss": "palisade", "aud": "palisade"
        });
        let key = jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes());
        // Encoding a JSON object with an HMAC key cannot fail.
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::new("ws://127.0.0.1:1/ws", "s", None, 1).is_ok());
        assert!(Target::new("ws://[::1]:1/ws", "s", None, 1).is_ok());
        assert!(matches!(Target::new("ws://10.0.0.1:1/ws", "s", None, 1), Err(TargetError::NotLoopback(_))));
        assert!(matches!(Target::new("ws://example.com:1/ws", "s", None, 1), Err(TargetError::BadUrl(_))));
        assert!(Target::new("wss://127.0.0.1:1/ws", "s", None, 1).is_ok());
        assert!(matches!(Target::new("wss://10.0.0.1:1/ws", "s", None, 1), Err(TargetError::NotLoopback(_))));
    }

    #[test]
    fn only_wss_targets_take_certificates_to_trust() {
        let ws = Target::new("ws://127.0.0.1:1/ws", "s", None, 1).unwrap();
        assert!(matches!(ws.trusting(Path::new("/nonexistent")), Err(TargetError::Trust(_))));
        let wss = Target::new("wss://127.0.0.1:1/ws", "s", None, 1).unwrap();
        assert!(matches!(wss.trusting(Path::new("/nonexistent")), Err(TargetError::Ca(_))));
    }

    #[test]
    fn connections_spread_over_source_addresses() {
        let t = Target::new("ws://127.0.0.1:1/ws", "s", None, 3).unwrap();
        let ips: Vec<_> = (0..4).map(|n| t.options("u", n).bind.unwrap().to_string()).collect();
        assert_eq!(ips, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
    }

    #[test]
    fn outside_sources_never_meet_the_shared_range() {
        let t = Target::new("ws://127.0.0.1:1/ws", "s", None, 250).unwrap();
        let ips: Vec<_> = [(1, 0, 0), (1, 3, 2), (0, 300, 254)]
            .iter()
            .map(|&(range, client, k)| t.outside_source(range, client, k).unwrap().to_string())
            .collect();
        assert_eq!(ips, ["127.1.0.1", "127.1.3.3", "127.1.44.1"]);
        assert!(Target::new("ws://[::1]:1/ws", "s", None, 1).unwrap().outside_source(1, 0, 0).is_none());
    }
}
