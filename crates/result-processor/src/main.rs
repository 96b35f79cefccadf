//! `airlock-result-processor`: persists run reports and publishes committed updates.

use airlock_result_processor::{Cli, ResultProcessor};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Cli::parse().config;
    airlock_service::run_service(
        "airlock-result-processor",
        config.common.http_addr,
        |listener, shutdown| async move {
            ResultProcessor::build(config, listener, shutdown)
                .await?
                .run()
                .await
        },
    )
    .await
}
