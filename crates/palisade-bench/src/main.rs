//! `palisade-bench`: runs one scenario against a server on this machine,
//! prints a table and writes the report as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use palisade_bench::report::Report;
use palisade_bench::scenario::{self, ScenarioError};
use palisade_bench::target::{Target, TargetError};

#[derive(Debug, Parser)]
#[command(name = "palisade-bench", about = "Load generator for Palisade and its peers (loopback only)")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args)]
struct Common {
    /// Server to drive: ws://IP:PORT/ws (or wss://, with --ca) on a
    /// loopback address.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// For wss://: the PEM certificate(s) to trust, and only those; the
    /// server's certificate must name the URL's IP address.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// File holding the HS256 secret the server verifies tokens with.
    #[arg(long, global = true)]
    secret_file: Option<PathBuf>,
    /// Origin header to send.
    #[arg(long, global = true)]
    origin: Option<String>,
    /// Number of 127.0.0.x source addresses to spread connections over.
    #[arg(long, global = true, default_value_t = 8)]
    sources: u8,
    /// Write the report as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Authenticated handshakes per second.
    Connect {
        #[arg(long, default_value_t = 2000)]
        total: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Idle connections and the server's memory per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 0)]
        hold_seconds: u64,
        /// Server process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Rooms (idle-0, idle-1, …) the connections join in turn; 0: none.
        #[arg(long, default_value_t = 0)]
        rooms: usize,
    },
    /// Request → ack round trips, each connection in its own room.
    Echo {
        #[arg(long, default_value_t = 100)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// One room, many subscribers, a few publishers.
    Fanout {
        #[arg(long, default_value_t = 500)]
        subscribers: usize,
        #[arg(long, default_value_t = 5)]
        publishers: usize,
        /// Messages per second per publisher.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Servers the subscribers connect to, in turn (ws://IP:PORT/ws,
        /// comma-separated: other nodes of a cluster); default: --url.
        #[arg(long, value_delimiter = ',')]
        subscriber_urls: Vec<String>,
    },
    /// Honest chat while hostile clients attack.
    Mixed {
        #[arg(long, default_value_t = 50)]
        honest: usize,
        #[arg(long, default_value_t = 10)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        hostile: usize,
        #[arg(long, default_value_t = 20)]
        hostile_rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Rooms' kept events and the server's memory for them (Palisade only).
    History {
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        events: usize,
        #[arg(long, default_value_t = 100)]
        content_bytes: usize,
        /// Server process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// POST /auth/login, then /auth/refresh with each refresh token (Palisade only).
    Login {
        /// User to log in as (`palisade user add`).
        #[arg(long)]
        user: String,
        /// File whose first line is the user's password.
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
        /// The user's password (visible to `ps`: prefer --password-file).
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 200)]
        total: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Upper bound on each phase (logins, then refreshes).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(&cli)) {
        Ok(report) => {
            #[allow(clippy::print_stdout, reason = "the table is the program's output")]
            {
                print!("{}", report.table());
            }
            if let Some(path) = &cli.common.json {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(path, json + "\n") {
                    return fail(&format!("cannot write {}: {e}", path.display()));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("palisade-bench: {message}");
    ExitCode::FAILURE
}

async fn run(cli: &Cli) -> Result<Report, String> {
    let c = &cli.common;
    let secret = match &c.secret_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?.trim_end().to_owned()
        }
        None => String::new(),
    };
    let target_for = |url: &str| {
        let target = Target::new(url, &secret, c.origin.clone(), c.sources)?;
        match &c.ca {
            Some(ca) => target.trusting(ca),
            None if url.starts_with("wss://") => Err(TargetError::Trust(url.to_owned())),
            None => Ok(target),
        }
    };
    let target = target_for(&c.url).map_err(|e| e.to_string())?;
    let secs = Duration::from_secs;
    let report: Result<Report, ScenarioError> = match &cli.scenario {
        &Scenario::Connect { total, concurrency, seconds } => {
            scenario::connect::run(&target, scenario::connect::Params { total, concurrency, duration: secs(seconds) })
                .await
        }
        &Scenario::Idle { connections, concurrency, hold_seconds, server_pid, rooms } => {
            let p = scenario::idle::Params { connections, concurrency, hold: secs(hold_seconds), server_pid, rooms };
            scenario::idle::run(&target, p).await
        }
        &Scenario::Echo { connections, seconds } => {
            scenario::echo::run(&target, scenario::echo::Params { connections, duration: secs(seconds) }).await
        }
        Scenario::Fanout { subscribers, publishers, rate, seconds, subscriber_urls } => {
            let subscribers_on = subscriber_urls
                .iter()
                .map(|url| target_for(url))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let p = scenario::fanout::Params {
                subscribers: *subscribers,
                publishers: *publishers,
                rate: *rate,
                duration: secs(*seconds),
                subscribers_on,
            };
            scenario::fanout::run(&target, p).await
        }
        &Scenario::Mixed { honest, rate, hostile, hostile_rate, seconds } => {
            let p = scenario::mixed::Params { honest, rate, hostile, hostile_rate, duration: secs(seconds) };
            scenario::mixed::run(&target, p).await
        }
        &Scenario::History { rooms, events, content_bytes, server_pid } => {
            let p = scenario::history::Params { rooms, events, content_bytes, server_pid };
            scenario::history::run(&target, p).await
        }
        Scenario::Login { user, password_file, password, total, concurrency, seconds } => {
            let password = match (password_file, password) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                (None, Some(password)) => password.clone(),
                (None, None) => return Err("login needs --password-file or --password".into()),
            };
            let p = scenario::login::Params {
                user: user.clone(),
                password,
                total: *total,
                concurrency: *concurrency,
                duration: secs(*seconds),
            };
            scenario::login::run(&target, p).await
        }
    };
    report.map_err(|e| e.to_string())
}
