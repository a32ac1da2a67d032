//! TLS on the public listener (docs/OPERATIONS.md, "TLS"): rustls on the
//! aws-lc-rs provider jsonwebtoken already links, TLS 1.2 and 1.3 only,
//! rustls' default cipher suites, ALPN `http/1.1` (WebSocket over h2 is
//! not served, so h2 is not offered).
//!
//! The handshake and the connection run on rustls' unbuffered API
//! ([`stream`]), so an idle connection holds no TLS buffer.
//!
//! The certificate can change while the server runs: [`Tls::reload`]
//! builds a new rustls config from the files and swaps it in for new
//! handshakes; open connections keep the session they have. A pair that
//! does not load leaves the old one in force, and the log says why.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tracing::{info, warn};

use crate::rejection::{SECURITY_HEADERS, TLS_REQUIRED_BODY, TLS_UPGRADE_OFFER};

pub mod stream;

use stream::TlsStream;

/// The first byte of every TLS record that opens a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The whole answer to a plaintext request on the TLS port, written before
/// any HTTP parser has run, with the headers of every other answer.
fn upgrade_required() -> String {
    let mut answer = format!(
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: {TLS_UPGRADE_OFFER}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        TLS_REQUIRED_BODY.len()
    );
    for (name, value) in SECURITY_HEADERS {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(TLS_REQUIRED_BODY);
    answer
}

/// Why a certificate and key did not load: the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The listener's TLS settings, replaceable while it runs.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: ArcSwap<ServerConfig>,
    /// The files' modification times when last loaded, to notice a change.
    loaded: Mutex<Option<(SystemTime, SystemTime)>>,
}

impl Tls {
    /// Loads `cert` (a PEM chain, leaf first) and `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamps = stamps(cert, key);
        let config = build(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            config: ArcSwap::from(config),
            loaded: Mutex::new(stamps),
        })
    }

    /// Loads the files again and, if they make a valid pair, uses them for
    /// every new handshake. A broken pair keeps the old one in force; both
    /// outcomes are logged. Whether the new pair is in force.
    pub fn reload(&self) -> bool {
        let stamps = stamps(&self.cert, &self.key);
        match build(&self.cert, &self.key) {
            Ok(config) => {
                self.config.store(config);
                *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
                info!(cert = %self.cert.display(), "TLS certificate reloaded; new handshakes use it");
                true
            }
            Err(e) => {
                // Not retried until the files change again.
                *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
                warn!(error = %e, "TLS certificate not reloaded; the one in force stays");
                false
            }
        }
    }

    /// Reloads if either file changed since it was last read.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.cert, &self.key);
        let changed = *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) != now;
        if changed {
            self.reload();
        }
    }

    /// Serves the TLS side of a new socket: a plaintext request (its first
    /// byte is no TLS handshake record) is answered 426 and closed; else
    /// the handshake. `None` when the socket is done with.
    pub(crate) async fn accept(&self, stream: TcpStream) -> Option<Stream> {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(1) => {
                let mut stream = stream;
                let _ = stream.write_all(upgrade_required().as_bytes()).await;
                let _ = stream.shutdown().await;
                return None;
            }
            _ => return None,
        }
        // The config in force now: a reload meanwhile serves the next one.
        match stream::accept(stream, self.config.load_full()).await {
            Ok(tls) => Some(Stream::Tls(Box::new(tls))),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        }
    }
}

/// Checks the files for a change every `interval` until `stop`.
pub(crate) async fn watch(tls: Arc<Tls>, interval: Duration, stop: tokio_util::sync::CancellationToken) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let tls = Arc::clone(&tls);
        let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
    }
}

fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

fn build(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| TlsError(format!("{}: not a PEM certificate chain: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{}: no certificate in it", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("{}: not a PEM private key: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError(format!("{}: the key does not fit the certificate, or is unusable: {e}", cert.display()))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A public connection: plain TCP or TLS over it. One type, so the HTTP
/// server and the upgrade code serve both the same way.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}
