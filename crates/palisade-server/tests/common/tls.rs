//! Certificates a test makes for itself, and a WSS client that trusts
//! exactly one of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};

use super::{WAIT, Ws};

/// A self-signed pair for `localhost`, written as `<name>.cert.pem` and
/// `<name>.key.pem` in `dir`; the paths and the certificate.
pub fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.cert.pem")), dir.join(format!("{name}.key.pem")));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

/// Writes `pair`'s files over `cert` and `key` (a rotation).
pub fn install(from: &(PathBuf, PathBuf, CertificateDer<'static>), cert: &Path, key: &Path) {
    std::fs::copy(&from.0, cert).unwrap();
    std::fs::copy(&from.1, key).unwrap();
}

/// A client config that trusts `only`, and only TLS 1.2 and 1.3.
pub fn client(only: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(only.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Opens `wss://localhost/ws` at `addr` with a bearer token, trusting
/// `only`. `Err` is the TLS or handshake failure, as text.
pub async fn wss(
    addr: SocketAddr,
    only: &CertificateDer<'static>,
    token: &str,
) -> Result<(Ws, Response<Option<Vec<u8>>>), String> {
    let mut req = format!("wss://localhost:{}/ws", addr.port()).into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(client(only)).connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?;
        tokio_tungstenite::client_async(req, MaybeTlsStream::Rustls(tls)).await.map_err(|e| format!("ws: {e}"))
    };
    tokio::time::timeout(WAIT, attempt).await.expect("handshake in time")
}
