//! `palisade audit verify|tail|export`: reads the audit log in
//! `<data_dir>/palisade.db` (docs/CONFIG.md §3.5). Prints no secret: the
//! checkpoint key is only used, and records never hold one.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use palisade_core::Timestamp;
use palisade_core::audit::{Checkpoint, Hash, Kind, Record, Verifier, hex};
use palisade_core::log::Clipped;
use palisade_core::store::AuditStore as _;
use palisade_store::Sqlite;

use super::{CliError, ConfigArgs, failed, open_existing};
use crate::config::{ConfigError, Env};

/// Records read from the store at a time, so a log of any length is
/// walked in bounded memory.
const PAGE: usize = 1000;

/// `palisade audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; name the first broken record (exit 1). With
    /// --checkpoint, also prove the log still reaches that checkpoint.
    Verify(VerifyArgs),
    /// Print the newest records.
    Tail(TailArgs),
    /// Print records as JSON lines on stdout.
    Export(ExportArgs),
}

/// `palisade audit verify`
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Config source: where the data directory and the checkpoint key are.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Use the dev profile's checkpoint key (`<data_dir>/audit-key`) when
    /// the config has none, as `serve --dev` does.
    #[arg(long)]
    pub dev: bool,
    /// A checkpoint the server logged: "seq=N hash=H mac=M" (the end of
    /// an `audit checkpoint` log line will do).
    #[arg(long)]
    pub checkpoint: Option<String>,
}

/// `palisade audit tail`
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// How many records.
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub lines: u64,
}

/// `palisade audit export`
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only records at or after this instant (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z).
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub since: Option<std::time::SystemTime>,
    /// Only records of this kind (e.g. auth_failure, origin, ban,
    /// revocation, refresh_reuse; docs/CONFIG.md §3.5 lists them).
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
}

fn parse_kind(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| format!("one of: {}", Kind::names().collect::<Vec<_>>().join(", ")))
}

/// Runs a `palisade audit` command, writing its output to `out`.
pub fn audit(command: AuditCommand, env: &dyn Env, out: &mut dyn Write) -> Result<(), CliError> {
    let write_failed = |e: std::io::Error| CliError::Failed(format!("cannot write the output: {e}"));
    match command {
        AuditCommand::Verify(args) => {
            let text = verify(&args, env)?;
            out.write_all(text.as_bytes()).map_err(write_failed)
        }
        AuditCommand::Tail(args) => {
            let store = open_existing(&args.config.load(env)?)?;
            let (last, _) = store.head().map_err(failed)?.unwrap_or_default();
            let from = last.saturating_sub(args.lines).saturating_add(1);
            let records = store.range(from, usize::try_from(args.lines).unwrap_or(usize::MAX)).map_err(failed)?;
            if records.is_empty() {
                return out.write_all(b"no audit records\n").map_err(write_failed);
            }
            for record in &records {
                writeln!(out, "{}", line(record)).map_err(write_failed)?;
            }
            Ok(())
        }
        AuditCommand::Export(args) => {
            let store = open_existing(&args.config.load(env)?)?;
            let since = args.since.map_or(Timestamp::from_millis(0), Timestamp::from);
            let mut from = 1;
            loop {
                let page = store.since(since, args.kind, from, PAGE).map_err(failed)?;
                for record in &page {
                    writeln!(out, "{}", json(record)).map_err(write_failed)?;
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => from = last.seq.saturating_add(1),
                    _ => return Ok(()),
                }
            }
        }
    }
}

/// Walks the whole chain (and checks the checkpoint, if given).
fn verify(args: &VerifyArgs, env: &dyn Env) -> Result<String, CliError> {
    let config = args.config.load(env)?;
    let checkpoint = match &args.checkpoint {
        None => None,
        Some(text) => {
            let checkpoint = Checkpoint::parse(text).map_err(|e| CliError::Failed(format!("--checkpoint: {e}")))?;
            let dev = args.dev || args.config.config.is_none();
            let key = config.audit.key(&config.base_dir, dev.then_some(config.server.data_dir.as_path()))?;
            let key = key.ok_or_else(|| {
                ConfigError::invalid(
                    "audit.checkpoint_key",
                    "missing: --checkpoint needs the key the server signed with",
                )
            })?;
            if !checkpoint.is_signed_by(key.bytes()) {
                return Err(CliError::Failed(format!(
                    "checkpoint seq={} is not signed by the configured audit.checkpoint_key: forged, altered, or another key",
                    checkpoint.seq
                )));
            }
            Some(checkpoint)
        }
    };
    let store = open_existing(&config)?;
    let (head, reached) = walk(&store, checkpoint.map(|c| c.seq))?;
    let mut out =
        format!("audit log verified: {} records, chain intact; head seq={} hash={}\n", head.0, head.0, hex(&head.1));
    if let Some(checkpoint) = checkpoint {
        match reached {
            Some(hash) if hash == checkpoint.hash => {
                out.push_str(&format!(
                    "checkpoint seq={} verified: signed, and the log still reaches it\n",
                    checkpoint.seq
                ));
            }
            Some(_) => {
                return Err(CliError::Failed(format!(
                    "checkpoint seq={}: the record there has another hash: the log was rewritten from there on",
                    checkpoint.seq
                )));
            }
            None => {
                return Err(CliError::Failed(format!(
                    "checkpoint seq={}: the log ends at seq={}: records after it were removed",
                    checkpoint.seq, head.0
                )));
            }
        }
    }
    Ok(out)
}

/// Verifies every record in pages; returns the head, and the hash at `at`
/// if the chain reaches it.
fn walk(store: &Sqlite, at: Option<u64>) -> Result<((u64, Hash), Option<Hash>), CliError> {
    let mut verifier = Verifier::new();
    let mut reached = None;
    let mut from = 1;
    loop {
        let page = store.range(from, PAGE).map_err(failed)?;
        for record in &page {
            verifier.push(record).map_err(|e| CliError::Failed(e.to_string()))?;
            if Some(record.seq) == at {
                reached = Some(record.hash);
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = last.seq.saturating_add(1),
            _ => return Ok((verifier.head(), reached)),
        }
    }
}

/// One record for a terminal: text that came from outside quoted and
/// escaped.
fn line(record: &Record) -> String {
    let e = &record.entry;
    let field = |name: &str, value: &Option<String>| {
        value.as_deref().map_or_else(String::new, |v| format!(" {name}={}", Clipped::new(v, 200)))
    };
    format!(
        "{} {} {} {}{}{}{} {}",
        record.seq,
        rfc3339(e.ts),
        e.severity,
        e.kind,
        field("ip", &e.ip),
        field("user", &e.user),
        field("session", &e.session),
        Clipped::new(&e.detail, 600),
    )
}

/// One record as a JSON object: every stored field, hashes in hex.
fn json(record: &Record) -> serde_json::Value {
    let e = &record.entry;
    serde_json::json!({
        "seq": record.seq,
        "ts": e.ts.as_millis(),
        "time": rfc3339(e.ts),
        "kind": e.kind.name(),
        "severity": e.severity.name(),
        "ip": e.ip,
        "user": e.user,
        "session": e.session,
        "detail": e.detail,
        "prev_hash": hex(&record.prev_hash),
        "hash": hex(&record.hash),
    })
}

/// RFC 3339 in UTC to the millisecond.
fn rfc3339(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t.as_millis().min(253_402_300_799_000)))
        .to_string()
}
