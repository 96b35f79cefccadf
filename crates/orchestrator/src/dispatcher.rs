//! The dispatcher owns the scheduler: one task receives run requests, cancellations and
//! completions, starts what may start, and tells waiting runs why they wait.

use airlock_core::messages::RunRequested;
use airlock_core::{EvaluationId, RunId, RunState};
use airlock_db::Db;
use airlock_mq::Delivery;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::Execution;
use crate::reports::{Attempt, ReportSink};
use crate::runtime::{SandboxRuntime, sandbox_name};
use crate::scheduler::{Limits, Scheduler, Ticket};

pub enum Command {
    Request(Box<RunRequested>, Delivery),
    Cancel(EvaluationId),
    Finished(RunId),
    /// The broker connection was lost: deliveries held here are void.
    ConnectionLost,
}

struct Running {
    cancelled: Arc<AtomicBool>,
    name: String,
}

pub struct Dispatcher {
    pub runtime: Arc<dyn SandboxRuntime>,
    pub db: Db,
    pub sink: ReportSink,
    pub limits: Limits,
    pub commands: mpsc::Receiver<Command>,
    pub completions: mpsc::Sender<Command>,
    pub executions: TaskTracker,
}

impl Dispatcher {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut scheduler: Scheduler<(RunRequested, Delivery)> = Scheduler::new(self.limits);
        let mut running: HashMap<RunId, Running> = HashMap::new();
        let mut cancelled: HashSet<EvaluationId> = HashSet::new();
        let mut told: HashMap<RunId, String> = HashMap::new();
        loop {
            let command = tokio::select! {
                () = shutdown.cancelled() => return,
                command = self.commands.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
            };
            match command {
                Command::Request(request, delivery) => {
                    let request = *request;
                    if running.contains_key(&request.run_id) {
                        // A redelivery of a run whose sandbox exists: nothing to start.
                        let _ = airlock_mq::ack(&delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await;
                        continue;
                    }
                    if self.is_cancelled(&mut cancelled, request.evaluation_id).await {
                        self.skip_cancelled(&request, &delivery).await;
                        continue;
                    }
                    let ticket = Ticket {
                        run_id: request.run_id,
                        evaluation_id: request.evaluation_id,
                        team_id: request.team_id,
                        priority: request.priority,
                        submitted_at: request.submitted_at,
                    };
                    scheduler.enqueue(ticket, (request, delivery));
                }
                Command::Cancel(evaluation_id) => {
                    cancelled.insert(evaluation_id);
                    for (_, (request, delivery)) in scheduler.remove_evaluation(evaluation_id) {
                        told.remove(&request.run_id);
                        self.skip_cancelled(&request, &delivery).await;
                    }
                    for run_id in scheduler.running_of(evaluation_id) {
                        if let Some(run) = running.get(&run_id) {
                            run.cancelled.store(true, Ordering::SeqCst);
                            let runtime = self.runtime.clone();
                            let name = run.name.clone();
                            tokio::spawn(async move {
                                if let Err(error) = runtime.stop(&name).await {
                                    tracing::warn!(%error, sandbox = %name, "stop failed");
                                }
                            });
                        }
                    }
                }
                Command::Finished(run_id) => {
                    scheduler.finished(run_id);
                    running.remove(&run_id);
                }
                Command::ConnectionLost => {
                    scheduler.clear_waiting();
                    told.clear();
                }
            }
            while let Some((ticket, (request, delivery))) = scheduler.next_startable() {
                told.remove(&ticket.run_id);
                let flag = Arc::new(AtomicBool::new(false));
                running.insert(
                    ticket.run_id,
                    Running {
                        cancelled: flag.clone(),
                        name: sandbox_name(request.run_id, request.attempt),
                    },
                );
                let execution = Execution {
                    request,
                    delivery,
                    runtime: self.runtime.clone(),
                    sink: self.sink.clone(),
                    cancelled: flag,
                };
                let done = self.completions.clone();
                self.executions.spawn(async move {
                    execution.run().await;
                    let _ = done.send(Command::Finished(ticket.run_id)).await;
                });
            }
            crate::metrics::scheduler(scheduler.running_count(), scheduler.waiting_count());
            let reasons: Vec<(Attempt, String)> = scheduler
                .waiting_reasons()
                .into_iter()
                .filter(|(ticket, reason)| told.get(&ticket.run_id) != Some(reason))
                .map(|(ticket, reason)| {
                    (
                        Attempt {
                            run_id: ticket.run_id,
                            evaluation_id: ticket.evaluation_id,
                            attempt: 1,
                        },
                        reason,
                    )
                })
                .collect();
            for (attempt, reason) in reasons {
                told.insert(attempt.run_id, reason.clone());
                self.sink.status(attempt, RunState::Scheduling, Some(reason), None).await;
            }
        }
    }

    async fn is_cancelled(&self, cancelled: &mut HashSet<EvaluationId>, evaluation_id: EvaluationId) -> bool {
        if cancelled.contains(&evaluation_id) {
            return true;
        }
        match self.db.is_cancel_requested(evaluation_id).await {
            Ok(true) => {
                cancelled.insert(evaluation_id);
                true
            }
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(%error, "cannot check for cancellation; the control message will still apply");
                false
            }
        }
    }

    async fn skip_cancelled(&self, request: &RunRequested, delivery: &Delivery) {
        let attempt = Attempt {
            run_id: request.run_id,
            evaluation_id: request.evaluation_id,
            attempt: request.attempt,
        };
        self.sink
            .status(attempt, RunState::Cancelled, Some("cancelled before it started".into()), None)
            .await;
        let _ = airlock_mq::ack(delivery, airlock_mq::topology::RUN_REQUESTS_QUEUE).await;
    }
}
