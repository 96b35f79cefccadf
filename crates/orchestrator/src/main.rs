//! `airlock-orchestrator`: runs evaluation runs in sandboxes.

use airlock_orchestrator::{Cli, Orchestrator};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Cli::parse().config;
    airlock_service::run_service(
        "airlock-orchestrator",
        config.common.http_addr,
        |listener, shutdown| async move {
            Orchestrator::build(config, listener, shutdown)
                .await?
                .run()
                .await
        },
    )
    .await
}
