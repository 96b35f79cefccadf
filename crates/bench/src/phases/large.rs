//! Phase 4: one evaluation of many runs (tasks x epochs of `/bin/true`): the time its one
//! POST takes and the size of the answer, the drain rate to the last run finished, the
//! time to list every run through the paged runs endpoint, and each service's peak
//! resident memory meanwhile.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use airlock_test_support::Service;

use crate::api::Api;
use crate::memory::PeakSampler;
use crate::platform::Pids;

pub struct Large {
    pub runs: u64,
    pub post: Duration,
    pub answer_bytes: usize,
    /// From the POST's answer to the evaluation seen finished.
    pub drain: Duration,
    pub status: String,
    pub succeeded: u64,
    /// Listing every run, `limit=1000` a page.
    pub listing: Duration,
    pub pages: u64,
    /// Distinct runs the listing returned.
    pub listed: u64,
    pub peak: HashMap<Service, u64>,
}

impl Large {
    pub fn drain_per_sec(&self) -> f64 {
        self.runs as f64 / self.drain.as_secs_f64().max(1e-9)
    }
}

pub async fn run(api: &Api, runs: u64, pids: Pids) -> Result<Large> {
    // An evaluation holds at most 100 epochs; the rest are tasks.
    let epochs = runs.min(100);
    let tasks = runs.div_ceil(epochs);
    let runs = tasks * epochs;
    let mut spec = super::spec("bench-large", &["true"], "5m");
    spec["epochs"] = json!(epochs);
    spec["tasks"] = (0..tasks)
        .map(|t| json!({"id": format!("task-{t}")}))
        .collect();
    let sampler = PeakSampler::start(pids);
    let began = Instant::now();
    let (status, body) = api.submit(&spec).await?;
    let post = began.elapsed();
    if status != 201 {
        bail!("the large evaluation was refused with {status}: {body}");
    }
    let id = body["id"].as_str().context("no id")?.to_owned();
    let answer_bytes = body.to_string().len();
    let drained = Instant::now();
    let finished = api
        .wait_evaluation_finished(&id, Duration::from_secs(3600), Duration::from_millis(100))
        .await
        .context("the large evaluation")?;
    let drain = drained.elapsed();
    let listing_began = Instant::now();
    let (pages, listed) = list_all(api, &id).await?;
    let listing = listing_began.elapsed();
    Ok(Large {
        runs,
        post,
        answer_bytes,
        drain,
        status: finished["status"].as_str().unwrap_or("").to_owned(),
        succeeded: finished["counts"]["succeeded"].as_u64().unwrap_or(0),
        listing,
        pages,
        listed,
        peak: sampler.stop(),
    })
}

/// Pages through every run; returns the page count and the distinct runs seen.
async fn list_all(api: &Api, id: &str) -> Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/evaluations/{id}/runs?limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path).await?;
        pages += 1;
        for run in page["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            seen.insert(run["id"].as_str().unwrap_or("").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok((pages, seen.len() as u64)),
        }
    }
}
