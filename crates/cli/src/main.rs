//! The `agentd` binary: parses the command line and hands over to `agentd-server`.
//!
//! Exit codes: 0 success, 1 a runtime failure (database unreachable, address in use), 2 invalid
//! configuration or usage.

// The binary talks to its operator on stdout (command output) and stderr (one-line failures
// before logging is set up).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Read as _;

use agentd_core::user::Role;
use agentd_server::Settings;
use agentd_server::admin::CreateUserError;
use agentd_server::settings::Loaded;
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// agentd: a self-hosted backend for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "agentd", version, about, long_about = None)]
struct Cli {
    /// A TOML configuration file. Environment variables override it.
    #[arg(long, global = true, env = "AGENTD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the workers.
    Serve,
    /// Run workers only, no HTTP server (to scale out on PostgreSQL).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Delete idle conversations and old finished runs now (what the retention sweep does) and
    /// print how many were removed.
    Cleanup,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        /// The user's sign-in email.
        #[arg(long)]
        email: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted; fail naming the first invalid key.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Settings::load(cli.config.as_deref(), std::env::vars()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("agentd: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Config(ConfigCommand::Check) => config_check(&loaded),
        Command::Serve => run(loaded, Mode::Serve),
        Command::Worker => run(loaded, Mode::Worker),
        Command::Migrate => run(loaded, Mode::Migrate),
        Command::Cleanup => cleanup(&loaded),
        Command::Users(UsersCommand::Create { email, admin }) => {
            users_create(loaded, &email, admin)
        }
    }
}

fn users_create(loaded: Loaded, email: &str, admin: bool) -> ExitCode {
    let mut password = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut password) {
        eprintln!("agentd: cannot read the password from standard input: {err}");
        return ExitCode::from(2);
    }
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
    let role = if admin { Role::Admin } else { Role::Member };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("agentd: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let settings = loaded.settings;
    match runtime.block_on(agentd_server::admin::create_user(&settings, email, password, role)) {
        Ok(user) => {
            println!("created user {} <{}> ({})", user.id, user.email, user.role);
            ExitCode::SUCCESS
        }
        Err(err @ (CreateUserError::Invalid { .. } | CreateUserError::Exists)) => {
            eprintln!("agentd: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("agentd: {err}");
            ExitCode::from(1)
        }
    }
}

fn cleanup(loaded: &Loaded) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("agentd: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(agentd_server::admin::cleanup(&loaded.settings)) {
        Ok(done) => {
            println!("conversations removed: {}", done.conversations);
            println!("runs removed: {}", done.runs);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agentd: {err}");
            ExitCode::from(1)
        }
    }
}

fn config_check(loaded: &Loaded) -> ExitCode {
    for name in &loaded.unknown_env {
        eprintln!("agentd: warning: {name} is set but is not an agentd setting");
    }
    match loaded.settings.to_redacted_toml() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agentd: cannot print the configuration: {err}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Serve,
    Worker,
    Migrate,
}

fn run(loaded: Loaded, mode: Mode) -> ExitCode {
    let Loaded { settings, unknown_env } = loaded;
    if let Err(err) = agentd_server::telemetry::init(&settings) {
        eprintln!("agentd: {err:#}");
        return ExitCode::from(1);
    }
    for name in &unknown_env {
        tracing::warn!(variable = %name, "set but not an agentd setting; ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("agentd: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match mode {
            Mode::Serve => agentd_server::serve(settings).await,
            Mode::Worker => agentd_server::work(settings).await,
            Mode::Migrate => {
                let db = agentd_server::open_database(&settings).await?;
                db.close().await;
                tracing::info!("migrations applied");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "agentd failed");
            ExitCode::from(1)
        }
    }
}
