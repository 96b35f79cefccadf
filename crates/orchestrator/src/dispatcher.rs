//! The dispatcher owns the scheduler: one task receives run requests, cancellations and
//! completions, starts what may start, and tells waiting runs why they wait.

use airlock_core::messages::RunRequested;
use airlock_core::{EvaluationId, RunId, RunState, TraceContext};
use airlock_db::Db;
use airlock_mq::Delivery;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::Execution;
use crate::reports::{Attempt, ReportSink};
use crate::retry::RetryPolicy;
use crate::runtime::{SandboxRuntime, sandbox_name};
use crate::scheduler::{Limits, Scheduler, Ticket};

enum Admission {
    Start,
    Cancelled,
    AlreadyDone(RunState),
}

/// A run request as it arrived, with the trace context of this orchestrator's work on it.
pub struct Incoming {
    pub request: RunRequested,
    pub delivery: Delivery,
    pub trace: TraceContext,
}

pub enum Command {
    Request(Box<Incoming>),
    Cancel(EvaluationId),
    Finished(RunId),
    /// The broker connection was lost: deliveries held here are void.
    ConnectionLost,
    /// A held-back retry became due.
    Tick,
    /// Follow a sandbox that outlived an earlier orchestrator (it is running already);
    /// `cancelled` when its evaluation was cancelled meanwhile.
    Resume {
        request: Box<RunRequested>,
        cancelled: bool,
    },
}

