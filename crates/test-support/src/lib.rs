//! Fixtures for Airlock's tests: a fresh PostgreSQL database and RabbitMQ virtual host
//! per test, the real service binaries started on free ports, an API and WebSocket
//! client, a TCP proxy a test can cut to simulate a broker outage, and the platform
//! running on a fake Kubernetes cluster ([`kubernetes`]).

pub mod client;
pub mod idp;
pub mod infra;
pub mod kubernetes;
pub mod proxy;
pub mod requests;
pub mod stack;

pub use client::{Api, SocketAuth, Stream, assert_contiguous, seqs};
pub use infra::{TestBroker, TestDatabase, restart_rabbitmq};
pub use proxy::Proxy;
pub use requests::redelivery_of_first_run;
pub use stack::{Service, Stack, StackOptions};

use std::path::PathBuf;
use std::time::Duration;

/// The directory holding the workspace's built binaries (`target/debug`), found from the
/// running executable: a test (`target/debug/deps/<test>`) or a binary beside them.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("executable's directory");
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().expect("target profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; panics with the command that builds it when missing.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// Polls `check` until it returns Some, failing after `limit`. For waiting on state
/// outside the test's control (a service becoming ready), never as a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
