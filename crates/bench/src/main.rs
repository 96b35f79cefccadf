//! airlock-bench: starts the whole platform on this machine (a fresh database on the
//! local PostgreSQL, a fresh RabbitMQ virtual host, the gateway, orchestrator and
//! result-processor binaries on free ports), measures it and prints a table:
//!
//! 1. submissions per second the gateway accepts (orchestrator stopped, so it steals no
//!    CPU), with request latency;
//! 2. submission -> `scheduling` and submission -> `starting` latency, one evaluation at
//!    a time so capacity is always free;
//!    and to `running` and to the run's first line on the evaluation's WebSocket;
//! 3. events per second from a chatty run's worker to PostgreSQL, read through the API;
//! 4. events per second from many chatty runs at once, with every run's order checked;
//! 5. each service's resident memory when idle and its peak during 1-4;
//! 6. one evaluation of 10,000 runs: its POST, its drain rate, paging through its runs,
//!    and each service's peak resident memory meanwhile.
//!
//! Everything is removed at the end (services stopped, database dropped, virtual host
//! deleted), also on error or Ctrl-C; the services' logs are kept. Run it as root (the
//! local sandbox runtime needs it) from a release build:
//! `cargo build --release --bins && target/release/airlock-bench`.

mod api;
mod args;
mod memory;
mod phases;
mod platform;
mod report;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airlock_test_support::Service;

use crate::api::Api;
use crate::args::Args;
use crate::memory::PeakSampler;
use crate::platform::Platform;
use crate::report::Report;

/// The orchestrator's setting of the worker's line rate limit.
const LINE_LIMIT_VAR: &str = "AIRLOCK_SANDBOX_MAX_LINES_PER_SEC";
/// The worker's own default when nobody sets it.
const WORKER_DEFAULT_LINES_PER_SEC: u64 = 2000;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let began = Instant::now();
    if !is_root() {
        eprintln!("warning: not root; the local sandbox runtime needs root");
    }
    let bin_dir = platform::bin_dir(args.bin_dir.as_deref())?;
    let env = service_env(&args);
    let mut platform = Platform::create(bin_dir, env).await?;
    let log_dir = platform.log_dir.clone();
    let outcome = tokio::select! {
        outcome = measure(&mut platform, &args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    eprintln!("cleaning up: stopping services, dropping the database and virtual host");
    platform.shutdown().await;
    if outcome.is_err() {
        eprintln!("service logs kept in {}", log_dir.display());
    }
    let report = outcome?;
    println!("{}", report.render());
    println!(
        "warnings and errors in the service logs ({}):",
        log_dir.display()
    );
    print!("{}", report::log_summary(&log_dir));
    println!("total time {:.1} s", began.elapsed().as_secs_f64());
    Ok(())
}

/// What the bench sets beyond the defaults.
fn service_env(args: &Args) -> Vec<(Service, String, String)> {
    let (orchestrator, gateway) = (Service::Orchestrator, Service::Gateway);
    let unlimited = "100000000".to_owned();
    [
        (
            orchestrator,
            "AIRLOCK_MAX_CONCURRENT_RUNS",
            args.capacity.to_string(),
        ),
        (
            orchestrator,
            LINE_LIMIT_VAR,
            args.max_lines_per_sec.to_string(),
        ),
        (
            orchestrator,
            "AIRLOCK_SANDBOX_MAX_OUTPUT_BYTES",
            "0".to_owned(),
        ),
        // The bench measures the gateway, not its per-user request quota.
        (gateway, "AIRLOCK_RATE_LIMIT_PER_MINUTE", unlimited.clone()),
        (gateway, "AIRLOCK_RATE_LIMIT_BURST", unlimited),
    ]
    .into_iter()
    .map(|(service, name, value)| (service, name.to_owned(), value))
    .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

async fn measure(platform: &mut Platform, args: &Args) -> Result<Report> {
    eprintln!(
        "starting the services (logs in {})",
        platform.log_dir.display()
    );
    for service in [
        Service::Gateway,
        Service::ResultProcessor,
        Service::Orchestrator,
    ] {
        platform.start(service).await?;
    }
    let token = platform.token("bench", "bench", "researcher").await?;
    let api = Api::new(platform.url(Service::Gateway)?, token)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = memory::snapshot(&platform.pids);
    let sampler = PeakSampler::start(platform.pids.clone());

    eprintln!(
        "phase 1: {} submissions from {} clients, orchestrator stopped",
        args.submissions, args.concurrency
    );
    platform.stop_service(Service::Orchestrator).await;
    let submissions = phases::submissions::run(&api, args.submissions, args.concurrency).await?;
    eprintln!(
        "  cancelling {} evaluations and draining their run requests",
        submissions.created.len()
    );
    let failed =
        phases::submissions::cancel_all(&api, &submissions.created, args.concurrency).await;
    if let Some(first) = failed.first() {
        eprintln!("  {} cancellations failed, e.g. {first}", failed.len());
    }
    platform.start(Service::Orchestrator).await?;
    drain(platform).await?;

    eprintln!(
        "phase 2: {} submissions one at a time, to sandbox start",
        args.latency_samples
    );
    let latency = phases::latency::run(&api, args.latency_samples).await?;

    let limit_configurable = platform
        .reads_env(Service::Orchestrator, LINE_LIMIT_VAR)
        .await?;
    let line_limit = if limit_configurable {
        (args.max_lines_per_sec > 0).then_some(args.max_lines_per_sec)
    } else {
        eprintln!(
            "  note: this orchestrator does not read {LINE_LIMIT_VAR}; the worker's default limit applies"
        );
        Some(WORKER_DEFAULT_LINES_PER_SEC)
    };
    eprintln!("phase 3: one run writing {} lines", args.events);
    let events = phases::events::run(&api, args.events).await?;
    let chatty = if args.chatty_runs > 0 {
        eprintln!(
            "phase 4: {} runs at once writing {} lines each",
            args.chatty_runs, args.chatty_lines
        );
        Some(phases::chatty::run(&api, args.chatty_runs, args.chatty_lines).await?)
    } else {
        None
    };
    let peak = sampler.stop();
    let large = if args.large_runs > 0 {
        eprintln!(
            "phase 5: one evaluation of {} runs of /bin/true",
            args.large_runs
        );
        Some(phases::large::run(&api, args.large_runs, platform.pids.clone()).await?)
    } else {
        None
    };
    Ok(Report {
        submissions,
        latency,
        events,
        chatty,
        large,
        line_limit,
        limit_configurable,
        idle,
        peak,
    })
}

/// Waits until the restarted orchestrator has consumed every queued run request (of
/// cancelled evaluations) and the result-processor every report.
async fn drain(platform: &Platform) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let requests = platform
            .queue_depth("airlock.run-requests")
            .await
            .context("watching the run requests queue")?;
        let reports = platform.queue_depth("airlock.run-reports").await?;
        if requests == 0 && reports == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{requests} run requests and {reports} reports still queued after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
