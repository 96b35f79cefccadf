//! Consuming run reports (from this replica's report partitions, see
//! [`crate::partitions`]) and control messages. Reports are applied in batches: up to
//! `batch_size` deliveries, or what arrived within `batch_wait` of the first. A batch is
//! acknowledged only after its transaction committed and its updates were published;
//! if anything fails, every delivery of the batch is returned to the queue, and the
//! redelivery is absorbed by the idempotent apply.
//!
//! Each report's trace context (its `traceparent` header) follows its run: log lines
//! about the run carry its trace id, and the update published about an evaluation
//! carries the context of a report that changed it.

use airlock_core::messages::{Control, RunReport, Update};
use airlock_core::replica::{ReplicaService, partitions_of};
use airlock_core::{RunId, TraceContext};
use airlock_db::ResultsDb;
use airlock_db::results::Applied;
use airlock_mq::{Delivery, Publisher, topology};
use airlock_service::{Readiness, ReplicaLease};

use crate::partitions::{Inbound, Partitions};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A batch also ends once its messages hold this many bytes, so one transaction (and the
/// update it publishes) stays a few thousand events even when reports are large.
const BATCH_BYTES: usize = 2 * 1024 * 1024;

pub struct Consumer {
    pub url: String,
    pub db: ResultsDb,
    pub lease: ReplicaLease,
    pub readiness: Readiness,
    pub batch_size: u16,
    pub batch_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Mq(#[from] airlock_mq::MqError),
    #[error(transparent)]
    Db(#[from] airlock_db::DbError),
}

impl Consumer {
    pub async fn run(self, shutdown: CancellationToken) {
        airlock_mq::reconnecting(&shutdown, || async {
            let result = self.session(&shutdown).await;
            self.readiness.set("rabbitmq", false);
            result
        })
        .await;
    }

    /// The report partitions assigned to this replica among the live ones, and whether
    /// any other replica is alive.
    async fn assignment(&self) -> (Vec<u16>, bool) {
        let me = self.lease.id().to_owned();
        let mut ids = match self.db.live_replicas(ReplicaService::ResultProcessor).await {
            Ok(live) => live.into_iter().map(|r| r.id).collect::<Vec<_>>(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the live result-processors; keeping the assignment");
                return (self.lease.partitions(), false);
            }
        };
        if !ids.contains(&me) {
            ids.push(me.clone());
        }
        let mine = partitions_of(&me, &ids);
        self.lease.set_partitions(mine.clone());
        (mine, ids.len() > 1)
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let connection = airlock_mq::connect(&self.url, "airlock-result-processor").await?;
        topology::declare_all(&connection).await?;
        let publisher = Publisher::new(&connection).await?;
        let (mut partitions, mut inbound) = Partitions::new();
        let (mine, _) = self.assignment().await;
        for partition in &mine {
            partitions.subscribe(&connection, *partition).await?;
        }
        let mut control = airlock_mq::consume(
            &connection,
            topology::RESULTS_CONTROL_QUEUE,
            16,
            "results-control",
        )
        .await?;
        self.readiness.set("rabbitmq", true);
        tracing::info!(partitions = ?mine, "consuming run reports");
        // The first rebalance (soon) subscribes to the other partitions as a standby.
        let mut rebalance = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_millis(500),
            self.lease.length() / 3,
        );
        rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = connection.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                () = airlock_mq::closed(&connection) => return Err(airlock_mq::MqError::ConnectionLost.into()),
                _ = rebalance.tick() => {
                    let (mine, others_alive) = self.assignment().await;
                    partitions.rebalance(&connection, &mine, others_alive).await?;
                }
                first = inbound.recv() => {
                    let Some(first) = first else { return Err(airlock_mq::MqError::ConnectionLost.into()) };
                    let Some(first) = accepted(&mut partitions, first) else { continue };
                    let mut bytes = first.data.len();
                    let mut batch = vec![first];
                    let deadline = tokio::time::Instant::now() + self.batch_wait;
                    while batch.len() < usize::from(self.batch_size) && bytes < BATCH_BYTES {
                        match tokio::time::timeout_at(deadline, inbound.recv()).await {
                            Ok(Some(next)) => {
                                if let Some(delivery) = accepted(&mut partitions, next) {
                                    bytes += delivery.data.len();
                                    batch.push(delivery);
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                    self.apply_batch(&publisher, batch).await?;
                }
                delivery = control.next() => {
                    let Some(delivery) = delivery else { return Err(airlock_mq::MqError::ConnectionLost.into()) };
                    self.apply_control(&publisher, delivery.map_err(airlock_mq::MqError::from)?).await?;
                }
            }
        }
    }

    async fn apply_batch(
        &self,
        publisher: &Publisher,
        deliveries: Vec<Delivery>,
    ) -> Result<(), Error> {
        let queue = topology::RUN_REPORTS_QUEUE;
        let mut reports = Vec::with_capacity(deliveries.len());
        let mut accepted = Vec::with_capacity(deliveries.len());
        let mut traces = Traces::default();
        for delivery in deliveries {
            airlock_mq::metrics::consumed(queue);
            if let Some(report) = airlock_mq::decode::<RunReport>(&delivery, queue).await {
                traces.note(report.run_id(), &delivery);
                reports.push(report);
                accepted.push(delivery);
            }
        }
        if reports.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let outcome = match self.db.apply_reports(&reports).await {
            Ok(applied) => publish(publisher, &applied, &traces)
                .await
                .map(|()| applied),
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(applied) => {
                crate::metrics::batch(reports.len(), started.elapsed().as_secs_f64(), &applied);
                log_applied(&applied, &traces);
                for delivery in &accepted {
                    airlock_mq::ack(delivery, queue).await?;
                }
                self.readiness.set("postgres", true);
                Ok(())
            }
            Err(error) => {
                if let Error::Db(db) = &error
                    && db.is_unavailable()
                {
                    self.readiness.set("postgres", false);
                }
                for delivery in &accepted {
                    let _ = airlock_mq::requeue(delivery, queue).await;
                }
                Err(error)
            }
        }
    }

    async fn apply_control(&self, publisher: &Publisher, delivery: Delivery) -> Result<(), Error> {
        let queue = topology::RESULTS_CONTROL_QUEUE;
        airlock_mq::metrics::consumed(queue);
        let Some(control) = airlock_mq::decode::<Control>(&delivery, queue).await else {
            return Ok(());
        };
        let trace = airlock_mq::trace_context(&delivery)
            .map_or_else(TraceContext::new_root, |parent| parent.child());
        let result = match control {
            Control::EvaluationCancelledV1 {
                evaluation_id, at, ..
            } => {
                tracing::info!(%evaluation_id, trace_id = %trace.trace_id(), "cancelling the evaluation's waiting runs");
                match self.db.cancel_waiting_runs(evaluation_id, at).await {
                    Ok(applied) => {
                        let traces = Traces {
                            fallback: Some(trace),
                            ..Traces::default()
                        };
                        log_applied(&applied, &traces);
                        publish(publisher, &applied, &traces).await
                    }
                    Err(error) => Err(error.into()),
                }
            }
        };
        match result {
            Ok(()) => Ok(airlock_mq::ack(&delivery, queue).await?),
            Err(error) => {
                let _ = airlock_mq::requeue(&delivery, queue).await;
                Err(error)
            }
        }
    }
}

/// The trace context of each run in a batch: this service's span of the first report
/// about the run (a new trace for a report that carries none).
#[derive(Default)]
struct Traces {
    runs: HashMap<RunId, TraceContext>,
    /// For runs no report named (a cancellation's runs).
    fallback: Option<TraceContext>,
}

impl Traces {
    fn note(&mut self, run_id: RunId, delivery: &Delivery) {
        self.runs.entry(run_id).or_insert_with(|| {
            airlock_mq::trace_context(delivery)
                .map_or_else(TraceContext::new_root, |parent| parent.child())
        });
    }

    fn of(&self, run_id: RunId) -> Option<TraceContext> {
        self.runs.get(&run_id).copied().or(self.fallback)
    }

    fn trace_id(&self, run_id: RunId) -> String {
        self.of(run_id).map(|t| t.trace_id()).unwrap_or_default()
    }
}

/// One line per run that started, finished or had a report refused.
fn log_applied(applied: &Applied, traces: &Traces) {
    for run in &applied.started {
        tracing::debug!(
            run_id = %run.run_id,
            evaluation_id = %run.evaluation_id,
            trace_id = traces.trace_id(run.run_id),
            queue_wait_secs = run.seconds,
            "run started"
        );
    }
    for run in &applied.finished {
        tracing::info!(
            run_id = %run.run_id,
            evaluation_id = %run.evaluation_id,
            trace_id = traces.trace_id(run.run_id),
            state = %run.state,
            duration_secs = run.seconds,
            "run finished"
        );
    }
    for rejection in &applied.rejected {
        tracing::warn!(
            run_id = %rejection.run_id,
            evaluation_id = %rejection.evaluation_id,
            trace_id = traces.trace_id(rejection.run_id),
            reason = %rejection.reason,
            "run report rejected"
        );
    }
}

/// The delivery of a live subscription; `None` for one whose subscription was closed
/// since (the broker has returned it to its queue) or for a subscription that ended.
fn accepted(partitions: &mut Partitions, inbound: Inbound) -> Option<Delivery> {
    match inbound {
        Inbound::Delivery {
            partition,
            generation,
            delivery,
        } => partitions
            .accept(partition, generation)
            .then_some(*delivery),
        Inbound::Ended {
            partition,
            generation,
        } => {
            partitions.ended(partition, generation);
            None
        }
    }
}

/// Publishes one update per evaluation the batch changed, waiting for confirms. Each
/// carries the trace context of one of the runs it changed.
async fn publish(publisher: &Publisher, applied: &Applied, traces: &Traces) -> Result<(), Error> {
    let mut pending = Vec::with_capacity(applied.updates.len());
    for update in &applied.updates {
        let payload = serde_json::to_vec(&Update::EvaluationUpdatedV1(update.clone()))
            .map_err(airlock_mq::MqError::from)?;
        let trace = update
            .runs
            .iter()
            .map(|run| run.id)
            .chain(update.events.iter().map(|event| event.run_id))
            .find_map(|run_id| traces.of(run_id));
        pending.push(
            publisher
                .send(topology::UPDATES_EXCHANGE, "", &payload, 0, trace.as_ref())
                .await?,
        );
    }
    for confirm in pending {
        confirm.confirmed().await?;
    }
    Ok(())
}
