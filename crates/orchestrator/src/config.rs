//! The orchestrator's configuration.

use airlock_core::replica::GlobalLimits;
use airlock_service::{CommonConfig, ReplicaConfig};
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "airlock-orchestrator", version, about = "Airlock orchestrator")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Sandbox runtime: `local` (bubblewrap on this machine) or `kubernetes` (a pod per
    /// attempt; see the `AIRLOCK_K8S_*` settings).
    #[arg(long, env = "AIRLOCK_RUNTIME", default_value = "local")]
    pub runtime: String,
    #[command(flatten)]
    pub kubernetes: crate::runtime::kubernetes::config::KubernetesConfig,
    /// The worker binary run inside each sandbox; default: `airlock-worker` beside this
    /// executable.
    #[arg(long, env = "AIRLOCK_WORKER_PATH")]
    pub worker_path: Option<PathBuf>,
    #[command(flatten)]
    pub replica: ReplicaConfig,
    /// Runs at once on this replica; default: the number of CPUs.
    #[arg(long, env = "AIRLOCK_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// Runs at once per team over every replica (decided in PostgreSQL); default: no
    /// per-team limit. The most recently started replica's value holds for all.
    #[arg(long, env = "AIRLOCK_TEAM_MAX_CONCURRENT_RUNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub team_max_concurrent_runs: Option<u32>,
    /// Runs at once over all teams and replicas; default: only the replicas'
    /// capacities limit. The most recently started replica's value holds for all.
    #[arg(long, env = "AIRLOCK_PLATFORM_MAX_CONCURRENT_RUNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub platform_max_concurrent_runs: Option<u32>,
    /// Run requests this replica holds unacknowledged (waiting for a slot or a quota);
    /// default: its capacity, so the others get the rest.
    #[arg(long, env = "AIRLOCK_PREFETCH")]
    pub prefetch: Option<u16>,
    /// Where local sandboxes keep their scratch directories.
    #[arg(
        long,
        env = "AIRLOCK_SANDBOX_DIR",
        default_value = "/var/lib/airlock/sandboxes"
    )]
    pub sandbox_dir: PathBuf,
    /// First host uid of the local sandboxes' pool (one uid per concurrent run).
    #[arg(long, env = "AIRLOCK_SANDBOX_UID_BASE", default_value_t = 200_000)]
    pub sandbox_uid_base: u32,
    /// How many host uids from the base sandboxes may use: shared by every replica on
    /// the machine, so it must cover their capacities together.
    #[arg(long, env = "AIRLOCK_SANDBOX_UID_COUNT", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sandbox_uid_count: u32,
    /// Where the local runtime's host-wide sandbox uid locks live: shared by every
    /// orchestrator on the machine, of any installation, so none hands out a uid
    /// another one holds.
    #[arg(
        long,
        env = "AIRLOCK_SANDBOX_UID_LOCK_DIR",
        default_value = "/run/airlock/uids"
    )]
    pub sandbox_uid_lock_dir: PathBuf,
    /// Most output lines per second a run may write; beyond, lines are dropped and counted.
    #[arg(
        long,
        env = "AIRLOCK_SANDBOX_MAX_LINES_PER_SEC",
        default_value_t = 2000
    )]
    pub sandbox_max_lines_per_sec: u64,
    /// Most log bytes one run may write in all; beyond, a warning and drops.
    #[arg(long, env = "AIRLOCK_SANDBOX_MAX_OUTPUT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub sandbox_max_output_bytes: u64,
    /// Attempts a run gets in all when the platform (not the program) breaks one.
    #[arg(long, env = "AIRLOCK_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds before a broken attempt is retried; doubles each time, at most 300.
    #[arg(long, env = "AIRLOCK_RETRY_BACKOFF_SECS", default_value_t = 10)]
    pub retry_backoff_secs: u64,
    /// The bubblewrap executable.
    #[arg(long, env = "AIRLOCK_BWRAP_PATH", default_value = "/usr/bin/bwrap")]
    pub bwrap_path: PathBuf,
}

impl Config {
    pub fn capacity(&self) -> usize {
        self.max_concurrent_runs
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(1)
            })
            .max(1)
    }

    /// The global limits this replica enforces with the others.
    pub fn global_limits(&self) -> GlobalLimits {
        GlobalLimits {
            per_team: self.team_max_concurrent_runs,
            platform: self.platform_max_concurrent_runs,
        }
    }

    /// Unacknowledged run requests: the configured prefetch, else the capacity.
    pub fn prefetch(&self) -> u16 {
        self.prefetch
            .unwrap_or_else(|| u16::try_from(self.capacity()).unwrap_or(u16::MAX))
            .max(1)
    }

    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base: std::time::Duration::from_secs(self.retry_backoff_secs),
        }
    }

    /// The worker's settings, as the environment the worker reads.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AIRLOCK_WORKER_MAX_LINES_PER_SEC".into(),
                self.sandbox_max_lines_per_sec.to_string(),
            ),
            (
                "AIRLOCK_WORKER_MAX_OUTPUT_BYTES".into(),
                self.sandbox_max_output_bytes.to_string(),
            ),
        ]
    }

    /// The worker binary: configured, or beside the running executable.
    pub fn worker_path(&self) -> std::io::Result<PathBuf> {
        match &self.worker_path {
            Some(path) => Ok(path.clone()),
            None => {
                let exe = std::env::current_exe()?;
                Ok(exe.with_file_name("airlock-worker"))
            }
        }
    }
}
