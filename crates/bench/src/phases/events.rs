//! Phase 3: event throughput from the worker through the orchestrator and the
//! result-processor into PostgreSQL, with one chatty run (`seq 1 N`) followed through
//! the API as a client would: paging its events until the terminal status shows up.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

use airlock_core::RunState;

use crate::api::{Api, status_of, ts_of};

pub struct Events {
    /// Lines the program wrote.
    pub lines: u64,
    /// Events persisted for the run (all kinds).
    pub persisted: u64,
    /// Its stdout log events.
    pub stdout_lines: u64,
    /// Lines the worker dropped, as counted by its warnings.
    pub dropped: u64,
    /// The distinct warning messages (the first few).
    pub warnings: Vec<String>,
    /// From the `running` status ts to the moment the last event was read.
    pub elapsed: Duration,
    pub state: RunState,
}

impl Events {
    pub fn per_sec(&self) -> f64 {
        self.persisted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct Tally {
    persisted: u64,
    stdout_lines: u64,
    dropped: u64,
    warnings: Vec<String>,
    running: Option<DateTime<Utc>>,
    terminal: Option<RunState>,
}

impl Tally {
    fn add(&mut self, event: &Value) {
        self.persisted += 1;
        match event["type"].as_str() {
            Some("log") if event["stream"].as_str() == Some("stdout") => self.stdout_lines += 1,
            Some("warning") => {
                self.dropped += event["count"].as_u64().unwrap_or(0);
                let message = event["message"].as_str().unwrap_or("").to_owned();
                if self.warnings.len() < 3 && !self.warnings.contains(&message) {
                    self.warnings.push(message);
                }
            }
            _ => {}
        }
        match status_of(event) {
            Some(RunState::Running) => self.running = ts_of(event),
            Some(state) if state.is_terminal() => self.terminal = Some(state),
            _ => {}
        }
    }
}

pub async fn run(api: &Api, lines: u64) -> Result<Events> {
    let command = format!("seq 1 {lines}");
    let spec = super::spec("bench-events", &["sh", "-c", &command], "30m");
    let (_, run) = api.submit_one(&spec).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    let mut tally = Tally::default();
    let mut after = 0;
    let finished_at = loop {
        let (events, next) = api.events_page(&run, after).await?;
        let seen_at = Utc::now();
        let full = events.len() >= 5000;
        events.iter().for_each(|e| tally.add(e));
        after = next;
        if tally.terminal.is_some() {
            break seen_at;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the chatty run {run} did not finish within 30 minutes");
        }
        if !full {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Anything persisted after the terminal status would be a platform bug; count it.
    loop {
        let (events, next) = api.events_page(&run, after).await?;
        if events.is_empty() {
            break;
        }
        events.iter().for_each(|e| tally.add(e));
        after = next;
    }
    let running = tally
        .running
        .context("the chatty run has no running status")?;
    Ok(Events {
        lines,
        persisted: tally.persisted,
        stdout_lines: tally.stdout_lines,
        dropped: tally.dropped,
        warnings: tally.warnings,
        elapsed: (finished_at - running).to_std().unwrap_or_default(),
        state: tally.terminal.unwrap_or(RunState::Error),
    })
}
