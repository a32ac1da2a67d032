//! The `palisade` binary.

use std::process::ExitCode;

use clap::Parser as _;
use palisade_server::cli::{self, Cli, Command, LogFormat};
use palisade_server::config::{ProcessEnv, env::ENV_LOG};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Pretty => log.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // Every field its own key, the message in `fields.message`: what a
        // log pipeline indexes, with the `ref` a client quotes searchable.
        LogFormat::Json => log.json().with_ansi(false).init(),
    }
    let env = ProcessEnv;
    let result = match cli.into_command() {
        Command::Serve(args) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(cli::serve(args, &env)),
            Err(e) => Err(cli::CliError::Failed(format!("cannot start the runtime: {e}"))),
        },
        Command::Token(args) => cli::token(args, &env).map(|token| {
            #[allow(clippy::print_stdout, reason = "the token is the command's output")]
            {
                println!("{token}");
            }
        }),
        Command::Init(args) => cli::init(&args),
        Command::Policy(cli::PolicyCommand::Check { file }) => cli::policy_check(&file, &env).map(|policy| {
            #[allow(clippy::print_stdout, reason = "the effective policy is the command's output")]
            {
                print!("{policy}");
            }
        }),
        Command::Ban(command) => cli::ban::ban(command, &env).map(|out| {
            #[allow(clippy::print_stdout, reason = "the bans or what was done is the command's output")]
            {
                print!("{out}");
            }
        }),
        Command::Revoke(command) => cli::revoke::revoke(command, &env).map(|out| {
            #[allow(clippy::print_stdout, reason = "what was revoked is the command's output")]
            {
                print!("{out}");
            }
        }),
        Command::Threat(command) => cli::threat::threat(command, &env).map(|out| {
            #[allow(clippy::print_stdout, reason = "what applies to the address is the command's output")]
            {
                print!("{out}");
            }
        }),
        Command::Cert(args) => cli::cert::cert(&args),
        Command::Config(cli::ConfigCommand::Explain { config, dev, strict }) => {
            cli::config_explain(&config, dev, strict, &env).map(|out| {
                #[allow(clippy::print_stdout, reason = "the findings are the command's output")]
                {
                    print!("{out}");
                }
            })
        }
        Command::Audit(command) => cli::audit::audit(command, &env, &mut std::io::stdout().lock()),
        Command::Scan(args) => match cli::scan::scan(*args) {
            Ok((out, code)) => {
                #[allow(clippy::print_stdout, reason = "the report is the command's output")]
                {
                    print!("{out}");
                }
                return ExitCode::from(code);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(e.exit_code());
            }
        },
        Command::User(command) => cli::user::user(command, &env).map(|out| {
            #[allow(clippy::print_stdout, reason = "the users or what was done is the command's output")]
            {
                print!("{out}");
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
