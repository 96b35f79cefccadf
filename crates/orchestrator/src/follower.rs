//! Follows a sandbox's output: the worker's JSON lines become `run_events` reports, in
//! order. Lines are handed on as soon as the output has no more to give at once (no
//! timer: the report stream coalesces whatever queues up while a message waits for its
//! confirm), so the first event of a run is on its way within a read. Remembers how the
//! program ended, as the worker told it.

use airlock_core::event::{EventBody, WorkerEvent};
use futures_util::FutureExt;
use tokio::io::AsyncBufReadExt;

use crate::report_stream::ReportStream;
use crate::runtime::OutputStream;

/// Most events in one report.
const BATCH_EVENTS: usize = 512;

/// What the worker said about the end of the program.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub events: u64,
}

pub async fn follow(output: OutputStream, reports: &mut ReportStream) -> Outcome {
    let attempt = reports.attempt();
    let mut lines = output.lines();
    let mut outcome = Outcome::default();
    let mut batch: Vec<WorkerEvent> = Vec::new();
    loop {
        // A line already buffered is taken at once; when the next one would have to be
        // waited for, the batch goes first. `next_line` is cancel-safe.
        let next = match lines.next_line().now_or_never() {
            Some(next) => next,
            None => {
                reports.events(std::mem::take(&mut batch)).await;
                lines.next_line().await
            }
        };
        match next {
            Ok(Some(line)) => match serde_json::from_str::<WorkerEvent>(&line) {
                Ok(event) => {
                    match &event.body {
                        EventBody::Exit { code, signal } => {
                            outcome.exit_code = *code;
                            outcome.signal = *signal;
                        }
                        EventBody::TimedOut { .. } => outcome.timed_out = true,
                        _ => {}
                    }
                    outcome.events += 1;
                    batch.push(event);
                    if batch.len() >= BATCH_EVENTS {
                        reports.events(std::mem::take(&mut batch)).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(run_id = %attempt.run_id, evaluation_id = %attempt.evaluation_id, %error, "unreadable line from the worker")
                }
            },
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(run_id = %attempt.run_id, evaluation_id = %attempt.evaluation_id, %error, "sandbox output failed");
                break;
            }
        }
    }
    // The end of the output: the final status follows.
    reports.events_with_next(batch).await;
    outcome
}
