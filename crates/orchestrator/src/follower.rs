//! Follows a sandbox's output: the worker's JSON lines become batched `run_events`
//! reports, in order. Remembers how the program ended, as the worker told it.

use airlock_core::event::{EventBody, WorkerEvent};
use airlock_core::messages::{RunEvents, RunReport};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::reports::{Attempt, ReportSink};
use crate::runtime::OutputStream;

const BATCH_EVENTS: usize = 512;
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Batches read ahead of the broker's confirms.
const PUBLISH_AHEAD: usize = 64;

/// What the worker said about the end of the program.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub events: u64,
}

pub async fn follow(output: OutputStream, attempt: Attempt, sink: &ReportSink) -> Outcome {
    // Reading never waits for the broker's confirms: batches go to a publishing task
    // through a bounded channel, so the worker's pipe keeps draining.
    let (batches, mut pending) = mpsc::channel::<Vec<WorkerEvent>>(PUBLISH_AHEAD);
    let publisher_sink = sink.clone();
    let publisher = tokio::spawn(async move {
        while let Some(events) = pending.recv().await {
            let report = RunReport::EventsV1(RunEvents {
                run_id: attempt.run_id,
                evaluation_id: attempt.evaluation_id,
                attempt: attempt.attempt,
                events,
            });
            publisher_sink.send(&report, &attempt.trace).await;
        }
    });
    let outcome = read(output, attempt, &batches).await;
    drop(batches);
    if let Err(error) = publisher.await {
        tracing::error!(%error, "event publisher failed");
    }
    outcome
}

async fn read(
    output: OutputStream,
    attempt: Attempt,
    batches: &mpsc::Sender<Vec<WorkerEvent>>,
) -> Outcome {
    let mut lines = output.lines();
    let mut outcome = Outcome::default();
    let mut batch: Vec<WorkerEvent> = Vec::new();
    loop {
        let next = if batch.is_empty() {
            lines.next_line().await
        } else {
            match tokio::time::timeout(BATCH_WAIT, lines.next_line()).await {
                Ok(line) => line,
                Err(_) => {
                    flush(&mut batch, batches).await;
                    continue;
                }
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
                        flush(&mut batch, batches).await;
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
    flush(&mut batch, batches).await;
    outcome
}

async fn flush(batch: &mut Vec<WorkerEvent>, batches: &mpsc::Sender<Vec<WorkerEvent>>) {
    if !batch.is_empty() {
        let _ = batches.send(std::mem::take(batch)).await;
    }
}
