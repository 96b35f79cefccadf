//! The result-processor's configuration.

use airlock_service::{CommonConfig, ReplicaConfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "airlock-result-processor",
    version,
    about = "Airlock result processor"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub replica: ReplicaConfig,
    /// Most reports applied in one database transaction (also the prefetch).
    #[arg(long, env = "AIRLOCK_RESULTS_BATCH_SIZE", default_value_t = 256)]
    pub batch_size: u16,
    /// Longest wait for more reports before a partial batch is applied, in milliseconds.
    #[arg(long, env = "AIRLOCK_RESULTS_BATCH_WAIT_MS", default_value_t = 5)]
    pub batch_wait_ms: u64,
}
