//! TLS, for a `wss://` target: whether its certificate verifies, whether
//! it still speaks TLS 1.0 or 1.1, whether its HTTPS answers carry HSTS,
//! and whether the same port, or its conventional plain-text twin (80 for
//! 443, 8080 for 8443), also takes a plain-text `ws://` upgrade
//! (docs/SCAN.md, "tls").

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::checks::Scan;
use crate::finding::{Rule, Severity};
use crate::net::{Answer, Io, READ_TIMEOUT, read_head};
use crate::{Options, ScanError};

/// The certificate does not verify.
pub(crate) const CERTIFICATE: Rule = Rule {
    id: "tls.certificate-invalid",
    severity: Severity::High,
    title: "the certificate does not verify (expired, another name, or an issuer nobody trusts): clients learn to click through",
    fix: "serve a certificate for this name from a public CA (or the CA your clients pin), and renew it before it expires",
};
/// TLS 1.0 or 1.1 is spoken.
pub(crate) const LEGACY: Rule = Rule {
    id: "tls.legacy-version-accepted",
    severity: Severity::Medium,
    title: "the server completes a TLS 1.0 or 1.1 hello (versions RFC 8996 deprecates)",
    fix: "allow TLS 1.2 and 1.3 only",
};
/// No `Strict-Transport-Security` over HTTPS.
pub(crate) const HSTS: Rule = Rule {
    id: "tls.hsts-missing",
    severity: Severity::Low,
    title: "HTTPS answers carry no Strict-Transport-Security header (a first visit can be downgraded)",
    fix: "send Strict-Transport-Security: max-age=31536000 on every HTTPS answer",
};
/// The TLS port also takes a plain upgrade.
pub(crate) const PLAINTEXT: Rule = Rule {
    id: "tls.plaintext-accepted",
    severity: Severity::High,
    title: "the wss:// port also upgrades a plain-text ws:// handshake (tokens and messages in the clear)",
    fix: "refuse plain text on the TLS port (426, or close); serve ws:// nowhere a wss:// endpoint exists",
};

/// The plain-text twin of a TLS port takes the upgrade.
pub(crate) const PLAIN_PORT: Rule = Rule {
    id: "tls.plaintext-port-accepted",
    severity: Severity::High,
    title: "a plain-text ws:// listener beside the wss:// one upgrades the same handshake (tokens and messages in the clear)",
    fix: "serve the socket over TLS only: close the plain port, or have it answer every request with a redirect to https",
};

/// The plain-text port conventionally paired with a TLS one: where a
/// `ws://` listener beside `wss://` is looked for.
const PLAIN_TWINS: [(u16, u16); 2] = [(443, 80), (8443, 8080)];

/// The legacy versions tried: TLS 1.0 and 1.1 (wire versions).
const LEGACY_VERSIONS: [(u16, &str); 2] = [(0x0301, "TLS 1.0"), (0x0302, "TLS 1.1")];

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    if !scan.budget.target().tls {
        scan.report.skip("tls", "the target is ws://: give its wss:// URL to check TLS");
        return Ok(());
    }
    certificate(scan).await?;
    for (version, name) in LEGACY_VERSIONS {
        let mut tcp = scan.budget.dial_tcp().await?;
        let hello = client_hello(version, &scan.budget.target().host);
        scan.budget.spend(hello.len())?;
        if tcp.write_all(&hello).await.is_ok() && server_hello_version(&mut tcp).await == Some(version) {
            scan.found(&LEGACY, &format!("sent a {name} ClientHello; got a {name} ServerHello"));
        }
    }
    let path = scan.path();
    let answer = scan.budget.get(&path).await?;
    let hsts = answer.header("strict-transport-security").unwrap_or_default();
    let max_age = hsts
        .split(';')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim_matches('"').parse::<u64>().ok())
        .unwrap_or(0);
    if answer.status != 0 && max_age == 0 {
        let got = if hsts.is_empty() { "no Strict-Transport-Security header".to_owned() } else { format!("{hsts:?}") };
        scan.found(&HSTS, &format!("GET {path} over TLS; got {} with {got}", answer.status));
    }
    plaintext(scan).await
}

/// One handshake that records the certificate's verification error (and
/// goes on, so the other checks can say what they find).
async fn certificate(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let inner = WebPkiServerVerifier::builder(Arc::new(scan.budget.roots()))
        .build()
        .map_err(|e| ScanError::Usage(format!("TLS roots: {e}")))?;
    let verifier = Arc::new(Recording { inner, error: Mutex::new(None) });
    let config =
        ClientConfig::builder().dangerous().with_custom_certificate_verifier(verifier.clone()).with_no_client_auth();
    let tcp = scan.budget.dial_tcp().await?;
    if let Err(e) = scan.budget.tls_over(tcp, config).await {
        // No TLS 1.2 or 1.3 at all: the legacy probes still say what it speaks.
        scan.report.skip(CERTIFICATE.id, format!("no TLS 1.2 or 1.3 handshake completes: {e}"));
        return Ok(());
    }
    let error = verifier.error.lock().ok().and_then(|mut e| e.take());
    if let Some(error) = error {
        let host = scan.budget.target().host.clone();
        scan.found(&CERTIFICATE, &format!("a TLS handshake with {host}: the certificate does not verify: {error}"));
    }
    Ok(())
}

