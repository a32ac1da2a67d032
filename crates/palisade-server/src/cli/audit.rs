//! `palisade audit verify|tail|export`: reads the audit log in
//! `<data_dir>/palisade.db` (docs/CONFIG.md §3.5). Prints no secret: the
//! checkpoint key is only used, and records never hold one. What a record
//! becomes in an export is `core::audit::siem`'s, as for the SIEM stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::gateway::Store;
use clap::{Args, Subcommand, ValueEnum};
use palisade_core::Timestamp;
use palisade_core::audit::siem::{ecs, record_json, rfc3339};
use palisade_core::audit::{Checkpoint, Hash, Kind, Record, Verifier, hex, retention_anchor};
use palisade_core::log::Clipped;

use super::{CliError, ConfigArgs, failed, open_existing};
use crate::config::{AuditKey, Config, ConfigError, Env};

/// Records read from the store at a time, so a log of any length is
/// walked in bounded memory.
const PAGE: usize = 1000;

/// `palisade audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; name the first broken record (exit 1). With
    /// --checkpoint or --checkpoints, also prove the log still reaches
    /// those checkpoints.
    Verify(VerifyArgs),
    /// Print the newest records.
    Tail(TailArgs),
    /// Print records as JSON lines on stdout (or --out FILE): the stored
    /// fields, or Elastic Common Schema documents for bulk import.
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
    /// A file of checkpoints, one per line (`audit.checkpoint_file`): each
    /// must be signed, none may have a `seq` below the line before, and
    /// the log must still reach every one it has not pruned. Without it,
    /// the configured `audit.checkpoint_file` is checked if it exists.
    #[arg(long, value_name = "FILE")]
    pub checkpoints: Option<PathBuf>,
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
    /// Write to this file (created, or truncated) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line: every stored field.
    Jsonl,
    /// One Elastic Common Schema document per line (docs/OPERATIONS.md,
    /// "Sending the audit trail to a SIEM").
    Ecs,
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
            let mut file = match &args.out {
                Some(path) => Some(std::io::BufWriter::new(create_private(path)?)),
                None => None,
            };
            let out: &mut dyn Write = match &mut file {
                Some(file) => file,
                None => out,
            };
            export(&*store, &args, out)?;
            out.flush().map_err(write_failed)
        }
    }
}

/// `path` created (mode 0600 on Unix: the records name users and
/// addresses) or truncated.
fn create_private(path: &std::path::Path) -> Result<std::fs::File, CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| CliError::Failed(format!("--out {}: {e}", path.display())))
}

/// Writes every record `args` select, read in pages, one line each.
fn export(store: &dyn Store, args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let since = args.since.map_or(Timestamp::from_millis(0), Timestamp::from);
    let mut from = 1;
    loop {
        let page = store.since(since, args.kind, from, PAGE).map_err(failed)?;
        for record in &page {
            let doc = match args.format {
                Format::Jsonl => record_json(record),
                Format::Ecs => ecs(record),
            };
            writeln!(out, "{doc}").map_err(|e| CliError::Failed(format!("cannot write the output: {e}")))?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = last.seq.saturating_add(1),
            _ => return Ok(()),
        }
    }
}

