//! Airlock's vocabulary: typed ids, the evaluation spec and its validation, the run state
//! machine, the event stream a sandbox writes, the versioned wire messages services
//! exchange through RabbitMQ, score aggregation, the table of error codes, the W3C
//! trace context passed along with the work, and the rules replicas share (global
//! admission, report partitions).
//!
//! This crate does no I/O and knows no framework; every service depends on it.

pub mod access;
pub mod error;
pub mod event;
pub mod histogram;
pub mod ids;
pub mod messages;
pub mod replica;
pub mod run_status;
pub mod sandbox_env;
pub mod score;
pub mod spec;
pub mod state;
pub mod trace;

pub use access::{Role, Scope, Scopes};
pub use error::ErrorCode;
pub use ids::{EvaluationId, RunId, TeamId, UserId};
pub use spec::EvalSpec;
pub use state::{EvaluationStatus, RunState};
pub use trace::TraceContext;
