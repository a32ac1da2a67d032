//! The checks, in the order they run (docs/SCAN.md lists every id): each
//! module has its [`Rule`]s, a `run` that probes and records findings, and
//! a `plan` that says what `run` would send (`--dry-run`).

mod auth;
mod authz;
mod csrf;
mod expiry;
mod exposure;
mod frames;
mod handshake;
mod limits;
mod message;
mod origin;
mod replay;
mod talk;
mod tls;
mod transport;

use std::time::Duration;

use crate::finding::{Report, Rule, redact};
use crate::net::{Budget, Target, Ws};
use crate::{Options, ScanError};

/// One check (a `--checks` name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The certificate, legacy TLS versions, HSTS, plain text on the TLS
    /// port and on its plain twin (`wss://` targets).
    Tls,
    /// Origin variants an allowlist must refuse.
    Origin,
    /// Missing, garbage, `alg=none` and query-string credentials.
    Handshake,
    /// `/metrics`, admin paths, version banners, stack traces.
    Exposure,
    /// Malformed JSON and unknown event types.
    Message,
    /// An oversize frame and an unmasked client frame.
    Transport,
    /// A second identity in a room only the first may use.
    Authz,
    /// A cookie session publishing without its CSRF token.
    Csrf,
    /// The same message twice.
    Replay,
    /// Forged, foreign and expired tokens swapped in on a live connection,
    /// and a connection held past its token's `exp`.
    Auth,
    /// Message and connection floods, and whether a ban holds.
    Limits,
}

impl Check {
    /// Every check of this version, in the order they run.
    pub const ALL: [Self; 11] = [
        Self::Tls,
        Self::Origin,
        Self::Handshake,
        Self::Exposure,
        Self::Message,
        Self::Transport,
        Self::Authz,
        Self::Csrf,
        Self::Replay,
        Self::Auth,
        Self::Limits,
    ];

    /// The `--checks` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Origin => "origin",
            Self::Handshake => "handshake",
            Self::Exposure => "exposure",
            Self::Message => "message",
            Self::Transport => "transport",
            Self::Authz => "authz",
            Self::Csrf => "csrf",
            Self::Replay => "replay",
            Self::Auth => "auth",
            Self::Limits => "limits",
        }
    }

    /// Parses a `--checks` name; an unknown one is an error naming the
    /// known ones, never ignored.
    pub fn parse(name: &str) -> Result<Self, ScanError> {
        if let Some(c) = Self::ALL.into_iter().find(|c| c.name() == name) {
            return Ok(c);
        }
        let known = Self::ALL.map(Self::name).join(",");
        Err(ScanError::Usage(format!("unknown check {name} (available: {known})")))
    }
}

/// Every rule a scan can report, in check order.
pub const RULES: &[Rule] = &[
    tls::CERTIFICATE,
    tls::LEGACY,
    tls::HSTS,
    tls::PLAINTEXT,
    tls::PLAIN_PORT,
    origin::ABSENT,
    origin::ABSENT_COOKIE,
    origin::NULL,
    origin::FOREIGN,
    origin::SUFFIX,
    origin::PREFIX,
    origin::SCHEME,
    origin::PORT,
    handshake::NO_CREDENTIAL,
    handshake::GARBAGE,
    handshake::ALG_NONE,
    handshake::QUERY_TOKEN,
    handshake::EXPIRED,
    handshake::UNKNOWN_SUBPROTOCOL,
    handshake::HEADER_FLOOD,
    handshake::SLOWLORIS,
    exposure::METRICS,
    exposure::ADMIN,
    exposure::BANNER,
    exposure::SERVER_HEADER,
    exposure::VERBOSE_ERROR,
    message::DOWN,
    message::MALFORMED_RELAYED,
    message::MALFORMED_UNANSWERED,
    message::UNKNOWN_RELAYED,
    message::UNKNOWN_UNANSWERED,
    message::DEPTH_RELAYED,
    message::DEPTH_UNANSWERED,
    message::IDENTITY,
    message::XSS,
    transport::OVERSIZE,
    transport::UNMASKED,
    transport::UNMASKED_CODE,
    transport::FRAGMENT_FLOOD,
    transport::PING_FLOOD,
    transport::COMPRESSION_BOMB,
    authz::JOIN,
    authz::READ,
    authz::SEND,
    csrf::MISSING,
    csrf::WRONG,
    replay::DUPLICATE,
    auth::GARBAGE,
    auth::UNSIGNED,
    auth::OTHER_USER,
    auth::EXPIRED,
    expiry::OUTLIVES_EXP,
    limits::MESSAGE_FLOOD,
    limits::CONNECTION_FLOOD,
    limits::BAN,
];

/// Longest a `--token-cmd` may take.
const TOKEN_CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// One scan in progress: the options, the budget, what was found so far and
/// the secrets evidence must not show.
pub(crate) struct Scan<'a> {
    pub(crate) options: &'a Options,
    pub(crate) budget: Budget,
    pub(crate) report: Report,
    secrets: Vec<String>,
}

