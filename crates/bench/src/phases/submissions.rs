//! Phase 1: how many submissions per second the gateway accepts, with C clients sending
//! N `POST /api/v1/evaluations` as fast as they can.

use anyhow::{Result, anyhow};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::api::Api;

pub struct Submissions {
    pub sent: u64,
    pub concurrency: u64,
    pub accepted: u64,
    /// Responses other than 201, by status ("error" for transport errors).
    pub refused: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Latency of every request that got a response.
    pub latencies: Vec<Duration>,
    /// Evaluations created (warm-up included), to cancel afterwards.
    pub created: Vec<String>,
}

impl Submissions {
    pub fn per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Outcome {
    status: Option<u16>,
    latency: Duration,
    id: Option<String>,
}

async fn one(api: &Api) -> Outcome {
    let spec = super::spec("bench-submit", &["true"], "1m");
    let started = Instant::now();
    let reply = api.submit(&spec).await;
    let latency = started.elapsed();
    match reply {
        Ok((status, body)) => Outcome {
            status: Some(status),
            latency,
            id: body["id"].as_str().map(str::to_owned),
        },
        Err(_) => Outcome {
            status: None,
            latency,
            id: None,
        },
    }
}

/// `count` submissions from `concurrency` clients.
async fn burst(api: &Api, count: u64, concurrency: u64) -> Result<Vec<Outcome>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        let next = Arc::clone(&next);
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                outcomes.push(one(&api).await);
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(
            client
                .await
                .map_err(|e| anyhow!("client task failed: {e}"))?,
        );
    }
    Ok(all)
}

/// Sends `concurrency` warm-up submissions (not counted), then `count` timed ones.
pub async fn run(api: &Api, count: u64, concurrency: u64) -> Result<Submissions> {
    let warmup = burst(api, concurrency, concurrency).await?;
    let started = Instant::now();
    let outcomes = burst(api, count, concurrency).await?;
    let elapsed = started.elapsed();
    let mut result = Submissions {
        sent: count,
        concurrency,
        accepted: 0,
        refused: BTreeMap::new(),
        elapsed,
        latencies: Vec::new(),
        created: warmup.into_iter().filter_map(|o| o.id).collect(),
    };
    for outcome in outcomes {
        match outcome.status {
            Some(201) => result.accepted += 1,
            Some(status) => *result.refused.entry(status.to_string()).or_default() += 1,
            None => *result.refused.entry("error".into()).or_default() += 1,
        }
        if outcome.status.is_some() {
            result.latencies.push(outcome.latency);
        }
        result.created.extend(outcome.id);
    }
    Ok(result)
}

/// Cancels the evaluations, `concurrency` at a time; returns the failures.
pub async fn cancel_all(api: &Api, ids: &[String], concurrency: u64) -> Vec<String> {
    let width = usize::try_from(concurrency).unwrap_or(1);
    futures_util::stream::iter(ids)
        .map(|id| api.cancel(id))
        .buffer_unordered(width)
        .filter_map(|r| std::future::ready(r.err().map(|e| format!("{e:#}"))))
        .collect()
        .await
}