/// Walks the whole chain, from its retention anchor if the oldest records
/// were pruned, and checks the checkpoints given.
fn verify(args: &VerifyArgs, env: &dyn Env) -> Result<String, CliError> {
    let config = args.config.load(env)?;
    let key = || -> Result<AuditKey, CliError> {
        let dev = args.dev || args.config.config.is_none();
        let key = config.audit.key(&config.base_dir, dev.then_some(config.server.data_dir.as_path()))?;
        Ok(key.ok_or_else(|| {
            ConfigError::invalid(
                "audit.checkpoint_key",
                "missing: checking a checkpoint needs the key the server signed with",
            )
        })?)
    };
    let mut checkpoints = Vec::new();
    if let Some(text) = &args.checkpoint {
        let checkpoint = Checkpoint::parse(text).map_err(|e| CliError::Failed(format!("--checkpoint: {e}")))?;
        checkpoints.push(("--checkpoint".to_owned(), checkpoint));
    }
    let file = checkpoint_file(args, &config);
    if let Some(path) = &file {
        checkpoints.extend(read_checkpoints(path)?);
    }
    if !checkpoints.is_empty() {
        let key = key()?;
        for (source, checkpoint) in &checkpoints {
            if !checkpoint.is_signed_by(key.bytes()) {
                return Err(CliError::Failed(format!(
                    "{source}: checkpoint seq={} is not signed by the configured audit.checkpoint_key: \
                     forged, altered, or another key",
                    checkpoint.seq
                )));
            }
        }
    }
    let store = open_existing(&config)?;
    let wanted: BTreeMap<u64, Hash> = checkpoints.iter().map(|(_, c)| (c.seq, c.hash)).collect();
    let walked = walk(&*store, &wanted)?;
    let (head, first) = (walked.head, walked.first);
    let mut out = format!(
        "audit log verified: {} records, chain intact; head seq={} hash={}\n",
        head.0.saturating_sub(first.0),
        head.0,
        hex(&head.1)
    );
    if first.0 > 0 {
        let key = key()?;
        let anchored = walked.anchors.iter().any(|a| (a.seq, a.hash) == first && a.is_signed_by(key.bytes()));
        if !anchored {
            return Err(CliError::Failed(format!(
                "the log starts after seq={}, and no retention record signed by the audit.checkpoint_key \
                 anchors it there: records were removed from its start",
                first.0
            )));
        }
        out.push_str(&format!(
            "records up to seq={} were removed by audit.retention; a signed checkpoint anchors the rest\n",
            first.0
        ));
    }
    for (source, checkpoint) in &checkpoints {
        let seq = checkpoint.seq;
        if seq <= first.0 {
            // Pruned: the signed anchor covers it.
            continue;
        }
        match walked.reached.get(&seq) {
            Some(hash) if *hash == checkpoint.hash => {}
            Some(_) => {
                return Err(CliError::Failed(format!(
                    "{source}: checkpoint seq={seq}: the record there has another hash: \
                     the log was rewritten from there on"
                )));
            }
            None => {
                return Err(CliError::Failed(format!(
                    "{source}: checkpoint seq={seq}: the log ends at seq={}: records after it were removed",
                    head.0
                )));
            }
        }
    }
    match (&args.checkpoint, &file) {
        (Some(_), _) if checkpoints.len() == 1 => {
            out.push_str(&format!(
                "checkpoint seq={} verified: signed, and the log still reaches it\n",
                checkpoints[0].1.seq
            ));
        }
        (_, Some(path)) => out.push_str(&format!(
            "{} checkpoints verified: signed, in order, and the log still reaches them ({})\n",
            checkpoints.len(),
            path.display()
        )),
        _ if !checkpoints.is_empty() => out.push_str("checkpoint verified: signed, and the log still reaches it\n"),
        _ => {}
    }
    Ok(out)
}

/// The checkpoint file to check: `--checkpoints`, else the configured
/// `audit.checkpoint_file` if the server has written it.
fn checkpoint_file(args: &VerifyArgs, config: &Config) -> Option<PathBuf> {
    args.checkpoints.clone().or_else(|| config.audit.checkpoint_path(&config.base_dir).filter(|path| path.exists()))
}

/// Every checkpoint in `path`, named by line, with `seq` never decreasing:
/// a server that signed a head below one it signed before was writing on a
/// chain someone cut and rewrote.
fn read_checkpoints(path: &std::path::Path) -> Result<Vec<(String, Checkpoint)>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Failed(format!("--checkpoints {}: {e}", path.display())))?;
    let mut out: Vec<(String, Checkpoint)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let source = format!("{} line {}", path.display(), n + 1);
        let checkpoint = Checkpoint::parse(line).map_err(|e| CliError::Failed(format!("{source}: {e}")))?;
        if let Some((before, last)) = out.last()
            && checkpoint.seq < last.seq
        {
            return Err(CliError::Failed(format!(
                "{source}: checkpoint seq={} comes after seq={} ({before}): the server signed a chain \
                 that was cut and rewritten",
                checkpoint.seq, last.seq
            )));
        }
        out.push((source, checkpoint));
    }
    Ok(out)
}

/// What [`walk`] found.
struct Walked {
    /// The last record: `seq` (0 for none) and hash.
    head: (u64, Hash),
    /// Where the kept records start: the first one's predecessor (`(0,
    /// GENESIS)` when nothing was pruned).
    first: (u64, Hash),
    /// The hash at each wanted `seq` the chain reaches.
    reached: BTreeMap<u64, Hash>,
    /// The anchors retention records carry.
    anchors: Vec<Checkpoint>,
}

/// Verifies every record in pages, from the first kept one.
fn walk(store: &dyn Store, wanted: &BTreeMap<u64, Hash>) -> Result<Walked, CliError> {
    let mut verifier: Option<Verifier> = None;
    let mut walked = Walked {
        head: (0, palisade_core::audit::GENESIS),
        first: (0, palisade_core::audit::GENESIS),
        reached: BTreeMap::new(),
        anchors: Vec::new(),
    };
    let mut from = 1;
    loop {
        let page = store.range(from, PAGE).map_err(failed)?;
        for record in &page {
            let verifier = verifier.get_or_insert_with(|| {
                // A log that starts at 1 starts at GENESIS, whatever its
                // first record claims.
                if record.seq > 1 {
                    walked.first = (record.seq - 1, record.prev_hash);
                }
                Verifier::after(walked.first.0, walked.first.1)
            });
            verifier.push(record).map_err(|e| CliError::Failed(e.to_string()))?;
            if wanted.contains_key(&record.seq) {
                walked.reached.insert(record.seq, record.hash);
            }
            walked.anchors.extend(retention_anchor(record));
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = last.seq.saturating_add(1),
            _ => {
                walked.head = verifier.map_or(walked.head, |v| v.head());
                return Ok(walked);
            }
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