impl<'a> Scan<'a> {
    fn new(options: &'a Options, target: Target) -> Self {
        let mut secrets: Vec<String> = [&options.token, &options.cookie, &options.token2, &options.expired_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        secrets.extend(options.headers.iter().map(|(_, v)| v.clone()));
        secrets.retain(|s| !s.is_empty());
        let report = Report { target: target.url.clone(), ..Report::default() };
        Self { options, budget: Budget::new(target), report, secrets }
    }

    /// The path of the target, with its query.
    pub(crate) fn path(&self) -> String {
        self.budget.target().path.clone()
    }

    /// A token: `--token`, or a fresh one from `--token-cmd`, or none.
    pub(crate) async fn token(&mut self) -> Result<Option<String>, ScanError> {
        if let Some(token) = &self.options.token {
            return Ok(Some(token.clone()));
        }
        let Some(cmd) = self.options.token_cmd.clone() else { return Ok(None) };
        let token = run_token_cmd("--token-cmd", &cmd).await?;
        self.secrets.push(token.clone());
        Ok(Some(token))
    }

    /// The second identity's token: `--token2`, or a fresh one from
    /// `--token2-cmd`, or none.
    pub(crate) async fn token2(&mut self) -> Result<Option<String>, ScanError> {
        if let Some(token) = &self.options.token2 {
            return Ok(Some(token.clone()));
        }
        let Some(cmd) = self.options.token2_cmd.clone() else { return Ok(None) };
        let token = run_token_cmd("--token2-cmd", &cmd).await?;
        self.secrets.push(token.clone());
        Ok(Some(token))
    }

    /// The headers every probe with the user's credentials carries:
    /// `--header`s, `--cookie`, `--subprotocol` and the token.
    pub(crate) async fn credentials(&mut self) -> Result<Vec<(String, String)>, ScanError> {
        let token = self.token().await?;
        Ok(self.credentials_with(token.as_deref()))
    }

    /// [`Scan::credentials`] with `token` as the bearer token (one already
    /// minted, when the probe must know which).
    pub(crate) fn credentials_with(&self, token: Option<&str>) -> Vec<(String, String)> {
        let mut headers = self.options.headers.clone();
        if let Some(token) = token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        headers.extend(self.anonymous());
        if let Some(cookie) = &self.options.cookie {
            headers.push(("Cookie".into(), cookie.clone()));
        }
        headers
    }

    /// Headers that are not credentials (`--subprotocol`).
    pub(crate) fn anonymous(&self) -> Vec<(String, String)> {
        self.options.subprotocol.iter().map(|p| ("Sec-WebSocket-Protocol".to_owned(), p.clone())).collect()
    }

    /// Whether floods may run: the target is loopback, or
    /// `--i-own-this-target`.
    pub(crate) fn may_flood(&self) -> bool {
        self.budget.target().is_loopback() || self.options.i_own_this_target
    }

    /// `text` with every known secret redacted.
    pub(crate) fn redacted(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |t, s| t.replace(s.as_str(), &redact(s)))
    }

    /// Records `rule` as found, its evidence redacted.
    pub(crate) fn found(&mut self, rule: &Rule, evidence: &str) {
        let evidence = self.redacted(evidence);
        self.report.found(rule.found(evidence));
    }

    /// Opens a WebSocket with the user's credentials (and the allowed
    /// origin, when given): the socket, or why not.
    pub(crate) async fn open_authenticated(&mut self) -> Result<Result<Ws, String>, ScanError> {
        let token = self.token().await?;
        self.open_with(token.as_deref()).await
    }

    /// [`Scan::open_authenticated`] with `token` as the bearer token.
    pub(crate) async fn open_with(&mut self, token: Option<&str>) -> Result<Result<Ws, String>, ScanError> {
        let mut headers = self.credentials_with(token);
        if let Some(origin) = &self.options.origin {
            headers.push(("Origin".into(), origin.clone()));
        }
        let path = self.path();
        Ok(self.budget.open(&path, &headers).await?.map_err(|a| format!("the handshake got {}", a.status)))
    }
}

/// Runs `cmd` (the `flag`'s command) in a shell: the token it printed.
async fn run_token_cmd(flag: &str, cmd: &str) -> Result<String, ScanError> {
    let run = tokio::process::Command::new("sh").arg("-c").arg(cmd).kill_on_drop(true).output();
    let out = tokio::time::timeout(TOKEN_CMD_TIMEOUT, run)
        .await
        .map_err(|_| ScanError::Usage(format!("{flag} took longer than 10s")))?
        .map_err(|e| ScanError::Usage(format!("{flag}: {e}")))?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || token.is_empty() {
        return Err(ScanError::Usage(format!("{flag} exited with {} and printed no token", out.status)));
    }
    Ok(token)
}

