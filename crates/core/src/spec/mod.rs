//! The evaluation spec: what a user submits, as JSON or YAML.
//!
//! [`EvalSpec::parse`] turns a request body into a checked spec or into the complete list
//! of [`FieldError`]s, each with the path of the offending field (`tasks[3].id`) and a
//! stable code. A spec that exists is valid: its fields are private to this module's
//! constructor and exposed read-only.

mod quantity;
mod validate;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use quantity::{format_cpu_millis, parse_cpu_millis, parse_duration_secs, parse_memory_bytes};
pub use validate::FieldError;

/// Most tasks one spec may hold.
pub const MAX_TASKS: usize = 10_000;
/// Most epochs.
pub const MAX_EPOCHS: u32 = 100;
/// Most runs (tasks x epochs) one evaluation may create.
pub const MAX_RUNS: u64 = 100_000;
/// Longest time limit: 7 days.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 86_400;
/// Default time limit: 1 hour.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3_600;

/// A checked evaluation spec. Serializes to its canonical form, which parses back to
/// the same spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(title = "EvalSpec")]
pub struct EvalSpec {
    /// 1 to 100 characters.
    pub name: String,
    /// Container image the Kubernetes runtime runs; recorded by the local runtime.
    pub image: String,
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// 1 to 10,000 tasks with unique ids; default one task `default`.
    pub tasks: Vec<Task>,
    /// 1 to 100; default 1.
    pub epochs: u32,
    pub resources: Resources,
    /// Wall-clock limit of one run, like `90s`, `30m`, `2h`; default `1h`, at most `7d`.
    pub timeout: String,
    pub network: NetworkPolicy,
    /// Extra environment for the program. Names starting with `AIRLOCK_` are reserved.
    pub env: BTreeMap<String, String>,
    /// Free-form labels under Kubernetes label rules.
    pub labels: BTreeMap<String, String>,
    pub priority: Priority,
}

/// One unit of work; runs once per epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Unique within the spec, 1 to 128 printable characters.
    pub id: String,
    /// Any JSON; handed to the program as a file.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
}

/// What one run may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resources {
    /// Cores, like `500m` or `2`; default `1`.
    pub cpu: String,
    /// Bytes, like `512Mi` or `2Gi`; default `1Gi`.
    pub memory: String,
    /// Whole GPUs; default 0.
    pub gpu: u32,
}

impl Resources {
    pub fn cpu_millis(&self) -> u64 {
        parse_cpu_millis(&self.cpu).unwrap_or(1000)
    }

    pub fn memory_bytes(&self) -> u64 {
        parse_memory_bytes(&self.memory).unwrap_or(1 << 30)
    }
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: "1".into(),
            memory: "1Gi".into(),
            gpu: 0,
        }
    }
}

/// Which network a run may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Loopback only.
    #[default]
    None,
}

/// Scheduling priority; higher runs first, then first come first served.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }

    /// A small number for storage and queue priority: low 0, normal 1, high 2.
    pub const fn rank(self) -> i16 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
        }
    }

    pub const fn from_rank(rank: i16) -> Self {
        match rank {
            i16::MIN..=0 => Self::Low,
            1 => Self::Normal,
            _ => Self::High,
        }
    }
}

/// The body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Json,
    Yaml,
}

/// Why a body is not a spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Not JSON / YAML at all.
    #[error("the body is not valid {format}: {message}")]
    Malformed {
        format: &'static str,
        message: String,
    },
    /// Parsed, but fields are invalid.
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
}

impl EvalSpec {
    /// Parses a request body.
    pub fn parse(body: &[u8], format: SpecFormat) -> Result<Self, SpecError> {
        let value: serde_json::Value = match format {
            SpecFormat::Json => serde_json::from_slice(body).map_err(|e| SpecError::Malformed {
                format: "JSON",
                message: e.to_string(),
            })?,
            SpecFormat::Yaml => serde_yaml::from_slice(body).map_err(|e| SpecError::Malformed {
                format: "YAML",
                message: e.to_string(),
            })?,
        };
        Self::from_value(&value).map_err(SpecError::Invalid)
    }

    /// Checks an already parsed document, reporting every invalid field.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Vec<FieldError>> {
        validate::spec(value)
    }

    /// The time limit in seconds.
    pub fn timeout_secs(&self) -> u64 {
        parse_duration_secs(&self.timeout).unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    /// How many runs this spec creates.
    pub fn run_count(&self) -> u64 {
        self.tasks.len() as u64 * u64::from(self.epochs)
    }
}