fn ticket_of(request: &RunRequested, trace: TraceContext) -> Ticket {
    Ticket {
        run_id: request.run_id,
        evaluation_id: request.evaluation_id,
        team_id: request.team_id,
        attempt: request.attempt,
        priority: request.priority,
        submitted_at: request.submitted_at,
        not_before: request.not_before,
        trace,
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

struct Running {
    cancelled: Arc<AtomicBool>,
    name: String,
    attempt: u32,
}

pub struct Dispatcher {
    pub runtime: Arc<dyn SandboxRuntime>,
    pub db: Db,
    pub sink: ReportSink,
    pub limits: Limits,
    pub commands: mpsc::Receiver<Command>,
    pub completions: mpsc::Sender<Command>,
    pub executions: TaskTracker,
    pub worker_env: Arc<Vec<(String, String)>>,
    pub retry: RetryPolicy,
}

impl Dispatcher {
    /// Runs until `closing`. Once `draining` is cancelled it starts nothing new: waiting
    /// runs stay unacknowledged and return to the queue when the connection closes.
    pub async fn run(mut self, draining: CancellationToken, closing: CancellationToken) {
        let mut scheduler: Scheduler<(RunRequested, Delivery)> = Scheduler::new(self.limits);
        let mut running: HashMap<RunId, Running> = HashMap::new();
        let mut cancelled: HashSet<EvaluationId> = HashSet::new();
        let mut told: HashMap<RunId, String> = HashMap::new();
        // The next attempt of a run whose current attempt has not finished winding down
        // (its execution publishes the retry just before it ends): taken up once it has.
        let mut next_attempts: HashMap<RunId, Incoming> = HashMap::new();
        let mut replay: VecDeque<Command> = VecDeque::new();
        loop {
            let mut due = scheduler.next_due(Utc::now());
            if scheduler.waiting_count() > 0 && self.runtime.live_sandboxes().is_some() {
                // Capacity may free without a command (a pod ends or goes elsewhere).
                let soon = Utc::now() + chrono::Duration::seconds(1);
                due = Some(due.map_or(soon, |d| d.min(soon)));
            }
            let command = match replay.pop_front() {
                Some(command) => command,
                None => tokio::select! {
                    () = closing.cancelled() => return,
                    command = self.commands.recv() => match command {
                        Some(command) => command,
                        None => return,
                    },
                    () = sleep_until(due) => Command::Tick,
                },
            };
            match command {
                Command::Tick => {}
                Command::Request(incoming) => {
                    let Incoming {
                        request,
                        delivery,
                        trace,
                    } = *incoming;
                    if let Some(current) = running.get(&request.run_id) {
                        if request.attempt > current.attempt {
                            let incoming = Incoming {
                                request,
                                delivery,
                                trace,
                            };
                            next_attempts.insert(incoming.request.run_id, incoming);
                        } else {
                            // A redelivery of a run whose sandbox exists: nothing to start.
                            let _ = airlock_mq::ack(
                                &delivery,
                                airlock_mq::topology::RUN_REQUESTS_QUEUE,
                            )
                            .await;
                        }
                        continue;
                    }
                    match self.admission(&mut cancelled, &request).await {
                        Admission::Start => {}
                        Admission::Cancelled => {
                            self.skip_cancelled(&request, &delivery, trace).await;
                            continue;
                        }
                        Admission::AlreadyDone(state) => {
                            tracing::info!(
                                run_id = %request.run_id,
                                evaluation_id = %request.evaluation_id,
                                trace_id = %trace.trace_id(),
                                %state,
                                "redelivered request for a finished run; skipped"
                            );
                            let _ = airlock_mq::ack(
                                &delivery,
                                airlock_mq::topology::RUN_REQUESTS_QUEUE,
                            )
                            .await;
                            continue;
                        }
                    }
                    scheduler.enqueue(ticket_of(&request, trace), (request, delivery));
                }
                Command::Cancel(evaluation_id) => {
                    cancelled.insert(evaluation_id);
                    for (ticket, (request, delivery)) in scheduler.remove_evaluation(evaluation_id)
                    {
                        told.remove(&request.run_id);
                        self.skip_cancelled(&request, &delivery, ticket.trace).await;
                    }
                    for run_id in scheduler.running_of(evaluation_id) {
                        if let Some(run) = running.get(&run_id) {
                            run.cancelled.store(true, Ordering::SeqCst);
                            let runtime = self.runtime.clone();
                            let name = run.name.clone();
                            tokio::spawn(async move {
                                if let Err(error) = runtime.stop(&name).await {
                                    tracing::warn!(%error, %run_id, %evaluation_id, sandbox = %name, "stop failed");
                                }
                            });
                        }
                    }
                }
                Command::Finished(run_id) => {
                    scheduler.finished(run_id);
                    running.remove(&run_id);
                    if let Some(next) = next_attempts.remove(&run_id) {
                        replay.push_back(Command::Request(Box::new(next)));
                    }
                }
                Command::ConnectionLost => {
                    scheduler.clear_waiting();
                    next_attempts.clear();
                    replay.retain(|command| !matches!(command, Command::Request(_)));
                    told.clear();
                }
                Command::Resume { request, cancelled } => {
                    if running.contains_key(&request.run_id) {
                        continue;
                    }
                    // The trace of the submission is not kept across restarts: the
                    // resumed attempt's messages start a trace of their own.
                    let trace = TraceContext::new_root();
                    scheduler.adopt(ticket_of(&request, trace));
                    let flag = self.start(&mut running, *request, None, trace);
                    if cancelled {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            }
            if let Some(live) = self.runtime.live_sandboxes() {
                scheduler.observe_sandboxes(live);
            }
            while !draining.is_cancelled()
                && let Some((ticket, (request, delivery))) = scheduler.next_startable(Utc::now())
            {
                told.remove(&ticket.run_id);
                self.start(&mut running, request, Some(delivery), ticket.trace);
            }
            crate::metrics::scheduler(scheduler.running_count(), scheduler.waiting_count());
            let reasons: Vec<(Attempt, String)> = scheduler
                .waiting_reasons(Utc::now())
                .into_iter()
                .filter(|(ticket, reason)| told.get(&ticket.run_id) != Some(reason))
                .map(|(ticket, reason)| {
                    (
                        Attempt {
                            run_id: ticket.run_id,
                            evaluation_id: ticket.evaluation_id,
                            attempt: ticket.attempt,
                            trace: ticket.trace,
                        },
                        reason,
                    )
                })
                .collect();
            for (attempt, reason) in reasons {
                told.insert(attempt.run_id, reason.clone());
                self.sink
                    .status(attempt, RunState::Scheduling, Some(reason), None)
                    .await;
            }
        }
    }

    /// Starts the execution of an attempt that holds a slot; without a delivery it
    /// resumes a sandbox that exists. Returns its cancellation flag.
    fn start(
        &self,
        running: &mut HashMap<RunId, Running>,
        request: RunRequested,
        delivery: Option<Delivery>,
        trace: TraceContext,
    ) -> Arc<AtomicBool> {
        let run_id = request.run_id;
        let flag = Arc::new(AtomicBool::new(false));
        running.insert(
            run_id,
            Running {
                cancelled: flag.clone(),
                name: sandbox_name(request.run_id, request.attempt),
                attempt: request.attempt,
            },
        );
        let execution = Execution {
            request,
            delivery,
            runtime: self.runtime.clone(),
            sink: self.sink.clone(),
            cancelled: flag.clone(),
            worker_env: self.worker_env.clone(),
            retry: self.retry,
            trace,
        };
        let done = self.completions.clone();
        self.executions.spawn(async move {
            execution.run().await;
            let _ = done.send(Command::Finished(run_id)).await;
        });
        flag
    }

    /// Whether a requested run may start: not if its evaluation was cancelled, nor if
    /// this attempt already finished (a redelivery after the sandbox was removed).
    async fn admission(
        &self,
        cancelled: &mut HashSet<EvaluationId>,
        request: &RunRequested,
    ) -> Admission {
        if cancelled.contains(&request.evaluation_id) {
            return Admission::Cancelled;
        }
        match self.db.run_admission(request.run_id).await {
            Ok(Some((state, attempt, _))) if state.is_terminal() || attempt > request.attempt => {
                Admission::AlreadyDone(state)
            }
            Ok(Some((_, _, true))) => {
                cancelled.insert(request.evaluation_id);
                Admission::Cancelled
            }
            Ok(_) => Admission::Start,
            Err(error) => {
                tracing::warn!(%error, run_id = %request.run_id, evaluation_id = %request.evaluation_id, "cannot read the run's state; starting it (duplicates are absorbed downstream)");
                Admission::Start
            }
        }
    }

    async fn skip_cancelled(
        &self,
        request: &RunRequested,
        delivery: &Delivery,
        trace: TraceContext,
    ) {
        let attempt = Attempt {
            run_id: request.run_id,
            evaluation_id: request.evaluation_id,
            attempt: request.attempt,
            trace,
        };
        self.sink
            .status(
                attempt,
                RunState::Cancelled,
                Some("cancelled before it started".into()),
                None,
            )
            .await;
        let _ = airlock_mq::ack(delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await;
    }
}
