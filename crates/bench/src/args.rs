//! Command-line options.

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "airlock-bench",
    about = "Starts the whole Airlock stack on this machine and measures it"
)]
pub struct Args {
    /// Submissions sent in the throughput phase.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub submissions: u64,
    /// Concurrent clients in the throughput phase.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Sequential submissions timed to sandbox start.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub latency_samples: u64,
    /// Output lines of the chatty run.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Runs of the one large evaluation (tasks x epochs); 0 skips that phase.
    #[arg(long, default_value_t = 10_000)]
    pub large_runs: u64,
    /// Chatty runs at once in the multi-run events phase (epochs of one evaluation, so
    /// at most 100); 0 skips that phase.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub chatty_runs: u64,
    /// Output lines of each of those runs.
    #[arg(long, default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub chatty_lines: u64,
    /// The orchestrator's slots (AIRLOCK_MAX_CONCURRENT_RUNS).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub capacity: u64,
    /// The worker's line rate limit for the chatty run, passed to the orchestrator as
    /// AIRLOCK_SANDBOX_MAX_LINES_PER_SEC; 0 means none.
    #[arg(long, default_value_t = 0)]
    pub max_lines_per_sec: u64,
    /// Where the service binaries are; default: beside this executable.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}
