//! Command-line interface: `serve` (the default), `token`, `init`,
//! `policy check`, `ban` (in [`ban`]), `user` (in [`user`]), `revoke`
//! (in [`revoke`]), `audit` (in [`audit`]) and `scan` (in [`scan`]).

pub mod audit;
pub mod ban;
pub mod cert;
pub mod revoke;
pub mod scan;
pub mod threat;
pub mod user;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use palisade_core::auth::{TokenRequest, check_name, check_sub};

use crate::config::env::{ENV_CONFIG, ENV_LOG_FORMAT};
use crate::config::{Config, ConfigError, Env, Source, render_init};
use crate::gateway::Store;
use crate::server::{Server, shutdown_signal};
use crate::settings::{Profile, Settings, compile_policy, signer};
use crate::state::now;

/// Palisade: a hardened real-time WebSocket server.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without one, `serve` with the flags given here: in the
    /// dev profile unless a config file is named (--config or
    /// PALISADE_CONFIG).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve` flags, for when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// How log lines are written to stderr: `pretty` for people, `json`
    /// (one object per line, every field a key) for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = ENV_LOG_FORMAT)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The command to run. No subcommand means `serve`: with no config file
    /// that is the dev profile, so a fresh clone runs as it is; a named
    /// config file is that config in production, because whoever wrote one
    /// expects its keys and origins, not the dev profile's additions.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or_else(|| {
            let dev = self.serve.dev || self.serve.config.config.is_none();
            Command::Serve(ServeArgs { dev, ..self.serve })
        })
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print a signed access token on stdout.
    Token(TokenArgs),
    /// Write a commented config file with fresh secrets.
    Init(InitArgs),
    /// Work with the message policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List, add and lift bans in the data directory's database (also while
    /// the server runs).
    #[command(subcommand)]
    Ban(ban::BanCommand),
    /// Add, list and remove the own issuer's users (passwords hashed with
    /// argon2id) in the data directory's database.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Revoke a token or a user's tokens; a running server closes the
    /// matching live connections within a second.
    #[command(subcommand)]
    Revoke(revoke::RevokeCommand),
    /// Verify, tail and export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// What threat feeds, allow entries and bans apply to an address.
    #[command(subcommand)]
    Threat(threat::ThreatCommand),
    /// Write a self-signed certificate and key for local TLS testing.
    Cert(cert::CertArgs),
    /// Inspect a config.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Audit a WebSocket endpoint (any server) for security weaknesses
    /// (docs/SCAN.md).
    Scan(Box<scan::ScanArgs>),
}

/// `palisade config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List every setting of the effective config (file and environment)
    /// that weakens security, with its key and why.
    Explain {
        /// Config source.
        #[command(flatten)]
        config: ConfigArgs,
        /// Judge it for the dev profile.
        #[arg(long)]
        dev: bool,
        /// Exit 1 when anything is listed (for a deployment pipeline).
        #[arg(long)]
        strict: bool,
    },
}

/// `palisade config explain`: the weakening settings, one per line
/// (`KEY: why`), or a line saying there are none.
pub fn config_explain(config: &ConfigArgs, dev: bool, strict: bool, env: &dyn Env) -> Result<String, CliError> {
    let found = crate::config::explain::weaknesses(&config.load(env)?, dev);
    if found.is_empty() {
        return Ok("no setting weakens security\n".to_owned());
    }
    let mut out = String::new();
    for weakness in &found {
        out.push_str(&format!("{}: {}\n", weakness.key, weakness.why));
    }
    if strict {
        return Err(CliError::Failed(format!("{} setting(s) weaken security:\n{}", found.len(), out.trim_end())));
    }
    Ok(out)
}

/// `palisade policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the policy in a config file and print the effective rules.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

/// `server.data_dir` in the default config.
const DEFAULT_DATA_DIR: &str = "palisade-data";

/// Where the config comes from, shared by `serve`, `token` and `ban`.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigArgs {
    /// Config file (default: none, built-in defaults).
    #[arg(long, short, env = ENV_CONFIG)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides server.data_dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `palisade serve`
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Config source.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Development profile: localhost origins and a generated signing key.
    #[arg(long)]
    pub dev: bool,
    /// Listen address (overrides server.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// `palisade token`
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Config source; without --config, the dev key in the data directory.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Use the dev profile's key (as `serve --dev` does) when the config
    /// has none.
    #[arg(long)]
    pub dev: bool,
    /// User id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Display name (default: the user id).
    #[arg(long)]
    pub name: Option<String>,
    /// Comma-separated roles.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Comma-separated rooms or `prefix*` patterns the token may join
    /// (default: no restriction beyond the policy).
    #[arg(long, value_delimiter = ',')]
    pub rooms: Option<Vec<String>>,
    /// Lifetime, like "15m" or "2h" (default: auth.token_ttl).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
}