/// The upgrade, in plain text, on the TLS port ([`PLAINTEXT`]) and on its
/// conventional twin ([`PLAIN_PORT`]): a 101 is the finding.
async fn plaintext(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let path = scan.path();
    let port = scan.budget.target().port;
    if plain_upgrade(scan, port).await?.status == 101 {
        scan.found(&PLAINTEXT, &format!("sent GET {path} as plain text (ws://) to port {port}; got 101"));
    }
    let Some(twin) = PLAIN_TWINS.iter().find(|(tls, _)| *tls == port).map(|(_, plain)| *plain) else {
        let why = format!("port {port} has no conventional plain-text twin (443: 80, 8443: 8080)");
        scan.report.skip(PLAIN_PORT.id, why);
        return Ok(());
    };
    // Nothing listening there is the right answer, not a lost target.
    match plain_upgrade(scan, twin).await {
        Ok(answer) if answer.status == 101 => {
            let evidence =
                format!("sent GET {path} as plain text (ws://) to port {twin}, beside wss:// on {port}; got 101");
            scan.found(&PLAIN_PORT, &evidence);
            Ok(())
        }
        Ok(_) | Err(ScanError::Connect(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The upgrade with the credentials (and `--origin`), in plain text, to
/// `port` of the target's host: what came back.
async fn plain_upgrade(scan: &mut Scan<'_>, port: u16) -> Result<Answer, ScanError> {
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let request = scan.budget.upgrade_request(&scan.path(), &headers);
    scan.budget.spend(request.len())?;
    let mut io: Box<dyn Io> = Box::new(scan.budget.dial_tcp_port(port).await?);
    if !matches!(timeout(READ_TIMEOUT, io.write_all(request.as_bytes())).await, Ok(Ok(()))) {
        return Ok(Answer::default());
    }
    Ok(read_head(&mut io).await)
}

/// Verifies as rustls would, records the error, and lets the handshake on.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    error: Mutex<Option<String>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if let Err(e) = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            && let Ok(mut slot) = self.error.lock()
        {
            *slot = Some(e.to_string());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A ClientHello offering only `version` (no TLS 1.3 extension), with the
/// cipher suites TLS 1.0 and 1.1 servers speak, SNI for a host name.
fn client_hello(version: u16, host: &str) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x5a; 32]); // random: any will do
    body.push(0); // no session id
    let suites: [u16; 7] = [0xc014, 0xc013, 0xc00a, 0xc009, 0x0035, 0x002f, 0x000a];
    body.extend_from_slice(&u16_len(suites.len() * 2));
    suites.iter().for_each(|s| body.extend_from_slice(&s.to_be_bytes()));
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut extensions = Vec::new();
    if host.parse::<std::net::IpAddr>().is_err() {
        let name = host.as_bytes();
        let mut list = vec![0]; // host_name
        list.extend_from_slice(&u16_len(name.len()));
        list.extend_from_slice(name);
        let mut sni = u16_len(list.len()).to_vec();
        sni.extend_from_slice(&list);
        extensions.extend_from_slice(&[0, 0]); // server_name
        extensions.extend_from_slice(&u16_len(sni.len()));
        extensions.extend_from_slice(&sni);
    }
    // supported_groups: x25519, secp256r1, secp384r1; ec_point_formats: uncompressed.
    extensions.extend_from_slice(&[0, 10, 0, 8, 0, 6, 0, 29, 0, 23, 0, 24]);
    extensions.extend_from_slice(&[0, 11, 0, 2, 1, 0]);
    body.extend_from_slice(&u16_len(extensions.len()));
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 framing
    record.extend_from_slice(&u16_len(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

fn u16_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

/// The version of the ServerHello that answers, or `None` (an alert, a
/// close, anything else).
async fn server_hello_version(tcp: &mut TcpStream) -> Option<u16> {
    let mut head = [0u8; 5 + 6];
    timeout(READ_TIMEOUT, tcp.read_exact(&mut head)).await.ok()?.ok()?;
    parse_server_hello(&head)
}

/// A record header and the first 6 bytes of its handshake message: the
/// ServerHello's `server_version`.
fn parse_server_hello(head: &[u8; 11]) -> Option<u16> {
    // Record type handshake (22), message type server_hello (2), then a
    // 3-byte length, then the version.
    (head[0] == 0x16 && head[5] == 2).then(|| u16::from_be_bytes([head[9], head[10]]))
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let target = url::Url::parse(&options.target).ok();
    if target.is_some_and(|u| u.scheme() != "wss") {
        return vec!["(skipped: the target is ws://)".to_owned()];
    }
    vec![
        format!("a TLS handshake; a certificate that does not verify is {}", CERTIFICATE.id),
        format!("a TLS 1.0 and a TLS 1.1 ClientHello; a ServerHello of that version is {}", LEGACY.id),
        format!("GET the socket's path over TLS; no Strict-Transport-Security is {}", HSTS.id),
        format!("the upgrade in plain text on the TLS port; a 101 is {}", PLAINTEXT.id),
        format!("the same on the port's plain-text twin (443: 80, 8443: 8080); a 101 is {}", PLAIN_PORT.id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_hello_is_well_formed() {
        let hello = client_hello(0x0302, "chat.example.com");
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "client_hello");
        let body_len = usize::from(hello[7]) << 8 | usize::from(hello[8]);
        assert_eq!(body_len, hello.len() - 9);
        assert_eq!(&hello[9..11], &[0x03, 0x02]);
        assert!(hello.windows(16).any(|w| w == b"chat.example.com"));
        assert!(!client_hello(0x0301, "127.0.0.1").windows(9).any(|w| w == b"127.0.0.1"), "no SNI for an address");
    }

    #[test]
    fn only_a_server_hello_has_a_version() {
        let hello = [0x16, 3, 1, 0, 80, 2, 0, 0, 76, 3, 1];
        assert_eq!(parse_server_hello(&hello), Some(0x0301));
        let alert = [0x15, 3, 1, 0, 2, 2, 70, 0, 0, 0, 0];
        assert_eq!(parse_server_hello(&alert), None);
    }
}
