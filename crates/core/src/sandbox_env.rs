//! The names of the variables a sandboxed program and its worker are given: one
//! contract for both runtimes (the orchestrator sets them, the worker and the program
//! read them).

/// The run's id.
pub const RUN_ID: &str = "AIRLOCK_RUN_ID";
/// The evaluation's id.
pub const EVALUATION_ID: &str = "AIRLOCK_EVALUATION_ID";
/// The task's id, as the spec names it.
pub const TASK_ID: &str = "AIRLOCK_TASK_ID";
/// The epoch, from 1.
pub const EPOCH: &str = "AIRLOCK_EPOCH";
/// The path of the task's input (JSON).
pub const TASK_INPUT: &str = "AIRLOCK_TASK_INPUT";
/// The fifo the program appends its event lines to (scores, progress).
pub const EVENTS: &str = "AIRLOCK_EVENTS";
/// Variables meant for the worker begin so; it removes them from the program's
/// environment.
pub const WORKER_PREFIX: &str = "AIRLOCK_WORKER_";
/// The program's time limit in seconds, enforced by the worker.
pub const WORKER_TIMEOUT_SECS: &str = "AIRLOCK_WORKER_TIMEOUT_SECS";