/// The certificates in the PEM file `path` (`--ca-cert`).
fn ca_certs(path: &str) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, ScanError> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| ScanError::Usage(format!("--ca-cert {path}: {e}")))?;
    if certs.is_empty() {
        return Err(ScanError::Usage(format!("--ca-cert {path}: no certificate in it")));
    }
    Ok(certs)
}

/// `headers` as evidence shows them: `K: V, …` (redact before showing).
pub(crate) fn describe(headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        return "no extra headers".into();
    }
    headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

/// Runs every selected check, in order. The target must answer at all
/// (else exit 2); each check records its findings and skips.
pub(crate) async fn run(options: &Options) -> Result<Report, ScanError> {
    let target = Target::parse(&options.target)?;
    let mut scan = Scan::new(options, target);
    if let Some(path) = &options.ca_cert {
        scan.budget.trust(ca_certs(path)?);
    }
    // Reachability first: a target that does not accept TCP, or TLS, is
    // exit 2, never "no findings". With the tls check, TLS is its to judge:
    // a certificate that does not verify is a finding, then the end of the
    // scan.
    if options.selected().contains(&Check::Tls) {
        drop(scan.budget.dial_tcp().await?);
    } else {
        drop(scan.budget.dial().await?);
    }
    for check in options.selected() {
        // Each check family is its own client to a loopback target.
        let family = Check::ALL.iter().position(|c| *c == check).and_then(|i| u8::try_from(i + 1).ok());
        scan.budget.speak_from(family.unwrap_or(1));
        let outcome = match check {
            Check::Tls => tls::run(&mut scan).await,
            Check::Origin => origin::run(&mut scan).await,
            Check::Handshake => handshake::run(&mut scan).await,
            Check::Exposure => exposure::run(&mut scan).await,
            Check::Message => message::run(&mut scan).await,
            Check::Transport => transport::run(&mut scan).await,
            Check::Authz => authz::run(&mut scan).await,
            Check::Csrf => csrf::run(&mut scan).await,
            Check::Replay => replay::run(&mut scan).await,
            Check::Auth => auth::run(&mut scan).await,
            Check::Limits => limits::run(&mut scan).await,
        };
        match outcome {
            Ok(()) => {}
            // A cap, or a target that stopped answering (a finding of its
            // own, recorded by the check), ends the scan with what it found.
            Err(e @ (ScanError::Cap(_) | ScanError::Connect(_))) => {
                scan.report.skip(check.name(), format!("{e}; later checks not run"));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(scan.report)
}

/// `--dry-run`: what each selected check would send.
pub(crate) fn plan(options: &Options) -> Result<String, ScanError> {
    let target = Target::parse(&options.target)?;
    let mut given = Vec::new();
    if options.token.is_some() || options.token_cmd.is_some() {
        given.push("a bearer token");
    }
    if options.cookie.is_some() {
        given.push("a cookie");
    }
    if options.token2.is_some() || options.token2_cmd.is_some() {
        given.push("a second identity's token");
    }
    if options.expired_token.is_some() {
        given.push("an expired token");
    }
    let given = if given.is_empty() { "none".to_owned() } else { given.join(", ") };
    let mut out = format!("palisade scan {} (dry run: nothing is sent)\ncredentials: {given}\n", target.url);
    for check in options.selected() {
        let lines = match check {
            Check::Tls => tls::plan(options),
            Check::Origin => origin::plan(options),
            Check::Handshake => handshake::plan(options),
            Check::Exposure => exposure::plan(),
            Check::Message => message::plan(),
            Check::Transport => transport::plan(),
            Check::Authz => authz::plan(options),
            Check::Csrf => csrf::plan(options),
            Check::Replay => replay::plan(options),
            Check::Auth => auth::plan(options),
            Check::Limits => limits::plan(options),
        };
        for line in lines {
            out.push_str(&format!("{}: {line}\n", check.name()));
        }
    }
    let floods = if target.is_loopback() || options.i_own_this_target { "allowed" } else { "refused" };
    out.push_str(&format!(
        "caps: {} connections, {} bytes, one connection per {:?}; floods against this target: {floods}\n",
        crate::net::MAX_CONNECTIONS,
        crate::net::MAX_BYTES_SENT,
        crate::net::PROBE_INTERVAL,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_scan_md_names_every_rule_and_check() {
        let doc = include_str!("../../../../docs/SCAN.md");
        for rule in RULES {
            assert!(doc.contains(&format!("`{}`", rule.id)), "docs/SCAN.md does not name {}", rule.id);
            assert!(doc.contains(&format!("| `{}` | {} |", rule.id, rule.severity.name())), "{}: severity", rule.id);
        }
        for check in Check::ALL {
            assert!(doc.contains(&format!("### {}", check.name())), "docs/SCAN.md has no section {}", check.name());
        }
    }
}
