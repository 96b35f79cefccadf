//! The life of one attempt once it holds a slot and its claim: create the sandbox,
//! acknowledge the request (only now that the sandbox exists), report its placement,
//! follow its output, wait for its end, decide how it ended (or retry it when the platform
//! broke it), clean up, and release the claim last. Reports go through the attempt's
//! [`ReportStream`], so the attempt never waits for a broker confirm except where it
//! must: an attempt whose sandbox could not be made publishes its retry or refusal,
//! waits for the confirm and acknowledges the request after, so a crash in between
//! leaves a redelivery, never a run stuck in `scheduling`; and the claim is released only
//! once every report is confirmed. An adopted attempt (its sandbox outlived a lost
//! replica) skips creation.

use airlock_core::messages::RunRequested;
use airlock_core::{RunState, TraceContext};
use airlock_db::OrchestratorDb;
use airlock_mq::Delivery;
use airlock_service::ReplicaLease;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

use crate::follower::{self, Outcome};
use crate::report_stream::ReportStream;
use crate::reports::{Attempt, ReportSink};
use crate::retry::{RetryPolicy, retry_or_fail};
use crate::runtime::{
    Created, Placement, RuntimeError, SandboxExit, SandboxRequest, SandboxRuntime,
};

/// What every execution of this replica shares.
pub struct ExecutionEnv {
    pub runtime: Arc<dyn SandboxRuntime>,
    pub sink: ReportSink,
    pub db: OrchestratorDb,
    pub lease: ReplicaLease,
    /// Worker settings from the orchestrator's configuration.
    pub worker_env: Vec<(String, String)>,
    pub retry: RetryPolicy,
}

