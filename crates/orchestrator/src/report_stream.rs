//! The reports of one attempt, in order and without waiting. Statuses and event batches
//! are queued; one task publishes them, and each message carries everything that queued
//! up while the previous one waited for the broker's confirm (a `run_reports.v1` batch
//! when there is more than one). A report the attempt knows will soon be followed by
//! another (`*_with_next`: "creating the sandbox" before "starting", the last events
//! before the final status) waits up to [`LINGER`] for it, so a short run costs about
//! three messages, not five. An attempt never stops for a confirm except where it must know
//! its reports are safe: [`ReportStream::flush`] before the request is acknowledged
//! without a sandbox and before the attempt's claim is released.
//!
//! The queue is bounded: a program that writes faster than its reports are confirmed
//! is slowed down through the follower, as before.

use airlock_core::RunState;
use airlock_core::event::WorkerEvent;
use airlock_core::messages::{RunEvents, RunReport};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use crate::reports::{Attempt, ReportSink, status_report};

/// Reports queued ahead of the broker's confirms.
const QUEUE: usize = 64;
/// How long a report that will soon be followed waits for its successor.
pub const LINGER: Duration = Duration::from_millis(50);
/// Most reports and events one message carries.
const MAX_REPORTS: usize = 64;
const MAX_EVENTS: usize = 2048;

/// A report, or a request to send what is queued at once (`report: None`).
struct Queued {
    report: Option<RunReport>,
    /// Sent without waiting for a successor.
    urgent: bool,
}

pub struct ReportStream {
    attempt: Attempt,
    queue: Option<mpsc::Sender<Queued>>,
    /// How many queued reports are confirmed (or given up with the lease).
    done: watch::Receiver<u64>,
    queued: u64,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ReportStream {
    pub fn new(attempt: Attempt, sink: ReportSink) -> Self {
        let (queue, reports) = mpsc::channel(QUEUE);
        let (done_tx, done) = watch::channel(0);
        let task = tokio::spawn(publish(attempt, sink, reports, done_tx));
        Self {
            attempt,
            queue: Some(queue),
            done,
            queued: 0,
            task: Some(task),
        }
    }

    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Queues a status change of the attempt, sent at once.
    pub async fn status(
        &mut self,
        state: RunState,
        reason: Option<String>,
        exit_code: Option<i32>,
    ) {
        self.queue_status(state, reason, exit_code, true).await;
    }

    /// Queues a status change that another report follows soon (it waits for it, at most
    /// [`LINGER`]).
    pub async fn status_with_next(
        &mut self,
        state: RunState,
        reason: Option<String>,
        exit_code: Option<i32>,
    ) {
        self.queue_status(state, reason, exit_code, false).await;
    }

    async fn queue_status(
        &mut self,
        state: RunState,
        reason: Option<String>,
        exit_code: Option<i32>,
        urgent: bool,
    ) {
        let report = status_report(self.attempt, state, reason, exit_code);
        self.push(Some(report), urgent).await;
    }

    /// Queues events read from the worker, in order, sent at once.
    pub async fn events(&mut self, events: Vec<WorkerEvent>) {
        self.queue_events(events, true).await;
    }

    /// Queues the last events, which the final status follows soon.
    pub async fn events_with_next(&mut self, events: Vec<WorkerEvent>) {
        self.queue_events(events, false).await;
    }

    async fn queue_events(&mut self, events: Vec<WorkerEvent>, urgent: bool) {
        if events.is_empty() {
            return;
        }
        let attempt = self.attempt;
        let report = RunReport::EventsV1(RunEvents {
            run_id: attempt.run_id,
            evaluation_id: attempt.evaluation_id,
            attempt: attempt.attempt,
            events,
        });
        self.push(Some(report), urgent).await;
    }

    async fn push(&mut self, report: Option<RunReport>, urgent: bool) {
        if let Some(queue) = &self.queue
            && queue.send(Queued { report, urgent }).await.is_ok()
        {
            self.queued += 1;
        }
    }

    /// Waits until everything queued so far is confirmed by the broker (or will never
    /// be: this replica's lease is lost, and its runs are another replica's now).
    pub async fn flush(&mut self) {
        self.push(None, true).await;
        let queued = self.queued;
        let _ = self.done.wait_for(|done| *done >= queued).await;
    }

    /// Flushes and ends the publishing task.
    pub async fn finish(mut self) {
        self.flush().await;
        self.queue.take();
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the report publisher failed");
        }
    }
}

