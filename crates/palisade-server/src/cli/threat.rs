//! `palisade threat check ADDRESS`: everything that applies to one address
//! (docs/OPERATIONS.md, "Threat feeds"): `threat.allow`, each feed loaded
//! once now from its source (the server's own loader), the verdict a
//! handshake would get, and the bans in the data directory's database.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Subcommand};
use palisade_core::addr::IpKey;
use palisade_core::guard::Subject;
use palisade_core::threat::{Action, Verdict};

use super::{CliError, ConfigArgs, failed, open_existing};
use crate::config::Env;
use crate::state::now;
use crate::threat::ThreatFeeds;

/// `palisade threat …`
#[derive(Debug, Subcommand)]
pub enum ThreatCommand {
    /// What applies to an address: allow entries, the feeds that list it,
    /// the verdict, bans.
    Check(CheckArgs),
}

/// `palisade threat check`
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Config source: the feeds, and where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The address to look up.
    #[arg(value_name = "ADDRESS")]
    pub address: IpAddr,
}

/// Runs a `palisade threat` command; returns what to print on stdout.
pub fn threat(command: ThreatCommand, env: &dyn Env) -> Result<String, CliError> {
    let ThreatCommand::Check(args) = command;
    let config = args.config.load(env)?;
    let settings = config.threat_settings()?;
    let feeds = ThreatFeeds::new(&settings, config.abuse.settings()?.dry_run);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(feeds.load_all());
    let addr = args.address;
    let mut out = format!("address {addr}\n");
    let threats = feeds.threats();
    let _ = match threats.allow.longest(addr) {
        Some(prefix) => writeln!(
            out,
            "threat.allow: {prefix} (never refused or scored by a feed, never scored for credential stuffing)"
        ),
        None => writeln!(out, "threat.allow: not covered"),
    };
    let listings = threats.listings(addr);
    for (f, error) in settings.feeds.iter().zip(feeds.errors()) {
        let action = match f.action {
            Action::Deny => "deny".to_owned(),
            Action::Score => format!("score {}", f.weight),
        };
        let listed = listings.iter().find(|l| l.feed == f.name).map(|l| l.prefix);
        let _ = match (listed, error) {
            (_, Some(error)) => writeln!(out, "feed {} ({action}): not loaded: {error}", f.name),
            (Some(prefix), None) => writeln!(out, "feed {} ({action}): lists it as {prefix}", f.name),
            (None, None) => writeln!(out, "feed {} ({action}): not listed", f.name),
        };
    }
    let _ = match threats.judge(addr) {
        Verdict::Clear => writeln!(out, "verdict: no feed applies"),
        Verdict::Allowed(prefix) => writeln!(out, "verdict: allowed by threat.allow {prefix}"),
        Verdict::Deny { feed, prefix } => writeln!(out, "verdict: refused (403) by feed {feed} ({prefix})"),
        Verdict::Score { weight, feeds } => {
            writeln!(out, "verdict: score +{weight} on its first request ({})", feeds.join(", "))
        }
    };
    if let Some((country, refusal)) = feeds.geo_of(addr) {
        let country = country.unwrap_or_else(|| "unknown".into());
        let _ = match refusal {
            Some(r) => writeln!(out, "geo: country {country}: refused (403): {}", r.reason),
            None => writeln!(out, "geo: country {country}: served"),
        };
    }
    let subject = Subject::Ip(IpKey::of(addr));
    let bans = match open_existing(&config) {
        Ok(store) => store.bans(now(), Duration::ZERO).map_err(failed)?,
        Err(_) => Vec::new(),
    };
    let _ = match bans.iter().find(|b| b.subject == subject) {
        Some(ban) => writeln!(out, "ban: {} ({}), strikes {}", ban.subject, ban.reason, ban.strikes),
        None => writeln!(out, "ban: none"),
    };
    Ok(out)
}
