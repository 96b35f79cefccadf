//! `airlock-result-processor`: persists run reports and publishes committed updates.

use airlock_result_processor::{Cli, ResultProcessor};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    airlock_service::init_tracing();
    let shutdown = airlock_service::shutdown_token();
    let result = async {
        let listener = tokio::net::TcpListener::bind(cli.config.common.http_addr).await?;
        ResultProcessor::build(cli.config, listener, shutdown)
            .await?
            .run()
            .await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("airlock-result-processor: {error:#}");
            ExitCode::FAILURE
        }
    }
}
