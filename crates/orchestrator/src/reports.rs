//! Sending run reports to the result-processor, and retries' run requests back to the run
//! queue. A message is resent until the broker confirms it, across reconnects: consumers
//! absorb duplicates, so resending is always safe, and losing a message never is. Every
//! message carries the trace context of its attempt as its `traceparent` header.

use airlock_core::messages::{RunReport, RunRequest, RunStatusChange};
use airlock_core::{EvaluationId, RunId, RunState, TraceContext};
use airlock_mq::{Publisher, topology};
use airlock_service::ReplicaLease;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub struct ReportSink {
    publisher: watch::Receiver<Option<Arc<Publisher>>>,
    /// Nothing is published once this replica's lease is not held: survivors may have
    /// taken its runs over.
    lease: ReplicaLease,
}

/// Identifies one attempt in status reports, with the trace it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub attempt: u32,
    pub trace: TraceContext,
}

impl ReportSink {
    pub fn new(publisher: watch::Receiver<Option<Arc<Publisher>>>, lease: ReplicaLease) -> Self {
        Self { publisher, lease }
    }

    /// Publishes a report to its run's partition.
    pub async fn send(&self, report: &RunReport, trace: &TraceContext) {
        let key = topology::report_routing_key(report.run_id());
        self.publish(topology::REPORTS_EXCHANGE, &key, report, trace)
            .await;
    }

    /// Publishes a run request (a retry's next attempt).
    pub async fn request(&self, request: &RunRequest, trace: &TraceContext) {
        self.publish(
            topology::RUNS_EXCHANGE,
            topology::RUN_ROUTING_KEY,
            request,
            trace,
        )
        .await;
    }

    async fn publish<T: serde::Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &T,
        trace: &TraceContext,
    ) {
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot encode message");
                return;
            }
        };
        let mut publisher = self.publisher.clone();
        loop {
            if !self.lease.is_held() {
                tracing::warn!(exchange, "not published: this replica's lease is lost");
                return;
            }
            let current = publisher.borrow_and_update().clone();
            if let Some(current) = current {
                let sent = match current
                    .send(exchange, routing_key, &payload, 0, Some(trace))
                    .await
                {
                    Ok(pending) => pending.confirmed().await,
                    Err(error) => Err(error),
                };
                match sent {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, exchange, "message not confirmed; will retry")
                    }
                }
            }
            // Wait for a (new) connection, or retry after a pause.
            let _ = tokio::time::timeout(Duration::from_secs(1), publisher.changed()).await;
        }
    }

    pub async fn status(
        &self,
        attempt: Attempt,
        state: RunState,
        reason: Option<String>,
        exit_code: Option<i32>,
    ) {
        let report = status_report(attempt, state, reason, exit_code);
        self.send(&report, &attempt.trace).await;
    }
}

/// A status report of `attempt`, logged as the run's state change (the one place both
/// the sink and an attempt's report stream make one).
pub(crate) fn status_report(
    attempt: Attempt,
    state: RunState,
    reason: Option<String>,
    exit_code: Option<i32>,
) -> RunReport {
    tracing::info!(
        run_id = %attempt.run_id,
        evaluation_id = %attempt.evaluation_id,
        attempt = attempt.attempt,
        trace_id = %attempt.trace.trace_id(),
        %state,
        reason = reason.as_deref().unwrap_or(""),
        "run state"
    );
    RunReport::StatusV1(RunStatusChange {
        run_id: attempt.run_id,
        evaluation_id: attempt.evaluation_id,
        attempt: attempt.attempt,
        state,
        reason,
        exit_code,
        at: Utc::now(),
    })
}
