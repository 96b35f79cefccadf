//! The final table, and a summary of the warnings and errors in the services' logs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use airlock_test_support::Service;

use crate::phases::chatty::Chatty;
use crate::phases::large::Large;
use crate::phases::{events::Events, latency::Latency, submissions::Submissions};
use crate::platform::SERVICES;

pub struct Report {
    pub submissions: Submissions,
    pub latency: Latency,
    pub events: Events,
    pub chatty: Option<Chatty>,
    pub large: Option<Large>,
    /// The worker's line limit during the chatty run (None: no limit).
    pub line_limit: Option<u64>,
    /// Whether the orchestrator let the bench set that limit.
    pub limit_configurable: bool,
    pub idle: HashMap<Service, u64>,
    pub peak: HashMap<Service, u64>,
}

/// The nearest-rank percentile `p` (0 to 1) of `values`.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

fn ms(value: Option<Duration>) -> String {
    match value {
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
        None => "n/a".to_owned(),
    }
}

fn mib(kib: Option<&u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1}", *k as f64 / 1024.0),
    )
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = &self.submissions;
        let _ = writeln!(
            out,
            "submissions accepted/s     {:>10.1}   ({} requests, {} concurrent, p50 {}, p99 {})
  (orchestrator stopped, gateway's per-user rate limit raised)",
            s.per_sec(),
            s.sent,
            s.concurrency,
            ms(percentile(&s.latencies, 0.5)),
            ms(percentile(&s.latencies, 0.99)),
        );
        if !s.refused.is_empty() {
            let _ = writeln!(out, "  not accepted: {:?} of {}", s.refused, s.sent);
        }
        let l = &self.latency;
        let _ = writeln!(
            out,
            "submission -> scheduling   median {:>9}  p99 {:>9}  ({} of {} samples, one at a time)",
            ms(percentile(&l.scheduling, 0.5)),
            ms(percentile(&l.scheduling, 0.99)),
            l.scheduling.len(),
            l.samples,
        );
        let _ = writeln!(
            out,
            "submission -> starting     median {:>9}  p99 {:>9}  ({} of {} samples)",
            ms(percentile(&l.starting, 0.5)),
            ms(percentile(&l.starting, 0.99)),
            l.starting.len(),
            l.samples,
        );
        let _ = writeln!(
            out,
            "submission -> running      median {:>9}  p99 {:>9}  ({} of {} samples)",
            ms(percentile(&l.running, 0.5)),
            ms(percentile(&l.running, 0.99)),
            l.running.len(),
            l.samples,
        );
        let _ = writeln!(
            out,
            "submission -> first line on the WebSocket  median {:>9}  p99 {:>9}  ({} of {} samples)",
            ms(percentile(&l.first_event, 0.5)),
            ms(percentile(&l.first_event, 0.99)),
            l.first_event.len(),
            l.samples,
        );
        for problem in l.problems.iter().take(5) {
            let _ = writeln!(out, "  problem: {problem}");
        }
        let e = &self.events;
        let limit = match (self.line_limit, self.limit_configurable) {
            (None, _) => "no worker line limit".to_owned(),
            (Some(n), true) => format!("worker limit {n} lines/s"),
            (Some(n), false) => format!("worker's default limit {n} lines/s, not configurable"),
        };
        let _ = writeln!(
            out,
            "events/s end to end        {:>10.0}   ({} events persisted in {:.2} s, one run of `seq 1 {}`, {limit})",
            e.per_sec(),
            e.persisted,
            e.elapsed.as_secs_f64(),
            e.lines,
        );
        let _ = writeln!(
            out,
            "  stdout lines persisted {} of {}, dropped by the worker {}, run {}",
            e.stdout_lines, e.lines, e.dropped, e.state
        );
        for warning in &e.warnings {
            let _ = writeln!(out, "  worker warning: {warning}");
        }
        if e.dropped > 0 && self.line_limit.is_some() {
            let _ = writeln!(
                out,
                "  RATE-LIMITED: the worker dropped lines over its limit; this is not the pipeline's capacity"
            );
        } else if e.dropped > 0 {
            let _ = writeln!(
                out,
                "  with no line limit, drops mean the worker's queue (16384 events) overflowed: the\n  \
                 program wrote faster than the pipeline drained; the rate is over the events kept"
            );
        }
        if let Some(c) = &self.chatty {
            let _ = writeln!(
                out,
                "events/s from {} runs at once {:>7.0}   ({} events persisted in {:.2} s, each `seq 1 {}`, {} succeeded)",
                c.runs,
                c.per_sec(),
                c.persisted,
                c.elapsed.as_secs_f64(),
                c.lines,
                c.succeeded,
            );
            let order = if c.disorder.is_empty() {
                "every run's events stored once, in order".to_owned()
            } else {
                format!("OUT OF ORDER: {}", c.disorder.join("; "))
            };
            let _ = writeln!(out, "  {order}");
        }
        let _ = writeln!(out, "resident memory (MiB)      idle    peak");
        for service in SERVICES {
            let _ = writeln!(
                out,
                "  {:<24} {:>5}   {:>5}",
                service_name(service),
                mib(self.idle.get(&service)),
                mib(self.peak.get(&service)),
            );
        }
        if let Some(l) = &self.large {
            let _ = writeln!(
                out,
                "large evaluation           {} runs: POST {:.2} s ({:.0} KiB answer), drained {:.1} runs/s ({:.1} s, {} {} of {} succeeded)",
                l.runs,
                l.post.as_secs_f64(),
                l.answer_bytes as f64 / 1024.0,
                l.drain_per_sec(),
                l.drain.as_secs_f64(),
                l.status,
                l.succeeded,
                l.runs,
            );
            let _ = writeln!(
                out,
                "  listed {} runs in {} pages in {:.2} s; peak resident memory (MiB) meanwhile:",
                l.listed,
                l.pages,
                l.listing.as_secs_f64(),
            );
            for service in SERVICES {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>5}",
                    service_name(service),
                    mib(l.peak.get(&service)),
                );
            }
        }
        out
    }
}

pub fn service_name(service: Service) -> &'static str {
    service
        .binary()
        .strip_prefix("airlock-")
        .unwrap_or(service.binary())
}

/// Per service: how many WARN and ERROR lines its log holds, and the commonest ones.
pub fn log_summary(log_dir: &Path) -> String {
    let mut out = String::new();
    for service in SERVICES {
        let path = log_dir.join(format!("{}.log", service.binary()));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = value["level"].as_str().unwrap_or("");
            if level != "WARN" && level != "ERROR" {
                continue;
            }
            let mut message = value["message"].as_str().unwrap_or("").to_owned();
            if let Some(error) = value["error"].as_str() {
                message = format!("{message}: {error}");
            }
            *counts.entry((level.to_owned(), message)).or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        let _ = writeln!(
            out,
            "  {:<18} {total} warning/error lines",
            service_name(service)
        );
        let mut common: Vec<_> = counts.into_iter().collect();
        common.sort_by_key(|c| std::cmp::Reverse(c.1));
        for ((level, message), count) in common.into_iter().take(5) {
            let _ = writeln!(out, "    {count:>6} x {level} {message}");
        }
    }
    out
}
