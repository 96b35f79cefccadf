//! Phase 2: from submission to sandbox, with free capacity. One evaluation at a time:
//! the client's clock just before the POST against the `ts` of the run's `scheduling`
//! status (the orchestrator is about to create the sandbox), its `starting` status (the
//! sandbox exists) and its `running` status (the program started), and against the
//! moment the run's first line (`echo`) arrives on the evaluation's WebSocket, opened
//! right after the POST answered, as a browser would. All clocks are this machine's.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

use airlock_core::RunState;

use crate::api::{Api, status_of, ts_of};

pub struct Latency {
    pub samples: u64,
    /// POST -> `scheduling` (outbox relay, RabbitMQ, orchestrator).
    pub scheduling: Vec<Duration>,
    /// POST -> `starting` (the sandbox was created).
    pub starting: Vec<Duration>,
    /// POST -> `running` (the worker started the program).
    pub running: Vec<Duration>,
    /// POST -> the program's first line shown on the evaluation's WebSocket.
    pub first_event: Vec<Duration>,
    /// Runs that did not succeed or lacked a status event.
    pub problems: Vec<String>,
}

/// The `ts` of the last `scheduling` status before the first `starting` one, of that
/// `starting` one and of the first `running` one.
fn dispatch_times(events: &[Value]) -> [Option<DateTime<Utc>>; 3] {
    let mut times = [None; 3];
    for event in events {
        match status_of(event) {
            Some(RunState::Scheduling) if times[1].is_none() => times[0] = ts_of(event),
            Some(RunState::Starting) if times[1].is_none() => times[1] = ts_of(event),
            Some(RunState::Running) if times[2].is_none() => times[2] = ts_of(event),
            _ => {}
        }
    }
    times
}

fn since(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Option<Duration> {
    (end? - start).to_std().ok()
}

/// Reads the stream until the first event that is not a status: the program's line.
async fn first_line(api: &Api, evaluation: &str) -> Result<DateTime<Utc>> {
    let mut stream = api
        .stream(evaluation)
        .await
        .context("opening the evaluation's stream")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let Some(frame) = stream.next(Duration::from_secs(60)).await? else {
            bail!("the stream closed before the run's first line");
        };
        if frame["type"] == "event" && frame["event"]["type"] != "status" {
            return Ok(Utc::now());
        }
    }
    bail!("no line on the stream within 60 s")
}

struct Sample {
    times: [Option<Duration>; 4],
    problem: Option<String>,
}

async fn sample(api: &Api, index: u64) -> Result<Sample> {
    let spec = super::spec(&format!("bench-latency-{index}"), &["echo", "hello"], "1m");
    let posted = Utc::now();
    let (evaluation, run) = api.submit_one(&spec).await?;
    let seen = first_line(api, &evaluation).await?;
    let state = api
        .wait_run_finished(&run, Duration::from_secs(60))
        .await
        .context("waiting for a latency sample")?;
    let events = api.run_events(&run).await?;
    let [scheduling, starting, running] = dispatch_times(&events);
    let problem = if state != RunState::Succeeded {
        Some(format!("run {run} ended {state}"))
    } else if scheduling.is_none() || starting.is_none() || running.is_none() {
        Some(format!(
            "run {run} lacks a scheduling, starting or running event"
        ))
    } else {
        None
    };
    Ok(Sample {
        times: [
            since(posted, scheduling),
            since(posted, starting),
            since(posted, running),
            since(posted, Some(seen)),
        ],
        problem,
    })
}

/// One warm-up run, then `samples` timed ones.
pub async fn run(api: &Api, samples: u64) -> Result<Latency> {
    sample(api, 0).await?;
    let mut result = Latency {
        samples,
        scheduling: Vec::new(),
        starting: Vec::new(),
        running: Vec::new(),
        first_event: Vec::new(),
        problems: Vec::new(),
    };
    for index in 1..=samples {
        let sample = sample(api, index).await?;
        let [scheduling, starting, running, first_event] = sample.times;
        result.scheduling.extend(scheduling);
        result.starting.extend(starting);
        result.running.extend(running);
        result.first_event.extend(first_event);
        result.problems.extend(sample.problem);
    }
    Ok(result)
}
