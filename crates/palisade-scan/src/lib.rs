//! `palisade scan`: a security audit of any WebSocket endpoint (issue 21;
//! docs/SCAN.md).
//!
//! [`scan`] opens real connections to a target, one probe at a time, and
//! records a [`Finding`] for each weakness: a certificate or TLS version it
//! should not serve, a plain-text listener beside its TLS one, an Origin it
//! should refuse and accepts, a handshake without (or with a forged or
//! expired) credential that it accepts, a public `/metrics`, a malformed or
//! hostile message it relays or dies of, floods of frames, headers, messages
//! or connections it never bounds, a second identity reading a room it has
//! no right to, a cookie session publishing without its CSRF token, a
//! message taken twice, a connection that outlives its token. Each check is
//! in [`checks`]; every socket goes through [`net::Budget`], which paces
//! probes and holds the hard caps (floods run against loopback only, unless
//! the operator owns the target). [`output`] renders the [`Report`] as text,
//! JSON or SARIF, and [`Report::exit_code`] is the CI gate. The `palisade
//! scan` subcommand (crates/palisade-server/src/cli/scan.rs) only parses
//! flags and calls [`scan`].

#![forbid(unsafe_code)]

pub mod checks;
pub mod finding;
pub mod net;
pub mod output;

pub use checks::{Check, RULES};
pub use finding::{Finding, Report, Rule, Severity, redact};
pub use output::{Format, render};

/// Why a scan could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A bad flag or target.
    #[error("{0}")]
    Usage(String),
    /// The target could not be reached.
    #[error("cannot reach the target: {0}")]
    Connect(String),
    /// A hard cap was reached (connections or bytes).
    #[error("hard cap reached: {0}")]
    Cap(String),
}

impl ScanError {
    /// Exit code: always 2 (usage or connection), never confused with 1
    /// (findings).
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// What to scan and with which credentials (the `palisade scan` flags).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `ws[s]://host[:port]/path`.
    pub target: String,
    /// `--token`: a bearer token, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// `--token-cmd`: a shell command printing a token, run each time one
    /// is needed.
    pub token_cmd: Option<String>,
    /// `--header K:V`, sent on every handshake.
    pub headers: Vec<(String, String)>,
    /// `--cookie`, sent as the `Cookie` header on every handshake.
    pub cookie: Option<String>,
    /// `--origin`: the origin the target allows (`https://app.example.com`).
    pub origin: Option<String>,
    /// `--subprotocol`, offered on every handshake.
    pub subprotocol: Option<String>,
    /// `--checks`: which checks run (empty: all of them).
    pub checks: Vec<Check>,
    /// `--i-own-this-target`: floods are allowed off loopback.
    pub i_own_this_target: bool,
    /// `--token2`: the second identity's bearer token (`authz`).
    pub token2: Option<String>,
    /// `--token2-cmd`: a shell command printing the second identity's token.
    pub token2_cmd: Option<String>,
    /// `--room`: a room the first identity may join and publish in, and the
    /// second may not (`authz`, `csrf`).
    pub room: Option<String>,
    /// `--event`: the event name of the messages sent to `--room`
    /// (default [`DEFAULT_EVENT`]).
    pub event: Option<String>,
    /// `--data`: the `data` of the messages sent to `--room`, JSON in which
    /// [`MARK`] is replaced by a unique string (default [`DEFAULT_DATA`]).
    pub data: Option<String>,
    /// `--replay-event ROOM:EVENT`: where and what the `replay` check sends
    /// twice.
    pub replay_event: Option<(String, String)>,
    /// `--replay-data`: the `data` of the replayed message (default: `--data`).
    pub replay_data: Option<String>,
    /// `--expired-token`: a token whose `exp` has passed (`handshake`).
    pub expired_token: Option<String>,
    /// `--ca-cert`: a PEM file of CA certificates trusted for a `wss://`
    /// target, besides the Mozilla roots.
    pub ca_cert: Option<String>,
}

/// The event name sent to `--room` without `--event` (Palisade's default
/// policy's chat event).
pub const DEFAULT_EVENT: &str = "chat.message";
/// In `--data`, replaced by a string unique to each message sent, so the
/// scanner knows its own message when another connection receives it.
pub const MARK: &str = "@mark@";
/// `--data` when not given.
pub const DEFAULT_DATA: &str = r#"{"content":"@mark@"}"#;

/// Parses `--replay-event ROOM:EVENT` (split at the last `:`: room names
/// may hold colons, event names do not).
pub fn parse_replay_event(value: &str) -> Result<(String, String), ScanError> {
    match value.rsplit_once(':') {
        Some((room, event)) if !room.is_empty() && !event.is_empty() => Ok((room.to_owned(), event.to_owned())),
        _ => Err(ScanError::Usage(format!("--replay-event {value}: want ROOM:EVENT"))),
    }
}

impl Options {
    /// The checks to run, in their fixed order.
    pub fn selected(&self) -> Vec<Check> {
        Check::ALL.into_iter().filter(|c| self.checks.is_empty() || self.checks.contains(c)).collect()
    }
}

/// Runs the selected checks against the target.
pub async fn scan(options: &Options) -> Result<Report, ScanError> {
    checks::run(options).await
}

/// `--dry-run`: every probe the scan would send, one per line; sends
/// nothing.
pub fn dry_run(options: &Options) -> Result<String, ScanError> {
    checks::plan(options)
}
