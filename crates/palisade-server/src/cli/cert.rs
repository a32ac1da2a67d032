//! `palisade cert --self-signed`: a certificate and key for local WSS
//! testing (docs/OPERATIONS.md, "A certificate for local testing"). The
//! certificate is its own issuer, so no CA key exists to be stolen; a
//! browser or client trusts it only once told to.

use std::path::PathBuf;

use clap::Args;
use rcgen::{CertificateParams, KeyPair};

use super::{CliError, write_private};

/// `palisade cert`
#[derive(Debug, Clone, Args)]
pub struct CertArgs {
    /// Make a self-signed certificate (the only kind this command makes).
    #[arg(long, required = true)]
    pub self_signed: bool,
    /// A host name or IP address the certificate is for; repeat for more.
    #[arg(long = "host", value_name = "HOST", default_value = "localhost")]
    pub hosts: Vec<String>,
    /// Directory for `cert.pem` and `key.pem` (created if missing).
    #[arg(long, value_name = "DIR", default_value = "tls")]
    pub out: PathBuf,
    /// Days the certificate is valid for.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=825))]
    pub days: u16,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Writes `cert.pem` (0600 like the key: both are the pair's) and
/// `key.pem`, then says on stderr how to use and trust them.
pub fn cert(args: &CertArgs) -> Result<(), CliError> {
    let failed = |e: rcgen::Error| CliError::Failed(format!("cannot make the certificate: {e}"));
    let mut params = CertificateParams::new(args.hosts.clone()).map_err(failed)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", args.out.display())))?;
    let (cert_path, key_path) = (args.out.join("cert.pem"), args.out.join("key.pem"));
    write_private(&key_path, key.serialize_pem().as_bytes(), args.force)?;
    write_private(&cert_path, cert.pem().as_bytes(), args.force)?;
    eprintln!(
        "wrote {} and {} for {} (self-signed, valid {} days)\n\
         use them with:\n  [server.tls]\n  cert = \"{}\"\n  key = \"{}\"\n\
         a client must be told to trust {} (see docs/OPERATIONS.md)",
        cert_path.display(),
        key_path.display(),
        args.hosts.join(", "),
        args.days,
        cert_path.display(),
        key_path.display(),
        cert_path.display(),
    );
    Ok(())
}
