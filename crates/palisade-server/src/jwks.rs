//! Fetching external issuers' JSON Web Key Sets (docs/ARCHITECTURE.md,
//! "External issuers"). The core decides whether a fetch is due (the token
//! passed the issuer's checks, its key is missing or stale, the issuer's
//! `jwks_min_refresh` has passed) and what a document means; this module
//! performs the fetch and hands the bytes back.
//!
//! The client is hyper's HTTP/1 connection over a tokio socket, with
//! tokio-rustls for `https://`. A pooled client (hyper-util's legacy
//! client, reqwest) would bring connection pools, proxies and redirects
//! that a fetch made at most once a minute per issuer does not need, and
//! reqwest more dependencies again; rustls runs on the aws-lc-rs provider
//! jsonwebtoken already links, so there is one crypto library.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http::{StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use palisade_core::auth::{FetchRequest, Issuers};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tracing::{info, warn};

use crate::clock::Clock;

/// One fetch at a time per issuer: handshakes that need the same missing
/// key wait for the one fetch under way, then find its keys.
#[derive(Debug, Default)]
pub(crate) struct JwksFetcher {
    /// Keyed by issuers the config names (the core only asks for those).
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl JwksFetcher {
    fn lock(&self, issuer: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.locks.entry(issuer.to_owned()).or_default())
    }

    /// Before `token` is verified against `issuers` (at the handshake, on
    /// the admin listener, or when a `refresh` frame's session asks for its
    /// keys): when it names a key set issuer whose key the cache lacks,
    /// fetch the set if the issuer's rate allows. A failed fetch is logged;
    /// the verification that follows then refuses the token like any other
    /// (401, `forbidden`).
    pub(crate) async fn before_verify(&self, issuers: &Issuers, clock: &Clock, token: &str) {
        if !issuers.has_jwks() {
            return;
        }
        let Some(issuer) = issuers.key_wanted(token, clock.now()) else {
            return;
        };
        let lock = self.lock(&issuer);
        let _held = lock.lock().await;
        // Whoever waited finds the keys the fetch before it installed, or
        // the issuer's interval not yet over: no second fetch either way.
        let Some(req) = issuers.needs_fetch(token, clock.now()) else {
            return;
        };
        install(issuers, clock, &req).await;
    }
}

/// Fetches the key set `req` names and installs it for its issuer; on any
/// failure the keys in force stay (logged).
async fn install(issuers: &Issuers, clock: &Clock, req: &FetchRequest) {
    match fetch(req).await {
        Ok(body) => match issuers.install_jwks(&req.issuer, &body, clock.now()) {
            Ok(done) if done.keys == 0 => warn!(
                issuer = %req.issuer, url = %req.url, bytes = body.len(), skipped = done.skipped,
                "jwks fetched: no usable key (every token of this issuer is refused until the next fetch)"
            ),
            Ok(done) => info!(
                issuer = %req.issuer, url = %req.url, bytes = body.len(), keys = done.keys, skipped = done.skipped,
                "jwks fetched"
            ),
            Err(e) => warn!(issuer = %req.issuer, url = %req.url, error = %e, "jwks refused; the keys in force stay"),
        },
        Err(e) => warn!(issuer = %req.issuer, url = %req.url, error = %e, "jwks fetch failed; the keys in force stay"),
    }
}

/// Why a fetch failed, for the log (threat feeds' fetches too).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("bad URL: {0}")]
    Url(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("status {0}, want 200 (redirects are not followed)")]
    Status(StatusCode),
    #[error("body over jwks_max_bytes ({0})")]
    TooLarge(usize),
    #[error("no answer within jwks_timeout ({0:?})")]
    Timeout(Duration),
}

/// GETs the document, the whole fetch within `req.timeout`, reading at most
/// `req.max_bytes` of body. Threat feeds fetch through it too: one
/// bounded client in the server.
pub(crate) async fn fetch(req: &FetchRequest) -> Result<Vec<u8>, FetchError> {
    tokio::time::timeout(req.timeout, Box::pin(fetch_unbounded(req)))
        .await
        .map_err(|_| FetchError::Timeout(req.timeout))?
}

async fn fetch_unbounded(req: &FetchRequest) -> Result<Vec<u8>, FetchError> {
    // The URL was checked at start (config/issuers.rs): https, or http to
    // a loopback host.
    let uri: http::Uri = req.url.parse().map_err(|e| FetchError::Url(format!("{e}")))?;
    let authority = uri.authority().ok_or_else(|| FetchError::Url("no host".into()))?.clone();
    let https = uri.scheme_str() == Some("https");
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "application/json, application/jwk-set+json")
        .header(header::USER_AGENT, concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Url(e.to_string()))?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(FetchError::Connect)?;
    if https {
        let name = ServerName::try_from(host).map_err(|e| FetchError::Tls(e.to_string()))?;
        let connector = connector().map_err(|e| FetchError::Tls(e.to_string()))?;
        let tls = connector.connect(name, tcp).await.map_err(|e| FetchError::Tls(e.to_string()))?;
        exchange(tls, request, req.max_bytes).await
    } else {
        exchange(tcp, request, req.max_bytes).await
    }
}

/// A TLS client trusting the Mozilla roots compiled in (webpki-roots), on
/// the aws-lc-rs provider. Built per fetch: fetches are rare (alert
/// deliveries use it too).
pub(crate) fn connector() -> Result<TlsConnector, rustls::Error> {
    connector_trusting(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
}

/// A TLS client trusting the certificates in the PEM file `ca_file`
/// (`gateway.ca_file`, `siem.ca_file`), or the compiled-in roots without
/// one. The error names the file.
pub(crate) fn connector_with(ca_file: Option<&std::path::Path>) -> Result<TlsConnector, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let Some(path) = ca_file else { return connector().map_err(|e| e.to_string()) };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    connector_trusting(roots).map_err(|e| e.to_string())
}

/// A TLS client trusting `roots`, on the aws-lc-rs provider.
fn connector_trusting(roots: rustls::RootCertStore) -> Result<TlsConnector, rustls::Error> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Aborts the connection task when the fetch ends, however it ends (a
/// timeout drops the fetch mid-way).
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<S>(io: S, request: http::Request<Empty<Bytes>>, max_bytes: usize) -> Result<Vec<u8>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        // Its error, if any, shows as the request's.
        let _ = conn.await;
    }));
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Status(response.status()));
    }
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    // Read frame by frame and stop past the cap: a body is never buffered
    // beyond `max_bytes` plus one read.
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len().saturating_add(data.len()) > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
