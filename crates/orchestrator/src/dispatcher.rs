//! The dispatcher: one task receives run requests, cancellations, completions and
//! adoptions, asks PostgreSQL for each attempt's claim before starting it (global quotas,
//! exactly one replica per attempt), and tells waiting runs why they wait. Its state is
//! [`State`]; each kind of command is one of its methods.

use airlock_core::messages::RunRequested;
use airlock_core::{EvaluationId, RunId, RunState, TraceContext};
use airlock_db::{ClaimOutcome, ClaimRequest};
use airlock_mq::Delivery;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::{Execution, ExecutionEnv};
use crate::reports::Attempt;
use crate::runtime::sandbox_name;
use crate::scheduler::{Scheduler, Ticket};

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
    /// Connected (again): cancellations missed meanwhile are read from PostgreSQL.
    Reconnected,
    /// A claim was released somewhere: runs refused by a global limit may ask again.
    ClaimReleased,
    /// A held-back retry became due, or refused runs should ask again.
    Tick,
    /// Follow a sandbox whose claim this replica took over from a lost one.
    Adopt(Box<RunRequested>),
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
        queued_at: Utc::now(),
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

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How often runs refused by a global limit ask again without a release notification
/// (one may be missed while the listener reconnects), and how long to wait after
/// PostgreSQL failed a claim.
const RECHECK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

struct Running {
    cancelled: Arc<AtomicBool>,
    name: String,
    attempt: u32,
}

pub struct Dispatcher {
    pub env: Arc<ExecutionEnv>,
    /// Runs at once on this replica.
    pub capacity: usize,
    pub commands: mpsc::Receiver<Command>,
    pub completions: mpsc::Sender<Command>,
    pub executions: TaskTracker,
}

/// What the dispatcher knows: waiting and running runs, and what it told each run.
struct State {
    env: Arc<ExecutionEnv>,
    completions: mpsc::Sender<Command>,
    executions: TaskTracker,
    scheduler: Scheduler<(RunRequested, Delivery)>,
    running: HashMap<RunId, Running>,
    /// The last waiting reason reported per run (so each is said once).
    told: HashMap<RunId, String>,
    /// The next attempt of a run whose current attempt has not finished winding down
    /// (its execution publishes the retry just before it ends): taken up once it has.
    next_attempts: HashMap<RunId, Incoming>,
    /// Commands to handle before new ones.
    replay: VecDeque<Command>,
    /// No claim is asked for before this (PostgreSQL failed the last one).
    claims_paused_until: Option<DateTime<Utc>>,
}