impl Drop for ReportStream {
    fn drop(&mut self) {
        // Not finished (the attempt's task was cancelled): what is queued is still
        // published, in order, by the task, which ends with the queue.
        self.queue.take();
    }
}

async fn publish(
    attempt: Attempt,
    sink: ReportSink,
    mut queue: mpsc::Receiver<Queued>,
    done: watch::Sender<u64>,
) {
    while let Some(first) = queue.recv().await {
        let mut urgent = first.urgent;
        let mut items = 1u64;
        let mut batch: Vec<RunReport> = first.report.into_iter().collect();
        let mut events: usize = batch.iter().map(event_count).sum();
        let linger_until = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_REPORTS && events < MAX_EVENTS {
            let next = match queue.try_recv() {
                Ok(next) => next,
                Err(_) if urgent => break,
                // Wait for the successor this report expects.
                Err(_) => match tokio::time::timeout_at(linger_until, queue.recv()).await {
                    Ok(Some(next)) => next,
                    Ok(None) | Err(_) => break,
                },
            };
            items += 1;
            urgent |= next.urgent;
            if let Some(report) = next.report {
                events += event_count(&report);
                batch.push(report);
            }
        }
        if let Some(message) = RunReport::combine(merge_events(batch)) {
            sink.send(&message, &attempt.trace).await;
        }
        done.send_modify(|done| *done += items);
    }
}

fn event_count(report: &RunReport) -> usize {
    match report {
        RunReport::EventsV1(batch) => batch.events.len(),
        _ => 1,
    }
}

/// Consecutive event reports become one.
fn merge_events(batch: Vec<RunReport>) -> Vec<RunReport> {
    let mut merged: Vec<RunReport> = Vec::with_capacity(batch.len());
    for report in batch {
        match (merged.last_mut(), report) {
            (Some(RunReport::EventsV1(last)), RunReport::EventsV1(next))
                if last.attempt == next.attempt =>
            {
                last.events.extend(next.events);
            }
            (_, report) => merged.push(report),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::event::EventBody;
    use airlock_core::messages::RunStatusChange;
    use airlock_core::{EvaluationId, RunId};
    use chrono::Utc;

    fn events(run_id: RunId, evaluation_id: EvaluationId, seqs: &[u64]) -> RunReport {
        RunReport::EventsV1(RunEvents {
            run_id,
            evaluation_id,
            attempt: 1,
            events: seqs
                .iter()
                .map(|seq| WorkerEvent {
                    seq: *seq,
                    ts: Utc::now(),
                    body: EventBody::Log {
                        stream: airlock_core::event::LogStream::Stdout,
                        message: format!("line {seq}"),
                        truncated: false,
                    },
                })
                .collect(),
        })
    }

    #[test]
    fn consecutive_event_batches_merge_and_statuses_keep_their_place() {
        let (run, evaluation) = (RunId::new(), EvaluationId::new());
        let status = RunReport::StatusV1(RunStatusChange {
            run_id: run,
            evaluation_id: evaluation,
            attempt: 1,
            state: RunState::Running,
            reason: None,
            exit_code: None,
            at: Utc::now(),
        });
        let merged = merge_events(vec![
            status.clone(),
            events(run, evaluation, &[1, 2]),
            events(run, evaluation, &[3]),
            status.clone(),
            events(run, evaluation, &[4]),
        ]);
        let shape: Vec<usize> = merged.iter().map(event_count).collect();
        assert_eq!(shape, [1, 3, 1, 1]);
        let RunReport::EventsV1(first) = &merged[1] else {
            panic!("events second: {merged:?}");
        };
        let seqs: Vec<u64> = first.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
}
