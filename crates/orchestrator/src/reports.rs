//! Sending run reports to the result-processor. A report is retried until the broker
//! confirms it, across reconnects: the result-processor absorbs duplicates, so retrying
//! is always safe, and losing a report never is.

use airlock_core::messages::{RunReport, RunStatusChange};
use airlock_core::{EvaluationId, RunId, RunState};
use airlock_mq::{Publisher, topology};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub struct ReportSink {
    publisher: watch::Receiver<Option<Arc<Publisher>>>,
}

/// Identifies one attempt in status reports.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub attempt: u32,
}

impl ReportSink {
    pub fn new(publisher: watch::Receiver<Option<Arc<Publisher>>>) -> Self {
        Self { publisher }
    }

    pub async fn send(&self, report: &RunReport) {
        let payload = match serde_json::to_vec(report) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot encode run report");
                return;
            }
        };
        let mut publisher = self.publisher.clone();
        loop {
            let current = publisher.borrow_and_update().clone();
            if let Some(current) = current {
                let sent = match current
                    .send(
                        topology::REPORTS_EXCHANGE,
                        topology::RUN_ROUTING_KEY,
                        &payload,
                        0,
                    )
                    .await
                {
                    Ok(pending) => pending.confirmed().await,
                    Err(error) => Err(error),
                };
                match sent {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(%error, "run report not confirmed; will retry"),
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
        tracing::info!(run_id = %attempt.run_id, %state, reason = reason.as_deref().unwrap_or(""), "run state");
        self.send(&RunReport::StatusV1(RunStatusChange {
            run_id: attempt.run_id,
            evaluation_id: attempt.evaluation_id,
            attempt: attempt.attempt,
            state,
            reason,
            exit_code,
            at: Utc::now(),
        }))
        .await;
    }
}