/// `palisade init`
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// File to write.
    #[arg(long, short, default_value = "palisade.toml")]
    pub output: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// A failed command, with the process exit code it deserves.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// Exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

impl ConfigArgs {
    /// Loads the config these arguments name.
    pub fn load(&self, env: &dyn Env) -> Result<Config, ConfigError> {
        let source = self.config.as_deref().map_or(Source::Defaults, Source::File);
        let mut config = Config::load(source, env)?;
        if let Some(data) = &self.data {
            config.server.data_dir.clone_from(data);
        }
        Ok(config)
    }
}

/// `palisade serve`: runs until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs, env: &dyn Env) -> Result<(), CliError> {
    let mut config = args.config.load(env)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let profile = if args.dev { Profile::Dev } else { Profile::Production };
    let data_dir = config.server.data_dir.clone();
    let login = config.login.enabled;
    let plaintext_allowed = config.server.allow_plaintext;
    let mut settings = Settings::new(config, profile)?;
    let tls = settings.tls.is_some();
    if profile == Profile::Production && !tls && plaintext_allowed {
        tracing::warn!(
            "server.allow_plaintext: serving plain http and ws; only safe behind a proxy that terminates TLS \
             (docs/OPERATIONS.md, \"Behind a proxy\")"
        );
    }
    settings.source.clone_from(&args.config.config);
    let server = Server::bind(settings).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let seeded = if profile == Profile::Dev && login {
        let store = server.store();
        crate::gateway::blocking("dev_users", move || user::seed_dev_users(&*store)).await?
    } else {
        Vec::new()
    };
    banner(server.local_addr(), tls, profile, args.config.config.as_deref(), &data_dir);
    if !seeded.is_empty() {
        // Never on stderr: log capture keeps whatever the process prints.
        let file = data_dir.join(user::DEV_PASSWORDS_FILE);
        let mut text = String::from("# The dev profile's demo users; only their hashes are in the database.\n");
        for (id, password, roles) in &seeded {
            text.push_str(&format!("{id} / {password}  [{roles}]\n"));
        }
        write_private(&file, text.as_bytes(), true)?;
        let addr = server.local_addr();
        let ids: Vec<&str> = seeded.iter().map(|(id, _, _)| id.as_str()).collect();
        eprintln!("  dev users {}: passwords in {} (mode 0600)", ids.join(", "), file.display());
        let scheme = if tls { "https" } else { "http" };
        eprintln!(
            "  log in:       curl -s {scheme}://{addr}/auth/login -H 'content-type: application/json' \\\n                  -d '{{\"username\":\"alice\",\"password\":\"…\"}}'"
        );
    }
    server.run(shutdown_signal()).await;
    Ok(())
}

/// `palisade token`: the token on stdout, nothing else.
pub fn token(args: TokenArgs, env: &dyn Env) -> Result<String, CliError> {
    let config = args.config.load(env)?;
    // Without a config file the dev key is the only key there is.
    let profile = if args.dev || args.config.config.is_none() { Profile::Dev } else { Profile::Production };
    let ttl = args.ttl.unwrap_or(config.auth.token_ttl);
    // A token the server would refuse at the handshake is not worth printing.
    check_sub(&args.sub)
        .and_then(|()| args.name.as_deref().map_or(Ok(()), check_name))
        .map_err(|e| CliError::Failed(format!("{e}: see the sub and name rules in docs/PROTOCOL.md §1.4")))?;
    let signer = signer(&config, profile)?;
    let request = TokenRequest {
        user_id: args.sub,
        name: args.name,
        roles: args.roles,
        rooms: args.rooms,
        ttl,
        ..Default::default()
    };
    signer.mint(request, now(), &mut rand::rng()).map_err(|e| CliError::Failed(e.to_string()))
}

/// Opens the config's store, which must already exist
/// (`store::open_existing`).
fn existing_store(config: &ConfigArgs, env: &dyn Env) -> Result<Arc<dyn Store>, CliError> {
    open_existing(&config.load(env)?)
}

/// [`existing_store`] for a loaded config.
fn open_existing(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    crate::store::open_existing(config).map_err(failed)
}

