//! `palisade revoke token|session|user|list`: revocations in
//! `<data_dir>/palisade.db`. A running server on the same data directory
//! closes the matching live connections with 4003 within a second and
//! refuses the tokens at the handshake (401) and on `refresh`; a revoked
//! session's refresh token stops working too.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, check_jti, user_revocation};

use super::{CliError, ConfigArgs, audited, failed, open_store};
use crate::config::Env;
use crate::ops::{self, Via};
use crate::state::now;

/// `palisade revoke …`
#[derive(Debug, Subcommand)]
pub enum RevokeCommand {
    /// Revoke one token, by its `jti`.
    Token(TokenArgs),
    /// End one login session, by its id (`sid`): its access tokens and its
    /// refresh token stop working.
    Session(SessionArgs),
    /// Revoke every token of a user issued before an instant (default:
    /// now), so only tokens minted afterwards work.
    User(UserArgs),
    /// List the revocations.
    List(ConfigArgs),
}

/// `palisade revoke token`
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The token's `jti`.
    #[arg(value_name = "JTI")]
    pub jti: String,
    /// Why, for other operators (at most 200 characters, one line).
    #[arg(long, default_value = "", value_parser = ops::parse_reason)]
    pub reason: String,
}

/// `palisade revoke session`
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The session id (`sid_…`, as `/auth/sessions` lists it).
    #[arg(value_name = "SID")]
    pub sid: String,
}

/// `palisade revoke user`
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The user id (token `sub`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Tokens issued before this instant (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z) are revoked; default: now. The user's login
    /// sessions end too, so no refresh mints a new token.
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub before: Option<std::time::SystemTime>,
    /// Why, for other operators (at most 200 characters, one line).
    #[arg(long, default_value = "", value_parser = ops::parse_reason)]
    pub reason: String,
}

/// Runs a `palisade revoke` command; returns what to print on stdout.
pub fn revoke(command: RevokeCommand, env: &dyn Env) -> Result<String, CliError> {
    let now = now();
    let (config, revocation, reason) = match command {
        RevokeCommand::List(config) => return list(&config, env),
        RevokeCommand::Session(args) => return end_session(&args, env),
        RevokeCommand::Token(args) => {
            check_jti(&args.jti).map_err(|e| CliError::Failed(e.to_string()))?;
            (args.config, Revocation::Token(args.jti), args.reason)
        }
        RevokeCommand::User(args) => {
            let before = args.before.map_or(now, Timestamp::from);
            let revocation = user_revocation(&args.id, before)
                .map_err(|e| CliError::Failed(format!("{e}: see the sub rules in docs/PROTOCOL.md §1.4")))?;
            (args.config, revocation, args.reason)
        }
    };
    let config = config.load(env)?;
    let store = open_store(&config)?;
    let revoked = ops::revoke(&*store, &revocation, &reason, Via::Cli, now)?;
    let mut out = format!("revoked {} (in {})\n", ops::describe(&revocation), crate::store::location(&config));
    if let Revocation::User { user: id, .. } = &revocation {
        let _ = writeln!(out, "ended {} login session(s) of {id}", revoked.ended);
    }
    audited(&*store, &config, &out, revoked.entry)?;
    Ok(out)
}

fn end_session(args: &SessionArgs, env: &dyn Env) -> Result<String, CliError> {
    check_jti(&args.sid).map_err(|_| CliError::Failed("a session id is 1-128 visible ASCII characters".into()))?;
    let config = args.config.load(env)?;
    let store = open_store(&config)?;
    let now = now();
    if let Some(entry) = ops::end_session(&*store, &args.sid, Via::Cli, now)? {
        let done = format!("revoked session:{} (in {})\n", args.sid, crate::store::location(&config));
        audited(&*store, &config, &done, entry)?;
        Ok(done)
    } else {
        Err(CliError::Failed(format!("no live session {}", args.sid)))
    }
}

fn list(config: &ConfigArgs, env: &dyn Env) -> Result<String, CliError> {
    let store = open_store(&config.load(env)?)?;
    let revocations = store.revocations().map_err(failed)?;
    if revocations.is_empty() {
        return Ok("no revocations\n".into());
    }
    let mut out = String::new();
    for revocation in &revocations {
        let _ = writeln!(out, "{}", ops::describe(revocation));
    }
    Ok(out)
}
