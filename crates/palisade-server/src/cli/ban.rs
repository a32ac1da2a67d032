//! `palisade ban list|add|remove`: the bans in `<data_dir>/palisade.db`,
//! changed directly in the database, so they work whether or not a server
//! is running on the same data directory.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand};
use palisade_core::Timestamp;
use palisade_core::guard::Subject;
use palisade_core::log::Clipped;
use palisade_core::store::BanAction;

use super::{CliError, ConfigArgs, audited, existing_store, failed, open_existing, open_store};
use crate::config::Env;
use crate::gateway::Store;
use crate::ops::{self, Via};
use crate::state::now;

/// `palisade ban …`
#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// List the bans in force (or, with --history, every ban and lift).
    List(ListArgs),
    /// Ban an address or a user.
    Add(AddArgs),
    /// Lift the ban on an address or a user.
    Remove(RemoveArgs),
}

/// `palisade ban list`
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Show the history of bans and lifts, newest first, instead.
    #[arg(long)]
    pub history: bool,
    /// At most this many lines.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

/// `palisade ban add`
#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `ip:ADDRESS` (or a bare address; IPv6 bans cover the /64) or
    /// `user:ID`.
    #[arg(value_name = "SUBJECT")]
    pub subject: Subject,
    /// How long: --for DURATION or --permanent.
    #[command(flatten)]
    pub length: BanLength,
    /// Why, for other operators (at most 200 characters).
    #[arg(long, value_parser = ops::parse_reason)]
    pub reason: Option<String>,
}

/// `--for DURATION` or `--permanent`, exactly one.
#[derive(Debug, Clone, Copy, Args)]
#[group(required = true, multiple = false)]
pub struct BanLength {
    /// Length, like "15m", "2h" or "30d".
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Until lifted.
    #[arg(long)]
    pub permanent: bool,
}

/// `palisade ban remove`
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `ip:ADDRESS` (or a bare address) or `user:ID`.
    #[arg(value_name = "SUBJECT")]
    pub subject: Subject,
}

/// Runs a `palisade ban` command; returns what to print on stdout.
pub fn ban(command: BanCommand, env: &dyn Env) -> Result<String, CliError> {
    run(command, env, now())
}

fn run(command: BanCommand, env: &dyn Env, now: Timestamp) -> Result<String, CliError> {
    match command {
        BanCommand::List(args) => {
            let store = existing_store(&args.config, env)?;
            let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
            if args.history { history(&*store, limit) } else { list(&*store, limit, now) }
        }
        BanCommand::Add(args) => add(args, env, now),
        BanCommand::Remove(args) => {
            let config = args.config.load(env)?;
            let store = open_existing(&config)?;
            if let (true, entry) = ops::lift(&*store, &args.subject, Via::Cli, now)? {
                let done = format!("lifted the ban on {}\n", args.subject);
                audited(&*store, &config, &done, entry)?;
                Ok(done)
            } else {
                Err(CliError::Failed(format!("no ban on {}", args.subject)))
            }
        }
    }
}

fn add(args: AddArgs, env: &dyn Env, now: Timestamp) -> Result<String, CliError> {
    // clap requires exactly one of the two.
    let until = ops::until(now, args.length.duration, args.length.permanent)
        .ok_or_else(|| CliError::Failed("--for needs a length above zero, like 15m".into()))?;
    let config = args.config.load(env)?;
    let store = open_store(&config)?;
    let reason = args.reason.unwrap_or_default();
    let banned = ops::ban(&*store, args.subject, until, reason, config.abuse.ban_memory, now)?;
    let mut out = format!("banned {} {}", banned.ban.subject, until_text(banned.ban.until));
    if let Some(previous) = banned.replaced {
        let _ = write!(out, ", replacing the ban {}", until_text(previous.until));
    }
    let _ = writeln!(out, " (in {})", crate::store::location(&config));
    audited(&*store, &config, &out, banned.entry)?;
    Ok(out)
}

fn list(store: &dyn Store, limit: usize, now: Timestamp) -> Result<String, CliError> {
    let bans = store.bans(now, Duration::ZERO).map_err(failed)?;
    if bans.is_empty() {
        return Ok("no bans\n".into());
    }
    let mut rows = vec![["SUBJECT", "UNTIL", "STRIKES", "SOURCE", "REASON"].map(String::from)];
    rows.extend(bans.iter().take(limit).map(|b| {
        [
            b.subject.to_string(),
            b.until.map_or_else(|| "permanent".into(), rfc3339),
            b.strikes.to_string(),
            b.source.as_str().into(),
            reason(&b.reason),
        ]
    }));
    let mut out = table(&rows);
    if bans.len() > limit {
        let _ = writeln!(out, "… and {} more (raise --limit)", bans.len() - limit);
    }
    Ok(out)
}

fn history(store: &dyn Store, limit: usize) -> Result<String, CliError> {
    let records = store.history(None, limit).map_err(failed)?;
    if records.is_empty() {
        return Ok("no ban history\n".into());
    }
    let mut rows = vec![["AT", "ACTION", "SUBJECT", "UNTIL", "STRIKES", "SOURCE", "REASON"].map(String::from)];
    rows.extend(records.iter().map(|r| {
        [
            rfc3339(r.at),
            match r.action {
                BanAction::Ban => "ban".into(),
                BanAction::Lift => "lift".into(),
            },
            r.ban.subject.to_string(),
            r.ban.until.map_or_else(|| "permanent".into(), rfc3339),
            r.ban.strikes.to_string(),
            r.ban.source.as_str().into(),
            reason(&r.ban.reason),
        ]
    }));
    Ok(table(&rows))
}

/// A reason as printed: quoted, with anything that could break the line or
/// change how it reads escaped (the server's own reasons are violation
/// kinds, but the file may be edited by hand).
fn reason(text: &str) -> String {
    if text.is_empty() { "-".into() } else { Clipped::new(text, ops::MAX_REASON_CHARS).to_string() }
}

/// "until 2026-01-01T00:00:00Z" or "permanently".
fn until_text(until: Option<Timestamp>) -> String {
    until.map_or_else(|| "permanently".into(), |t| format!("until {}", rfc3339(t)))
}

/// RFC 3339 in UTC to the second.
fn rfc3339(t: Timestamp) -> String {
    // humantime stops at the end of year 9999 (a `--for 10000y` ban).
    const LAST: u64 = 253_402_300_799;
    if t.as_secs() > LAST {
        return "after 9999-12-31T23:59:59Z".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.as_secs())).to_string()
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc_even_far_away() {
        assert_eq!(rfc3339(Timestamp::from_millis(1_700_000_000_999)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(Timestamp::from_millis(u64::MAX)), "after 9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(Timestamp::from_secs(253_402_300_799)), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn reasons_are_one_bounded_line_and_print_escaped() {
        assert_eq!(ops::parse_reason("spam from a botnet").unwrap(), "spam from a botnet");
        assert!(ops::parse_reason(&"x".repeat(ops::MAX_REASON_CHARS)).is_ok());
        assert!(ops::parse_reason(&"é".repeat(ops::MAX_REASON_CHARS + 1)).unwrap_err().contains("201"));
        assert!(ops::parse_reason("two\nlines").is_err());
        assert_eq!(reason(""), "-");
        assert_eq!(reason("a \"b\"\u{202e}"), "\"a \\\"b\\\"\\u{202e}\"");
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let rows = [["A", "BB", "C"].map(String::from), ["aaa", "b", "c c"].map(String::from)];
        assert_eq!(table(&rows), "A    BB  C\naaa  b   c c\n");
    }
}