/// Opens the config's store, creating it if it is new.
fn open_store(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    crate::store::open(config).map_err(failed)
}

/// Appends an operator's action to the audit log (when `audit.enabled`),
/// chained by the store like the server's records. The action is already
/// done: a failure here says so rather than hiding that it was not
/// recorded.
fn audited(store: &dyn Store, config: &Config, done: &str, entry: palisade_core::audit::Entry) -> Result<(), CliError> {
    if !config.audit.enabled {
        return Ok(());
    }
    store
        .append(&[entry])
        .map(drop)
        .map_err(|e| CliError::Failed(format!("{} but could not be recorded in the audit log: {e}", done.trim_end())))
}

/// A store error as a command's failure; its messages name the file or the
/// operation already.
fn failed(e: palisade_core::store::StoreError) -> CliError {
    CliError::Failed(e.0)
}

impl From<palisade_core::store::StoreError> for CliError {
    fn from(e: palisade_core::store::StoreError) -> Self {
        failed(e)
    }
}

/// `palisade policy check FILE`: the effective policy as TOML, or the first
/// error with the key it is at.
pub fn policy_check(file: &Path, env: &dyn Env) -> Result<String, CliError> {
    let config = Config::load(Source::File(file), env)?;
    compile_policy(&config)?;
    let effective = EffectivePolicy {
        auth: EffectiveAuth { default_roles: &config.auth.default_roles },
        limits: EffectiveLimits { max_json_depth: config.limits.max_json_depth },
        replay: &config.replay,
        abuse: &config.abuse,
        sanitize: &config.sanitize,
        roles: &config.roles,
        rooms: &config.rooms,
        events: &config.events,
    };
    toml::to_string_pretty(&effective).map_err(|e| CliError::Failed(format!("cannot print the policy: {e}")))
}

/// What `policy check` prints: every setting the policy is compiled from,
/// after defaults and overrides, as a config file that loads back.
#[derive(serde::Serialize)]
struct EffectivePolicy<'a> {
    auth: EffectiveAuth<'a>,
    limits: EffectiveLimits,
    replay: &'a crate::config::ReplayConfig,
    /// Not the policy proper, but what a message costs its sender.
    abuse: &'a crate::config::AbuseConfig,
    sanitize: &'a crate::config::SanitizeConfig,
    roles: &'a std::collections::BTreeMap<String, palisade_core::policy::RoleSpec>,
    rooms: &'a std::collections::BTreeMap<String, palisade_core::policy::RoomSpec>,
    events: &'a std::collections::BTreeMap<String, palisade_core::policy::EventSpec>,
}

#[derive(serde::Serialize)]
struct EffectiveAuth<'a> {
    default_roles: &'a [String],
}

#[derive(serde::Serialize)]
struct EffectiveLimits {
    max_json_depth: usize,
}

/// `palisade init`: writes the file, refusing to overwrite without --force.
pub fn init(args: &InitArgs) -> Result<(), CliError> {
    write_private(&args.output, render_init().as_bytes(), args.force)?;
    eprintln!("wrote {} (it contains a secret: keep it private)", args.output.display());
    Ok(())
}

/// Writes a file only its owner may read (it holds a secret), refusing to
/// overwrite one unless `force`.
pub(crate) fn write_private(path: &Path, contents: &[u8], force: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let fail = |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", path.display()));
    let mut file = options.open(path).map_err(fail)?;
    #[cfg(unix)]
    {
        // `mode` applies only to a file being created: one overwritten by
        // --force keeps whatever mode it had, so set it before the secret
        // goes in.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    std::io::Write::write_all(&mut file, contents).map_err(fail)
}

fn banner(addr: SocketAddr, tls: bool, profile: Profile, config: Option<&Path>, data: &Path) {
    let (scheme, health) = if tls { ("wss", "https") } else { ("ws", "http") };
    eprintln!("Palisade listening on {scheme}://{addr}/ws (subprotocol palisade.v1)");
    match profile {
        Profile::Dev => {
            let mut token = String::from("cargo run --release -- token");
            if let Some(c) = config {
                token.push_str(&format!(" --dev --config {}", c.display()));
            }
            if data != Path::new(DEFAULT_DATA_DIR) {
                token.push_str(&format!(" --data {}", data.display()));
            }
            eprintln!("  dev profile: localhost origins allowed, signing key in {}", data.display());
            eprintln!("  get a token:  {token} --sub alice");
            eprintln!("  health:       {health}://{addr}/healthz");
        }
        Profile::Production => eprintln!("  health: {health}://{addr}/healthz"),
    }
}
