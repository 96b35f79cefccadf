//! Phase 2: from submission to sandbox, with free capacity. One evaluation at a time:
//! the client's clock just before the POST against the `ts` of the run's `scheduling`
//! status (the orchestrator is about to create the sandbox) and of its `starting` status
//! (the sandbox exists). Both clocks are this machine's.

use anyhow::{Context, Result};
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
    /// Runs that did not succeed or lacked a status event.
    pub problems: Vec<String>,
}

/// The `ts` of the last `scheduling` status before the first `starting` one, and of that
/// `starting` one.
fn dispatch_times(events: &[Value]) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut scheduling = None;
    for event in events {
        match status_of(event) {
            Some(RunState::Scheduling) => scheduling = ts_of(event),
            Some(RunState::Starting) => return (scheduling, ts_of(event)),
            _ => {}
        }
    }
    (scheduling, None)
}

fn since(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Option<Duration> {
    (end? - start).to_std().ok()
}

async fn sample(api: &Api, index: u64) -> Result<(Option<Duration>, Option<Duration>, String)> {
    let spec = super::spec(&format!("bench-latency-{index}"), &["true"], "1m");
    let posted = Utc::now();
    let (_, run) = api.submit_one(&spec).await?;
    let state = api
        .wait_run_finished(&run, Duration::from_secs(60))
        .await
        .context("waiting for a latency sample")?;
    let events = api.run_events(&run).await?;
    let (scheduling, starting) = dispatch_times(&events);
    let mut problem = String::new();
    if state != RunState::Succeeded {
        problem = format!("run {run} ended {state}");
    } else if scheduling.is_none() || starting.is_none() {
        problem = format!("run {run} lacks a scheduling or starting event");
    }
    Ok((since(posted, scheduling), since(posted, starting), problem))
}

/// One warm-up run, then `samples` timed ones.
pub async fn run(api: &Api, samples: u64) -> Result<Latency> {
    sample(api, 0).await?;
    let mut result = Latency {
        samples,
        scheduling: Vec::new(),
        starting: Vec::new(),
        problems: Vec::new(),
    };
    for index in 1..=samples {
        let (scheduling, starting, problem) = sample(api, index).await?;
        result.scheduling.extend(scheduling);
        result.starting.extend(starting);
        if !problem.is_empty() {
            result.problems.push(problem);
        }
    }
    Ok(result)
}
