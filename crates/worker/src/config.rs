//! The worker's settings, read from `AIRLOCK_WORKER_*` environment variables.
//!
//! | variable                           | default        | meaning                               |
//! |------------------------------------|----------------|---------------------------------------|
//! | `AIRLOCK_WORKER_TIMEOUT_SECS`      | 0 (no limit)   | time limit of the program             |
//! | `AIRLOCK_WORKER_KILL_GRACE_MS`     | 2000           | SIGTERM to SIGKILL                    |
//! | `AIRLOCK_WORKER_MAX_LINE_BYTES`    | 16384          | longer lines are cut (`truncated`)    |
//! | `AIRLOCK_WORKER_MAX_LINES_PER_SEC` | 2000 (0: none) | lines beyond are dropped and counted  |
//! | `AIRLOCK_WORKER_MAX_OUTPUT_BYTES`  | 8 MiB (0: none)| log bytes; later log lines dropped    |
//! | `AIRLOCK_EVENTS`                   | private fifo   | fifo the program writes events to     |
//!
//! Empty values mean the default; anything else that is not a non-negative integer is an
//! error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use airlock_core::event::MAX_MESSAGE_BYTES;

/// Prefix of the variables meant for the worker; they are removed from the program's
/// environment.
pub use airlock_core::sandbox_env::WORKER_PREFIX;

/// Where the program appends its event lines; passed through to the program.
pub use airlock_core::sandbox_env::EVENTS as EVENTS_VAR;

const DEFAULT_KILL_GRACE_MS: u64 = 2000;
const DEFAULT_MAX_LINES_PER_SEC: u64 = 2000;
const DEFAULT_MAX_OUTPUT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time limit of the program; `None` means no limit.
    pub timeout_secs: Option<u64>,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Longest log line kept, in bytes.
    pub max_line_bytes: usize,
    /// Lines per second over stdout, stderr and events; 0 means no limit.
    pub max_lines_per_sec: u64,
    /// Total bytes of log messages emitted; 0 means no limit.
    pub max_output_bytes: u64,
    /// `AIRLOCK_EVENTS` as given; `None` when unset or empty.
    pub events_path: Option<PathBuf>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match lookup(name) {
                None => Ok(default),
                Some(raw) => {
                    let text = raw.to_str().map(str::trim).unwrap_or("");
                    if text.is_empty() {
                        return Ok(default);
                    }
                    text.parse::<u64>()
                        .map_err(|_| format!("{name} must be a non-negative integer, got {raw:?}"))
                }
            }
        };
        let timeout = number(airlock_core::sandbox_env::WORKER_TIMEOUT_SECS, 0)?;
        let max_line_bytes = number("AIRLOCK_WORKER_MAX_LINE_BYTES", MAX_MESSAGE_BYTES as u64)?;
        if max_line_bytes == 0 {
            return Err("AIRLOCK_WORKER_MAX_LINE_BYTES must be at least 1".to_owned());
        }
        Ok(Self {
            timeout_secs: (timeout > 0).then_some(timeout),
            kill_grace: Duration::from_millis(number(
                "AIRLOCK_WORKER_KILL_GRACE_MS",
                DEFAULT_KILL_GRACE_MS,
            )?),
            max_line_bytes: usize::try_from(max_line_bytes).unwrap_or(usize::MAX),
            max_lines_per_sec: number(
                "AIRLOCK_WORKER_MAX_LINES_PER_SEC",
                DEFAULT_MAX_LINES_PER_SEC,
            )?,
            max_output_bytes: number("AIRLOCK_WORKER_MAX_OUTPUT_BYTES", DEFAULT_MAX_OUTPUT_BYTES)?,
            events_path: lookup(EVENTS_VAR)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn defaults_apply_when_unset() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.timeout_secs, None);
        assert_eq!(c.kill_grace, Duration::from_millis(2000));
        assert_eq!(c.max_line_bytes, MAX_MESSAGE_BYTES);
        assert_eq!(c.max_lines_per_sec, 2000);
        assert_eq!(c.max_output_bytes, 8 * 1024 * 1024);
        assert_eq!(c.events_path, None);
    }

    #[test]
    fn values_are_read_and_checked() {
        let c = config(&[
            ("AIRLOCK_WORKER_TIMEOUT_SECS", " 5 "),
            ("AIRLOCK_WORKER_KILL_GRACE_MS", "10"),
            ("AIRLOCK_EVENTS", "/tmp/x"),
        ])
        .expect("valid");
        assert_eq!(c.timeout_secs, Some(5));
        assert_eq!(c.kill_grace, Duration::from_millis(10));
        assert_eq!(c.events_path, Some(PathBuf::from("/tmp/x")));
        assert_eq!(
            config(&[("AIRLOCK_WORKER_TIMEOUT_SECS", "0")])
                .expect("ok")
                .timeout_secs,
            None
        );
        assert!(config(&[("AIRLOCK_WORKER_TIMEOUT_SECS", "soon")]).is_err());
        assert!(config(&[("AIRLOCK_WORKER_MAX_LINE_BYTES", "0")]).is_err());
    }
}