impl Dispatcher {
    /// Runs until `closing`. Once `draining` is cancelled it starts nothing new: waiting
    /// runs stay unacknowledged and return to the queue when the connection closes.
    pub async fn run(mut self, draining: CancellationToken, closing: CancellationToken) {
        let mut state = State {
            env: self.env,
            completions: self.completions,
            executions: self.executions,
            scheduler: Scheduler::new(self.capacity),
            running: HashMap::new(),
            told: HashMap::new(),
            next_attempts: HashMap::new(),
            replay: VecDeque::new(),
            claims_paused_until: None,
        };
        loop {
            let due = state.next_wake(Utc::now());
            let command = match state.replay.pop_front() {
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
            state.handle(command).await;
            if !draining.is_cancelled() {
                state.start_what_may_start().await;
            }
            crate::metrics::scheduler(
                state.scheduler.running_count(),
                state.scheduler.waiting_count(),
            );
            state.tell_waiting_reasons().await;
        }
    }
}

impl State {
    fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut due = earliest(
            self.scheduler.next_due(now),
            self.scheduler.next_reason_due(now),
        );
        let recheck = self.scheduler.is_blocked() && self.scheduler.waiting_count() > 0;
        if let Some(paused) = self.claims_paused_until {
            due = Some(due.map_or(paused, |d| d.min(paused)));
        } else if recheck {
            let soon = now + RECHECK;
            due = Some(due.map_or(soon, |d| d.min(soon)));
        }
        due
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Tick => self.scheduler.unblock(),
            Command::ClaimReleased => self.scheduler.unblock(),
            Command::Request(incoming) => self.on_request(*incoming).await,
            Command::Cancel(evaluation_id) => self.on_cancel(evaluation_id).await,
            Command::Finished(run_id) => self.on_finished(run_id),
            Command::ConnectionLost => self.on_connection_lost(),
            Command::Reconnected => self.on_reconnected().await,
            Command::Adopt(request) => self.on_adopt(*request).await,
        }
    }

    async fn on_request(&mut self, incoming: Incoming) {
        let run_id = incoming.request.run_id;
        if let Some(current) = self.running.get(&run_id) {
            if incoming.request.attempt > current.attempt {
                self.next_attempts.insert(run_id, incoming);
            } else {
                // A redelivery of an attempt running here: nothing to start.
                ack(&incoming.delivery).await;
            }
            return;
        }
        match self.env.db.run_admission(run_id).await {
            Ok(Some((state, attempt, _)))
                if state.is_terminal() || attempt > incoming.request.attempt =>
            {
                tracing::info!(
                    %run_id,
                    evaluation_id = %incoming.request.evaluation_id,
                    trace_id = %incoming.trace.trace_id(),
                    %state,
                    "redelivered request for a finished run; skipped"
                );
                ack(&incoming.delivery).await;
            }
            Ok(Some((_, _, true))) => {
                self.skip_cancelled(&incoming.request, &incoming.delivery, incoming.trace)
                    .await;
            }
            Ok(_) => self.enqueue(incoming),
            Err(error) => {
                // The claim decides who starts it; this read only saves work.
                tracing::warn!(%error, %run_id, "cannot read the run's state; queuing it");
                self.enqueue(incoming);
            }
        }
    }

    fn enqueue(&mut self, incoming: Incoming) {
        let Incoming {
            request,
            delivery,
            trace,
        } = incoming;
        self.scheduler
            .enqueue(ticket_of(&request, trace), (request, delivery));
    }

    async fn on_cancel(&mut self, evaluation_id: EvaluationId) {
        for (ticket, (_, delivery)) in self.scheduler.remove_evaluation(evaluation_id) {
            self.told.remove(&ticket.run_id);
            let request = Attempt {
                run_id: ticket.run_id,
                evaluation_id: ticket.evaluation_id,
                attempt: ticket.attempt,
                trace: ticket.trace,
            };
            self.report_cancelled_before_start(request).await;
            ack(&delivery).await;
        }
        for run_id in self.scheduler.running_of(evaluation_id) {
            if let Some(run) = self.running.get(&run_id) {
                run.cancelled.store(true, Ordering::SeqCst);
                let runtime = self.env.runtime.clone();
                let name = run.name.clone();
                tokio::spawn(async move {
                    if let Err(error) = runtime.stop(&name).await {
                        tracing::warn!(%error, %run_id, %evaluation_id, sandbox = %name, "stop failed");
                    }
                });
            }
        }
    }

    fn on_finished(&mut self, run_id: RunId) {
        self.scheduler.finished(run_id);
        self.running.remove(&run_id);
        if let Some(next) = self.next_attempts.remove(&run_id) {
            self.replay.push_back(Command::Request(Box::new(next)));
        }
    }

    fn on_connection_lost(&mut self) {
        self.scheduler.clear_waiting();
        self.next_attempts.clear();
        self.replay
            .retain(|command| !matches!(command, Command::Request(_)));
        self.told.clear();
    }

    /// Cancellations published while this replica was not connected reach it now.
    async fn on_reconnected(&mut self) {
        let evaluations = self.scheduler.running_evaluations();
        if evaluations.is_empty() {
            return;
        }
        match self.env.db.cancelled_evaluations(&evaluations).await {
            Ok(cancelled) => {
                for evaluation_id in cancelled {
                    self.replay.push_back(Command::Cancel(evaluation_id));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read cancellations after reconnecting")
            }
        }
    }

    async fn on_adopt(&mut self, request: RunRequested) {
        if self.running.contains_key(&request.run_id) {
            return;
        }
        let cancelled = matches!(
            self.env.db.run_admission(request.run_id).await,
            Ok(Some((_, _, true)))
        );
        // The trace of the submission is not kept with the run: the adopted attempt's
        // messages start a trace of their own.
        let trace = TraceContext::new_root();
        self.scheduler.adopt(ticket_of(&request, trace));
        let flag = self.start(request, None, trace);
        if cancelled {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Starts waiting runs while this replica has slots and their claims are granted.
    async fn start_what_may_start(&mut self) {
        if self
            .claims_paused_until
            .is_some_and(|until| Utc::now() < until)
        {
            return;
        }
        self.claims_paused_until = None;
        while let Some((ticket, (request, delivery))) = self.scheduler.next_startable(Utc::now()) {
            let claim = ClaimRequest {
                run_id: ticket.run_id,
                attempt: ticket.attempt,
                team_id: ticket.team_id,
                replica_id: self.env.lease.id(),
            };
            match self.env.db.claim_attempt(claim).await {
                Ok(ClaimOutcome::Claimed | ClaimOutcome::AlreadyMine) => {
                    self.told.remove(&ticket.run_id);
                    self.start(request, Some(delivery), ticket.trace);
                }
                Ok(ClaimOutcome::Taken { by }) => {
                    tracing::info!(run_id = %ticket.run_id, evaluation_id = %ticket.evaluation_id, attempt = ticket.attempt, holder = %by, "another orchestrator holds this attempt; not starting it");
                    self.scheduler.finished(ticket.run_id);
                    self.told.remove(&ticket.run_id);
                    ack(&delivery).await;
                }
                Ok(ClaimOutcome::Refused(refusal)) => {
                    self.scheduler.refused(ticket, (request, delivery), refusal);
                }
                Err(error) => {
                    tracing::warn!(%error, run_id = %ticket.run_id, "cannot claim the run; asking again shortly");
                    self.scheduler.finished(ticket.run_id);
                    self.scheduler.enqueue(ticket, (request, delivery));
                    self.claims_paused_until = Some(Utc::now() + RECHECK);
                    return;
                }
            }
        }
    }

    /// Starts the execution of an attempt that holds a slot and its claim; without a
    /// delivery it follows an adopted sandbox. Returns its cancellation flag.
    fn start(
        &mut self,
        request: RunRequested,
        delivery: Option<Delivery>,
        trace: TraceContext,
    ) -> Arc<AtomicBool> {
        let run_id = request.run_id;
        let flag = Arc::new(AtomicBool::new(false));
        self.running.insert(
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
            env: self.env.clone(),
            cancelled: flag.clone(),
            trace,
        };
        let done = self.completions.clone();
        self.executions.spawn(async move {
            execution.run().await;
            let _ = done.send(Command::Finished(run_id)).await;
        });
        flag
    }

    /// Reports each waiting run's reason once per change.
    async fn tell_waiting_reasons(&mut self) {
        let reasons: Vec<(Attempt, String)> = self
            .scheduler
            .waiting_reasons(Utc::now())
            .into_iter()
            .filter(|(ticket, reason)| self.told.get(&ticket.run_id) != Some(reason))
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
        // Confirmed together: the dispatcher waits once, not once per run.
        let sink = &self.env.sink;
        let mut sends = Vec::with_capacity(reasons.len());
        for (attempt, reason) in reasons {
            self.told.insert(attempt.run_id, reason.clone());
            sends.push(sink.status(attempt, RunState::Scheduling, Some(reason), None));
        }
        futures_util::future::join_all(sends).await;
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
        self.report_cancelled_before_start(attempt).await;
        ack(delivery).await;
    }

    async fn report_cancelled_before_start(&self, attempt: Attempt) {
        self.env
            .sink
            .status(
                attempt,
                RunState::Cancelled,
                Some("cancelled before it started".into()),
                None,
            )
            .await;
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(error) = airlock_mq::ack(delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await {
        tracing::warn!(%error, "run request not acknowledged");
    }
}
