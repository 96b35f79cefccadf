//! The life of one attempt once it has a slot: create the sandbox, acknowledge the
//! request (only now that the sandbox exists), follow its output, wait for its end,
//! decide the terminal state, clean up.

use airlock_core::RunState;
use airlock_core::messages::RunRequested;
use airlock_mq::Delivery;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::follower::{self, Outcome};
use crate::reports::{Attempt, ReportSink};
use crate::runtime::{Created, RuntimeError, SandboxExit, SandboxRequest, SandboxRuntime};

pub struct Execution {
    pub request: RunRequested,
    pub delivery: Delivery,
    pub runtime: Arc<dyn SandboxRuntime>,
    pub sink: ReportSink,
    /// Set when the evaluation is cancelled while this attempt runs.
    pub cancelled: Arc<AtomicBool>,
    /// Worker settings from the orchestrator's configuration.
    pub worker_env: Arc<Vec<(String, String)>>,
}

impl Execution {
    #[tracing::instrument(skip_all, fields(run_id = %self.request.run_id, attempt = self.request.attempt))]
    pub async fn run(self) {
        let attempt = Attempt {
            run_id: self.request.run_id,
            evaluation_id: self.request.evaluation_id,
            attempt: self.request.attempt,
        };
        let sandbox = to_sandbox_request(&self.request, &self.worker_env);
        let name = sandbox.sandbox_name();
        self.sink
            .status(
                attempt,
                RunState::Scheduling,
                Some("creating the sandbox".into()),
                None,
            )
            .await;
        let created = self.runtime.create(&sandbox).await;
        crate::metrics::sandbox_created(&created);
        let acked = airlock_mq::ack(&self.delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await;
        if let Err(error) = acked {
            tracing::warn!(%error, "run request not acknowledged; a redelivery will find the sandbox");
        }
        match created {
            Ok(Created::New) => {}
            Ok(Created::Existing) => {
                tracing::info!(sandbox = %name, "sandbox already exists; not starting another");
                return;
            }
            Err(RuntimeError::Refused(reason)) => {
                self.sink
                    .status(attempt, RunState::Error, Some(reason), None)
                    .await;
                return;
            }
            Err(error) => {
                tracing::error!(%error, "sandbox could not be created");
                self.sink
                    .status(
                        attempt,
                        RunState::Error,
                        Some(format!("the sandbox could not be created: {error}")),
                        None,
                    )
                    .await;
                return;
            }
        }
        self.sink
            .status(attempt, RunState::Starting, None, None)
            .await;
        if self.cancelled.load(Ordering::SeqCst) {
            let _ = self.runtime.stop(&name).await;
        }
        let outcome = match self.runtime.output(&name).await {
            Ok(output) => {
                self.sink
                    .status(attempt, RunState::Running, None, None)
                    .await;
                follower::follow(output, attempt, &self.sink).await
            }
            Err(error) => {
                tracing::error!(%error, "cannot read sandbox output");
                Outcome::default()
            }
        };
        let exit = self.runtime.wait(&name).await;
        let (state, reason, exit_code) = match exit {
            Ok(exit) => verdict(
                &exit,
                &outcome,
                self.cancelled.load(Ordering::SeqCst),
                &self.request,
            ),
            Err(error) => (
                RunState::Error,
                Some(format!("the sandbox was lost: {error}")),
                None,
            ),
        };
        self.sink.status(attempt, state, reason, exit_code).await;
        if let Err(error) = self.runtime.remove(&name).await {
            tracing::warn!(%error, sandbox = %name, "sandbox cleanup failed");
        }
    }
}

pub fn to_sandbox_request(
    request: &RunRequested,
    worker_env: &[(String, String)],
) -> SandboxRequest {
    SandboxRequest {
        run_id: request.run_id,
        evaluation_id: request.evaluation_id,
        team_id: request.team_id,
        attempt: request.attempt,
        task_id: request.task_id.clone(),
        epoch: request.epoch,
        image: request.image.clone(),
        command: request.command.clone(),
        env: request.env.clone(),
        resources: request.resources.clone(),
        timeout_secs: request.timeout_secs,
        input: request.input.clone(),
        worker_env: worker_env.to_vec(),
    }
}

/// The terminal state from how the sandbox ended and what the worker reported.
pub fn verdict(
    exit: &SandboxExit,
    outcome: &Outcome,
    cancelled: bool,
    request: &RunRequested,
) -> (RunState, Option<String>, Option<i32>) {
    if cancelled {
        return (
            RunState::Cancelled,
            Some("cancelled while running".into()),
            None,
        );
    }
    if exit.stopped {
        return (
            RunState::Error,
            Some("stopped: the orchestrator shut down before the run finished".into()),
            None,
        );
    }
    if outcome.timed_out || exit.deadline_exceeded {
        return (
            RunState::TimedOut,
            Some(format!(
                "exceeded its time limit of {}s",
                request.timeout_secs
            )),
            None,
        );
    }
    if exit.oom_killed {
        return (
            RunState::Error,
            Some(format!(
                "out of memory: exceeded its memory limit of {}",
                request.resources.memory
            )),
            outcome.exit_code,
        );
    }
    match (outcome.exit_code, outcome.signal) {
        (Some(0), _) => (RunState::Succeeded, None, Some(0)),
        (Some(code), _) => (
            RunState::Failed,
            Some(format!("exited with code {code}")),
            Some(code),
        ),
        (None, Some(signal)) => (
            RunState::Failed,
            Some(format!("killed by signal {signal}")),
            Some(128 + signal),
        ),
        (None, None) => (
            RunState::Error,
            Some(format!(
                "the sandbox ended without reporting a result (worker exit code {:?}, signal {:?})",
                exit.code, exit.signal
            )),
            None,
        ),
    }
}
