//! `palisade scan`: the flags of the security audit; the audit itself is
//! the palisade-scan crate (docs/SCAN.md).

use clap::Args;
use palisade_scan::{Check, Format, Options, ScanError, Severity};

/// `palisade scan`
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// The endpoint: ws[s]://host[:port]/path.
    pub target: String,
    /// A bearer token to authenticate with (shown redacted in findings).
    #[arg(long)]
    pub token: Option<String>,
    /// A command printing a token on stdout, run each time one is needed.
    #[arg(long, conflicts_with = "token")]
    pub token_cmd: Option<String>,
    /// A header sent on every handshake, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// A `Cookie` header value sent on every handshake.
    #[arg(long)]
    pub cookie: Option<String>,
    /// The origin the target allows (enables the suffix, prefix, scheme and
    /// port variants of the origin check).
    #[arg(long)]
    pub origin: Option<String>,
    /// A subprotocol offered on every handshake.
    #[arg(long)]
    pub subprotocol: Option<String>,
    /// A second identity's bearer token, for the authz check (shown
    /// redacted in findings).
    #[arg(long)]
    pub token2: Option<String>,
    /// A command printing the second identity's token on stdout.
    #[arg(long, conflicts_with = "token2")]
    pub token2_cmd: Option<String>,
    /// A room the first identity may join and publish in and the second
    /// may not (authz, csrf).
    #[arg(long)]
    pub room: Option<String>,
    /// The event name of the messages sent to --room (default chat.message).
    #[arg(long)]
    pub event: Option<String>,
    /// The `data` of the messages sent to --room: JSON in which @mark@ is
    /// replaced by a unique string (default {"content":"@mark@"}).
    #[arg(long)]
    pub data: Option<String>,
    /// ROOM:EVENT: an event that must not be accepted twice (replay check).
    #[arg(long, value_parser = parse_replay_event)]
    pub replay_event: Option<(String, String)>,
    /// The `data` of the replayed message (default: --data).
    #[arg(long)]
    pub replay_data: Option<String>,
    /// A token whose exp has passed, for the handshake check.
    #[arg(long)]
    pub expired_token: Option<String>,
    /// A PEM file of CA certificates to trust for a wss:// target, besides
    /// the Mozilla roots (a private CA, a test certificate).
    #[arg(long)]
    pub ca_cert: Option<String>,
    /// Comma-separated checks to run (default: all of tls, origin,
    /// handshake, exposure, message, transport, authz, csrf, replay, limits).
    #[arg(long, value_delimiter = ',', value_parser = parse_check)]
    pub checks: Vec<Check>,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, default_value = "medium", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Output: text, json or sarif.
    #[arg(long, default_value = "text", value_parser = parse_format)]
    pub format: Format,
    /// List what would be sent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow floods against a host that is not loopback.
    #[arg(long)]
    pub i_own_this_target: bool,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once(':').ok_or("want Name: value")?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

fn parse_replay_event(s: &str) -> Result<(String, String), String> {
    palisade_scan::parse_replay_event(s).map_err(|e| e.to_string())
}

fn parse_check(s: &str) -> Result<Check, String> {
    Check::parse(s.trim()).map_err(|e| e.to_string())
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| "want info, low, medium, high or critical".to_owned())
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| "want text, json or sarif".to_owned())
}

/// Runs the scan (or the dry run): what to print on stdout and the exit
/// code, or an error that is exit 2.
pub fn scan(args: ScanArgs) -> Result<(String, u8), ScanError> {
    let options = Options {
        target: args.target,
        token: args.token,
        token_cmd: args.token_cmd,
        headers: args.headers,
        cookie: args.cookie,
        origin: args.origin,
        subprotocol: args.subprotocol,
        checks: args.checks,
        i_own_this_target: args.i_own_this_target,
        token2: args.token2,
        token2_cmd: args.token2_cmd,
        room: args.room,
        event: args.event,
        data: args.data,
        replay_event: args.replay_event,
        replay_data: args.replay_data,
        expired_token: args.expired_token,
        ca_cert: args.ca_cert,
    };
    if args.dry_run {
        return Ok((palisade_scan::dry_run(&options)?, 0));
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| ScanError::Usage(format!("cannot start the runtime: {e}")))?;
    let report = rt.block_on(palisade_scan::scan(&options))?;
    Ok((palisade_scan::render(&report, args.format), report.exit_code(args.fail_on)))
}
