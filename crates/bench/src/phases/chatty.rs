//! Phase 5: many chatty runs at once (one evaluation, each epoch `seq 1 N`): events per
//! second from their workers into PostgreSQL, from the first run's `running` status to
//! the evaluation seen finished, and per run that every event is stored once, in order
//! (seqs 1, 2, 3, ... and the lines in the order the program wrote them).

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

use airlock_core::RunState;

use crate::api::{Api, status_of, ts_of};

pub struct Chatty {
    pub runs: u64,
    pub lines: u64,
    pub persisted: u64,
    pub elapsed: Duration,
    /// Runs whose events were out of order, doubled or missing, with why.
    pub disorder: Vec<String>,
    pub succeeded: u64,
}

impl Chatty {
    pub fn per_sec(&self) -> f64 {
        self.persisted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(api: &Api, runs: u64, lines: u64) -> Result<Chatty> {
    let command = format!("seq 1 {lines}");
    let mut spec = super::spec("bench-chatty", &["sh", "-c", &command], "30m");
    spec["epochs"] = json!(runs);
    let (status, body) = api.submit(&spec).await?;
    if status != 201 {
        bail!("the chatty evaluation was refused with {status}: {body}");
    }
    let id = body["id"].as_str().context("no id")?.to_owned();
    let run_ids: Vec<String> = body["runs"]
        .as_array()
        .context("no runs")?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    let evaluation = api
        .wait_evaluation_finished(&id, Duration::from_secs(1800), Duration::from_millis(20))
        .await
        .context("the chatty evaluation")?;
    let finished_at = Utc::now();
    let mut persisted = 0;
    let mut first_running: Option<DateTime<Utc>> = None;
    let mut disorder = Vec::new();
    for run in &run_ids {
        let events = api.run_events(run).await?;
        persisted += events.len() as u64;
        if let Some(running) = events
            .iter()
            .find(|e| status_of(e) == Some(RunState::Running))
            .and_then(ts_of)
        {
            first_running = Some(first_running.map_or(running, |f| f.min(running)));
        }
        if let Some(problem) = order_problem(&events, lines) {
            disorder.push(format!("run {run}: {problem}"));
        }
    }
    let start = first_running.context("no chatty run reached running")?;
    Ok(Chatty {
        runs,
        lines,
        persisted,
        elapsed: (finished_at - start).to_std().unwrap_or_default(),
        disorder,
        succeeded: evaluation["counts"]["succeeded"].as_u64().unwrap_or(0),
    })
}

/// Why a run's events are not each stored once in order, if they are not.
fn order_problem(events: &[serde_json::Value], lines: u64) -> Option<String> {
    for (index, event) in events.iter().enumerate() {
        let seq = event["seq"].as_u64().unwrap_or(0);
        if seq != index as u64 + 1 {
            return Some(format!("event {} has seq {seq}", index + 1));
        }
    }
    let written: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "log" && e["stream"] == "stdout")
        .filter_map(|e| e["message"].as_str()?.trim().parse().ok())
        .collect();
    if written.len() as u64 != lines || written.iter().zip(1..).any(|(n, expected)| *n != expected)
    {
        return Some(format!(
            "{} stdout lines, not 1..={lines} in order",
            written.len()
        ));
    }
    None
}