impl ExecutionEnv {
    /// Releases this replica's claim of an attempt, retrying while PostgreSQL is away
    /// (a replica that cannot reach it loses its lease and exits; the claim is then
    /// released by whoever takes over).
    pub async fn release_claim(&self, run_id: airlock_core::RunId, attempt: u32) {
        let mut backoff = airlock_mq::Backoff::default();
        while self.lease.is_held() {
            match self
                .db
                .release_claim(run_id, attempt, self.lease.id())
                .await
            {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot release the run's claim; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

pub struct Execution {
    pub request: RunRequested,
    /// The request's delivery, acknowledged once the sandbox exists; `None` when the
    /// attempt was adopted from a lost replica.
    pub delivery: Option<Delivery>,
    pub env: Arc<ExecutionEnv>,
    /// Set when the evaluation is cancelled while this attempt runs.
    pub cancelled: Arc<AtomicBool>,
    /// This orchestrator's span of the run's trace; the reports carry it.
    pub trace: TraceContext,
}

impl Execution {
    fn attempt(&self) -> Attempt {
        Attempt {
            run_id: self.request.run_id,
            evaluation_id: self.request.evaluation_id,
            attempt: self.request.attempt,
            trace: self.trace,
        }
    }

    #[tracing::instrument(skip_all, fields(
        run_id = %self.request.run_id,
        evaluation_id = %self.request.evaluation_id,
        attempt = self.request.attempt,
        trace_id = %self.trace.trace_id(),
    ))]
    pub async fn run(self) {
        let sandbox = to_sandbox_request(&self.request, &self.env.worker_env);
        let name = sandbox.sandbox_name();
        let mut reports = ReportStream::new(self.attempt(), self.env.sink.clone());
        let (ending, acked) = self.attempt_in(&sandbox, &name, &mut reports).await;
        match &ending {
            Some(Ending::Final {
                state,
                reason,
                exit_code,
            }) => reports.status(*state, reason.clone(), *exit_code).await,
            Some(Ending::Retry(cause)) => {
                tracing::warn!(cause, "attempt broken by the platform");
                // The next attempt's reports come after this one's.
                reports.flush().await;
                retry_or_fail(
                    &self.env.sink,
                    self.env.retry,
                    &self.request,
                    self.trace,
                    cause.clone(),
                )
                .await;
            }
            None => {}
        }
        let Some(_) = ending else {
            reports.finish().await;
            if !acked && let Some(delivery) = &self.delivery {
                ack(delivery).await;
            }
            return;
        };
        let removing = async {
            if let Err(error) = self.env.runtime.remove(&name).await {
                tracing::warn!(%error, sandbox = %name, "sandbox cleanup failed");
            }
        };
        tokio::join!(reports.finish(), removing);
        if !acked && let Some(delivery) = &self.delivery {
            // Only now that what comes next is confirmed.
            ack(delivery).await;
        }
        self.env
            .release_claim(self.request.run_id, self.request.attempt)
            .await;
    }

    /// Runs the attempt to its end; the ending is `None` when another execution owns
    /// the sandbox. Says whether the request was acknowledged.
    async fn attempt_in(
        &self,
        sandbox: &SandboxRequest,
        name: &str,
        reports: &mut ReportStream,
    ) -> (Option<Ending>, bool) {
        let runtime = &self.env.runtime;
        let mut acked = false;
        if let Some(delivery) = &self.delivery {
            match self.create(sandbox, reports).await {
                Ok(()) => {
                    ack(delivery).await;
                    acked = true;
                }
                Err(ending) => return (ending, false),
            }
        } else {
            tracing::info!(sandbox = %name, "following a sandbox adopted from a lost orchestrator");
        }
        self.report_placement(name, reports).await;
        if self.cancelled.load(Ordering::SeqCst) {
            let _ = runtime.stop(name).await;
        }
        let outcome = match runtime.output(name).await {
            Ok(output) => {
                reports.status(RunState::Running, None, None).await;
                follower::follow(output, reports).await
            }
            Err(error) => {
                tracing::warn!(%error, "no sandbox output to read");
                Outcome::default()
            }
        };
        let ending = match runtime.wait(name).await {
            Ok(exit) => verdict(
                &exit,
                &outcome,
                self.cancelled.load(Ordering::SeqCst),
                &self.request,
            ),
            Err(error) => Ending::Retry(format!("the sandbox was lost: {error}")),
        };
        (Some(ending), acked)
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(error) = airlock_mq::ack(delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await {
        tracing::warn!(%error, "run request not acknowledged; a redelivery finds the attempt claimed");
    }
}

impl Execution {
    /// Creates the sandbox; `Err` is how the attempt ends (`None`: another execution
    /// owns the sandbox).
    async fn create(
        &self,
        sandbox: &SandboxRequest,
        reports: &mut ReportStream,
    ) -> Result<(), Option<Ending>> {
        let runtime = &self.env.runtime;
        // Followed by `starting` once the sandbox exists.
        reports
            .status_with_next(
                RunState::Scheduling,
                Some("creating the sandbox".into()),
                None,
            )
            .await;
        let started = std::time::Instant::now();
        let created = runtime.create(sandbox).await;
        crate::metrics::sandbox_created(runtime.kind(), started.elapsed(), &created);
        if let Err(error) = &created {
            tracing::warn!(%error, "the sandbox could not be created");
        }
        match created {
            Ok(Created::New) => Ok(()),
            // A sandbox that outlives orchestrators and exists already is one nobody in
            // this process follows (the dispatcher knows the runs it follows): follow it.
            Ok(Created::Existing) if runtime.survives_restart() => {
                tracing::info!(sandbox = %sandbox.sandbox_name(), "sandbox already exists; following it");
                Ok(())
            }
            Ok(Created::Existing) => {
                tracing::info!(sandbox = %sandbox.sandbox_name(), "sandbox already exists; not starting another");
                Err(None)
            }
            Err(RuntimeError::Refused(reason)) => Err(Some(Ending::error(reason))),
            Err(error) => Err(Some(Ending::Retry(format!(
                "the sandbox could not be created: {error}"
            )))),
        }
    }

    /// Reports `scheduling` (with the runtime's reasons) and `starting` until the
    /// sandbox's program starts or the sandbox ends first.
    async fn report_placement(&self, name: &str, reports: &mut ReportStream) {
        let (progress, mut placements) = mpsc::unbounded_channel();
        let placing = self.env.runtime.until_started(name, progress);
        let mut placing = std::pin::pin!(placing);
        let mut done = false;
        loop {
            tokio::select! {
                biased;
                placement = placements.recv() => match placement {
                    Some(placement) => report(placement, reports).await,
                    None if done => return,
                    None => {}
                },
                () = &mut placing, if !done => done = true,
            }
        }
    }
}

async fn report(placement: Placement, reports: &mut ReportStream) {
    let (state, reason) = match placement {
        Placement::Scheduling(reason) => (RunState::Scheduling, Some(reason)),
        Placement::Starting(reason) => (RunState::Starting, reason),
    };
    // Followed by `running` (or another placement).
    reports.status_with_next(state, reason, None).await;
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The run ends in this state.
    Final {
        state: RunState,
        reason: Option<String>,
        exit_code: Option<i32>,
    },
    /// The platform broke the attempt (not the program); another attempt may succeed.
    Retry(String),
}

impl Ending {
    fn error(reason: String) -> Self {
        Self::Final {
            state: RunState::Error,
            reason: Some(reason),
            exit_code: None,
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

/// How the attempt ended, from how the sandbox ended and what the worker reported.
pub fn verdict(
    exit: &SandboxExit,
    outcome: &Outcome,
    cancelled: bool,
    request: &RunRequested,
) -> Ending {
    let end = |state, reason: Option<String>, exit_code| Ending::Final {
        state,
        reason,
        exit_code,
    };
    if cancelled {
        return end(
            RunState::Cancelled,
            Some("cancelled while running".into()),
            None,
        );
    }
    if exit.stopped {
        return Ending::Retry("the orchestrator shut down before the run finished".into());
    }
    if outcome.timed_out {
        let reason = format!("exceeded its time limit of {}s", request.timeout_secs);
        return end(RunState::TimedOut, Some(reason), None);
    }
    if exit.deadline_exceeded {
        let reason = format!(
            "exceeded its time limit of {}s (the sandbox's deadline ended it)",
            request.timeout_secs
        );
        return end(RunState::TimedOut, Some(reason), None);
    }
    if let Some(failure) = &exit.failure {
        return if failure.retryable {
            Ending::Retry(failure.reason.clone())
        } else {
            end(RunState::Error, Some(failure.reason.clone()), None)
        };
    }
    if exit.oom_killed {
        let reason = format!(
            "out of memory: exceeded its memory limit of {}",
            request.resources.memory
        );
        return end(RunState::Error, Some(reason), outcome.exit_code);
    }
    match (outcome.exit_code, outcome.signal) {
        (Some(0), _) => end(RunState::Succeeded, None, Some(0)),
        (Some(code), _) => end(
            RunState::Failed,
            Some(format!("exited with code {code}")),
            Some(code),
        ),
        (None, Some(signal)) => end(
            RunState::Failed,
            Some(format!("killed by signal {signal}")),
            Some(128 + signal),
        ),
        (None, None) => end(
            RunState::Error,
            Some(format!(
                "the sandbox ended without reporting a result (worker exit code {:?}, signal {:?})",
                exit.code, exit.signal
            )),
            None,
        ),
    }
}
