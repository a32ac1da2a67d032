//! `palisade user add|list|remove`: the own issuer's users in
//! `<data_dir>/palisade.db`, changed directly in the database, so they work
//! whether or not a server is running on the same data directory.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _};

use clap::{Args, Subcommand};
use palisade_core::Timestamp;
use palisade_core::auth::{MAX_PASSWORD_BYTES, check_sub, hash_password};
use palisade_core::store::User;

use super::{CliError, ConfigArgs, audited, existing_store, failed, open_existing, open_store};
use crate::config::Env;
use crate::gateway::Store;
use crate::ops::{self, Via};
use crate::state::now;

/// `palisade user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from the terminal (asked twice,
    /// not echoed) or, when stdin is not a terminal, as its first line.
    Add(AddArgs),
    /// List the users (never their password hashes).
    List(ConfigArgs),
    /// Replace a user's roles; their tokens carry the new ones from their
    /// next login or refresh.
    Roles(AddArgs),
    /// Remove a user.
    Remove(RemoveArgs),
}

/// `palisade user add`
#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// Config source: the data directory, and the roles the policy defines.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The user id, which becomes the token's `sub`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// A role the user's tokens carry (repeat, or comma-separate); each
    /// must be defined under `[roles]`.
    #[arg(long = "role", value_delimiter = ',')]
    pub roles: Vec<String>,
}

/// `palisade user remove`
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// Config source: where the data directory is.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The user id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Runs a `palisade user` command; returns what to print on stdout.
pub fn user(command: UserCommand, env: &dyn Env) -> Result<String, CliError> {
    match command {
        UserCommand::Add(args) => add(&args, env, now()),
        UserCommand::List(config) => list(&config, env),
        UserCommand::Roles(args) => {
            let config = args.config.load(env)?;
            check_roles(&config, &args.roles)?;
            let store = open_existing(&config)?;
            if let Some(entry) = ops::set_roles(&*store, &args.id, &args.roles, Via::Cli, now())? {
                let done = format!("user {} now has roles [{}]\n", args.id, args.roles.join(", "));
                audited(&*store, &config, &done, entry)?;
                Ok(done)
            } else {
                Err(CliError::Failed(format!("no user {}", args.id)))
            }
        }
        UserCommand::Remove(args) => {
            let config = args.config.load(env)?;
            let store = open_existing(&config)?;
            if let Some((ended, entry)) = ops::remove_user(&*store, &args.id, Via::Cli, now())? {
                let done = format!("removed user {} and ended {ended} login session(s)\n", args.id);
                audited(&*store, &config, &done, entry)?;
                Ok(done)
            } else {
                Err(CliError::Failed(format!("no user {}", args.id)))
            }
        }
    }
}

fn add(args: &AddArgs, env: &dyn Env, now: Timestamp) -> Result<String, CliError> {
    check_sub(&args.id).map_err(|e| CliError::Failed(format!("{e}: see the sub rules in docs/PROTOCOL.md §1.4")))?;
    let config = args.config.load(env)?;
    check_roles(&config, &args.roles)?;
    let store = open_store(&config)?;
    if store.user(&args.id).map_err(failed)?.is_some() {
        return Err(CliError::Failed(format!("user {} exists; remove it first", args.id)));
    }
    // The salt is drawn here: core takes it as an argument.
    let password_hash =
        hash_password(&read_password()?, rand::random()).map_err(|e| CliError::Failed(e.to_string()))?;
    let user = User { id: args.id.clone(), roles: args.roles.clone(), password_hash, created: now };
    let Some(entry) = ops::add_user(&*store, &user, Via::Cli)? else {
        return Err(CliError::Failed(format!("user {} exists; remove it first", args.id)));
    };
    let done = format!(
        "added user {} with roles [{}] (in {})\n",
        user.id,
        user.roles.join(", "),
        crate::store::location(&config)
    );
    audited(&*store, &config, &done, entry)?;
    Ok(done)
}

/// Every role must be defined under `[roles]`.
fn check_roles(config: &crate::config::Config, roles: &[String]) -> Result<(), CliError> {
    if let Some(role) = roles.iter().find(|r| !config.roles.contains_key(r.as_str())) {
        let known: Vec<&str> = config.roles.keys().map(String::as_str).collect();
        return Err(CliError::Failed(format!("no role {role:?} under [roles] (known: {})", known.join(", "))));
    }
    Ok(())
}

fn list(config: &ConfigArgs, env: &dyn Env) -> Result<String, CliError> {
    let users = existing_store(config, env)?.users().map_err(failed)?;
    if users.is_empty() {
        return Ok("no users\n".into());
    }
    let mut out = String::new();
    for user in users {
        let _ = writeln!(out, "{}  [{}]", user.id, user.roles.join(", "));
    }
    Ok(out)
}

/// File under the data directory (mode 0600) the dev profile writes its
/// demo users' passwords to, once, when it creates them.
pub(crate) const DEV_PASSWORDS_FILE: &str = "dev-passwords";

/// The dev profile's demo users, with the roles of the default policy.
const DEV_USERS: [(&str, &[&str]); 3] = [("alice", &["student"]), ("bob", &["teacher"]), ("admin", &["admin"])];

/// In the dev profile, a database with no users gets [`DEV_USERS`], each
/// with a fresh random password; returns `(id, password, roles)` for the
/// banner to show, once: only the hashes are kept.
pub(crate) fn seed_dev_users(store: &dyn Store) -> Result<Vec<(String, String, String)>, CliError> {
    if !store.users().map_err(failed)?.is_empty() {
        return Ok(Vec::new());
    }
    let mut seeded = Vec::new();
    for (id, roles) in DEV_USERS {
        let password = crate::config::fresh_secret()[..20].to_owned();
        let password_hash = hash_password(&password, rand::random()).map_err(|e| CliError::Failed(e.to_string()))?;
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let user = User { id: id.to_owned(), roles: roles.clone(), password_hash, created: now() };
        if store.add_user(&user).map_err(failed)? {
            seeded.push((user.id, password, roles.join(", ")));
        }
    }
    Ok(seeded)
}

/// The password: asked twice at a terminal, else the first line of stdin.
fn read_password() -> Result<String, CliError> {
    let fail = |e: std::io::Error| CliError::Failed(format!("cannot read the password: {e}"));
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").map_err(fail)?;
        let again = rpassword::prompt_password("again: ").map_err(fail)?;
        if first != again {
            return Err(CliError::Failed("the passwords differ".into()));
        }
        return Ok(first);
    }
    let mut line = String::new();
    // One line, bounded: a pipe that never ends must not fill memory.
    let limit = u64::try_from(MAX_PASSWORD_BYTES + 2).unwrap_or(u64::MAX);
    std::io::Read::take(std::io::stdin().lock(), limit).read_line(&mut line).map_err(fail)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
