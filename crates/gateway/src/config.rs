//! The gateway's configuration and command line. Every setting can come from a flag or
//! an `AIRLOCK_*` environment variable; README.md lists them all with their defaults.

use airlock_core::Role;
use airlock_service::CommonConfig;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "airlock-gateway", version, about = "Airlock API gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (and team) if needed and print a new API token for it, once.
    CreateToken {
        /// User name.
        #[arg(long)]
        user: String,
        /// Team name.
        #[arg(long)]
        team: String,
        /// admin, researcher or viewer.
        #[arg(long, default_value = "researcher")]
        role: Role,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Directory of the built web UI, served at `/`.
    #[arg(long, env = "AIRLOCK_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "AIRLOCK_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per minute one user may make (sustained).
    #[arg(long, env = "AIRLOCK_RATE_LIMIT_PER_MINUTE", default_value_t = 6000)]
    pub rate_limit_per_minute: u32,
    /// Requests one user may make in a burst above the sustained rate.
    #[arg(long, env = "AIRLOCK_RATE_LIMIT_BURST", default_value_t = 500)]
    pub rate_limit_burst: u32,
}

impl Config {
    pub fn defaults() -> Self {
        Self {
            common: CommonConfig::defaults(),
            static_dir: PathBuf::from("frontend/dist"),
            max_body_bytes: 10 * 1024 * 1024,
            rate_limit_per_minute: 6000,
            rate_limit_burst: 500,
        }
    }
}
