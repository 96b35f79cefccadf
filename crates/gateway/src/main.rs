//! `airlock-gateway`: serve the API, apply migrations, or create API tokens.

use airlock_db::Db;
use airlock_gateway::config::{AdminCommand, Cli, Command};
use airlock_gateway::{Gateway, tokens};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    airlock_service::init_tracing();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "airlock-gateway failed");
            eprintln!("airlock-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let shutdown = airlock_service::shutdown_token();
            let listener = tokio::net::TcpListener::bind(config.common.http_addr).await?;
            Gateway::build(config, listener, shutdown)
                .await?
                .run()
                .await
        }
        Command::Migrate => {
            let db = Db::connect_lazy(config.common.database_url.expose(), 2)?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::CreateToken { user, team, role }) => {
            let db = Db::connect_lazy(config.common.database_url.expose(), 2)?;
            db.migrate().await?;
            let principal = db.upsert_user(&user, &team, role).await?;
            let token = tokens::generate();
            db.insert_api_token(principal.user_id, &tokens::hash(&token), None)
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}
