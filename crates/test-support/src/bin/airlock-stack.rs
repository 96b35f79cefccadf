//! A disposable Airlock: starts the real services against a fresh database and virtual
//! host, creates a researcher's token, prints one line
//! `AIRLOCK_STACK {"url":…,"token":…,"user":…,"team":…}` and serves until its standard
//! input closes or it receives SIGTERM or SIGINT; then it stops everything and removes
//! the database and virtual host. The web UI's browser tests and benchmark run on it.
//!
//! Settings from its own environment: `AIRLOCK_STATIC_DIR`, `AIRLOCK_OIDC_*`,
//! `AIRLOCK_SESSION_*`, `AIRLOCK_PUBLIC_URL`, `AIRLOCK_COOKIE_SECURE`, `AIRLOCK_DEV_LOGIN`
//! and the rate limits go to the gateway;
//! `AIRLOCK_MAX_CONCURRENT_RUNS`, `AIRLOCK_TEAM_MAX_CONCURRENT_RUNS`, `AIRLOCK_SANDBOX_*`
//! and `AIRLOCK_WORKER_*` go to the orchestrator.

use airlock_test_support::{Service, Stack, StackOptions};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = StackOptions::default();
    for (key, value) in std::env::vars() {
        match key.as_str() {
            "AIRLOCK_STATIC_DIR"
            | "AIRLOCK_PUBLIC_URL"
            | "AIRLOCK_COOKIE_SECURE"
            | "AIRLOCK_DEV_LOGIN"
            | "AIRLOCK_RATE_LIMIT_PER_MINUTE"
            | "AIRLOCK_RATE_LIMIT_BURST"
            | "AIRLOCK_AUTH_FAILURES_PER_MINUTE" => {
                options.env.push((Service::Gateway, key, value))
            }
            _ if key.starts_with("AIRLOCK_OIDC_") || key.starts_with("AIRLOCK_SESSION_") => {
                options.env.push((Service::Gateway, key, value));
            }
            "AIRLOCK_MAX_CONCURRENT_RUNS" => options.capacity = value.parse()?,
            "AIRLOCK_TEAM_MAX_CONCURRENT_RUNS" => options.team_quota = Some(value.parse()?),
            _ if key.starts_with("AIRLOCK_SANDBOX_") || key.starts_with("AIRLOCK_WORKER_") => {
                options.env.push((Service::Orchestrator, key, value));
            }
            _ => {}
        }
    }
    let stack = Stack::start(options).await;
    let (user, team) = ("ada", "interpretability");
    let token = stack.token(user, team, "researcher").await;
    let ready = serde_json::json!({
        "url": stack.url(Service::Gateway),
        "token": token,
        "user": user,
        "team": team,
    });
    println!("AIRLOCK_STACK {ready}");

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 256];
    let stdin_closed = async { while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
    tokio::select! {
        () = stdin_closed => {}
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    stack.stop().await;
    Ok(())
}
