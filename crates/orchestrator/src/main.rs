//! `airlock-orchestrator`: runs evaluation runs in sandboxes.

use airlock_orchestrator::{Cli, Orchestrator};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    airlock_service::init_tracing();
    let shutdown = airlock_service::shutdown_token();
    let result = async {
        let listener = tokio::net::TcpListener::bind(cli.config.common.http_addr).await?;
        Orchestrator::build(cli.config, listener, shutdown)
            .await?
            .run()
            .await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("airlock-orchestrator: {error:#}");
            ExitCode::from(if error.to_string().contains("bwrap") {
                69
            } else {
                1
            })
        }
    }
}
