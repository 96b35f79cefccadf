//! Resident memory of the services: VmRSS from /proc/<pid>/status, once when idle and
//! every 100 ms under load to keep each service's peak.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

use airlock_test_support::Service;

use crate::platform::Pids;

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Each running service's resident memory now, in KiB.
pub fn snapshot(pids: &Pids) -> HashMap<Service, u64> {
    let pids: Vec<(Service, u32)> = match pids.lock() {
        Ok(pids) => pids.iter().map(|(s, p)| (*s, *p)).collect(),
        Err(_) => Vec::new(),
    };
    pids.into_iter()
        .filter_map(|(service, pid)| Some((service, rss_kib(pid)?)))
        .collect()
}

/// Samples every 100 ms until stopped; follows restarts through the shared pids.
pub struct PeakSampler {
    peaks: Arc<Mutex<HashMap<Service, u64>>>,
    task: JoinHandle<()>,
}

impl PeakSampler {
    pub fn start(pids: Pids) -> Self {
        let peaks: Arc<Mutex<HashMap<Service, u64>>> = Arc::default();
        let shared = Arc::clone(&peaks);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let now = snapshot(&pids);
                if let Ok(mut peaks) = shared.lock() {
                    for (service, kib) in now {
                        let peak = peaks.entry(service).or_insert(0);
                        *peak = (*peak).max(kib);
                    }
                }
            }
        });
        Self { peaks, task }
    }

    /// Stops sampling; returns each service's peak in KiB.
    pub fn stop(self) -> HashMap<Service, u64> {
        self.task.abort();
        self.peaks.lock().map(|p| p.clone()).unwrap_or_default()
    }
}
