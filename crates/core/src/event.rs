//! The event stream of one run attempt.
//!
//! Inside the sandbox the worker writes one [`WorkerEvent`] per line (JSON) to its stdout,
//! numbered from 1 by `seq`. The program under evaluation reports through a file it
//! appends [`ProgramEvent`] lines to. Status changes are added by the platform as
//! [`EventBody::Status`]. Persisted, every event gets a per-run sequence number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::RunState;

/// Longest log message kept; longer lines are cut and marked `truncated`.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Longest score name.
pub const MAX_SCORE_NAME_CHARS: usize = 100;

/// One line of the worker's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerEvent {
    /// 1, 2, 3, ... within one attempt.
    pub seq: u64,
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// A `log` line the program wrote to its events file.
    Events,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A line of output.
    Log {
        stream: LogStream,
        message: String,
        /// The line was longer than the limit and was cut.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    /// How far the program says it is, between 0 and 1.
    Progress {
        fraction: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A named number the program reports.
    Score { name: String, value: f64 },
    /// Something the platform wants the researcher to see: a malformed events line,
    /// output dropped by the rate limit, output cut at the size limit.
    Warning {
        message: String,
        /// How many lines this warning stands for (dropped or malformed), when counted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// The program ended by itself.
    Exit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The program ran past its time limit and was killed.
    TimedOut { limit_secs: u64 },
    /// The run changed state (added by the platform, never by the worker).
    Status {
        state: RunState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

impl EventBody {
    /// The `type` tag, as stored in the `kind` column.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Log { .. } => "log",
            Self::Progress { .. } => "progress",
            Self::Score { .. } => "score",
            Self::Warning { .. } => "warning",
            Self::Exit { .. } => "exit",
            Self::TimedOut { .. } => "timed_out",
            Self::Status { .. } => "status",
        }
    }
}

/// One line a program appends to the file named by `AIRLOCK_EVENTS`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProgramEvent {
    Score {
        name: String,
        value: f64,
    },
    Progress {
        fraction: f64,
        #[serde(default)]
        message: Option<String>,
    },
    Log {
        message: String,
    },
}

/// Why a program's events line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramEventError {
    #[error("not a JSON event object: {0}")]
    Malformed(String),
    #[error("score name must be 1 to {MAX_SCORE_NAME_CHARS} characters")]
    BadScoreName,
    #[error("score value must be a finite number")]
    NonFiniteScore,
    #[error("progress fraction must be between 0 and 1")]
    FractionOutOfRange,
}

impl ProgramEvent {
    /// Parses and checks one line of the events file.
    pub fn parse(line: &str) -> Result<Self, ProgramEventError> {
        let event: ProgramEvent =
            serde_json::from_str(line).map_err(|e| ProgramEventError::Malformed(e.to_string()))?;
        match &event {
            Self::Score { name, value } => {
                let chars = name.chars().count();
                if chars == 0 || chars > MAX_SCORE_NAME_CHARS {
                    return Err(ProgramEventError::BadScoreName);
                }
                if !value.is_finite() {
                    return Err(ProgramEventError::NonFiniteScore);
                }
            }
            Self::Progress { fraction, .. } => {
                if !(0.0..=1.0).contains(fraction) {
                    return Err(ProgramEventError::FractionOutOfRange);
                }
            }
            Self::Log { .. } => {}
        }
        Ok(event)
    }

    pub fn into_body(self) -> EventBody {
        match self {
            Self::Score { name, value } => EventBody::Score { name, value },
            Self::Progress { fraction, message } => EventBody::Progress { fraction, message },
            Self::Log { message } => EventBody::Log {
                stream: LogStream::Events,
                message,
                truncated: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_event_line_is_flat_json() {
        let event = WorkerEvent {
            seq: 7,
            ts: DateTime::from_timestamp(0, 0).expect("valid"),
            body: EventBody::Score {
                name: "accuracy".into(),
                value: 1.0,
            },
        };
        let line = serde_json::to_string(&event).expect("serializes");
        assert_eq!(
            line,
            r#"{"seq":7,"ts":"1970-01-01T00:00:00Z","type":"score","name":"accuracy","value":1.0}"#
        );
        let back: WorkerEvent = serde_json::from_str(&line).expect("parses");
        assert_eq!(back, event);
    }

    #[test]
    fn program_events_are_checked() {
        assert_eq!(
            ProgramEvent::parse(r#"{"type":"score","name":"acc","value":0.5}"#),
            Ok(ProgramEvent::Score {
                name: "acc".into(),
                value: 0.5
            })
        );
        assert!(matches!(
            ProgramEvent::parse("not json"),
            Err(ProgramEventError::Malformed(_))
        ));
        assert!(matches!(
            ProgramEvent::parse(r#"{"type":"score","name":"acc","value":1,"extra":1}"#),
            Err(ProgramEventError::Malformed(_))
        ));
        assert_eq!(
            ProgramEvent::parse(r#"{"type":"progress","fraction":1.5}"#),
            Err(ProgramEventError::FractionOutOfRange)
        );
        assert_eq!(
            ProgramEvent::parse(r#"{"type":"score","name":"","value":1}"#),
            Err(ProgramEventError::BadScoreName)
        );
    }
}
