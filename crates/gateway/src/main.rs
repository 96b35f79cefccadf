//! `airlock-gateway`: serve the API, apply migrations, or create API tokens.

use airlock_db::{Db, GatewayDb};
use airlock_gateway::config::{AdminCommand, Cli, Command, Config};
use airlock_gateway::{Gateway, tokens};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            airlock_service::run_service(
                "airlock-gateway",
                config.common.http_addr,
                |listener, shutdown| async move {
                    Gateway::build(config, listener, shutdown)
                        .await?
                        .run()
                        .await
                },
            )
            .await
        }
        Command::Migrate => report(migrate(&config).await),
        Command::Admin(AdminCommand::CreateToken { user, team, role }) => {
            report(create_token(&config, &user, &team, role).await)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("airlock-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = Db::connect_lazy(config.common.database_url.expose(), 2)?;
    db.migrate().await?;
    println!("migrations applied");
    Ok(())
}

/// Creates the user and team if needed and prints a new token, once.
async fn create_token(
    config: &Config,
    user: &str,
    team: &str,
    role: airlock_core::Role,
) -> anyhow::Result<()> {
    let db = GatewayDb::new(Db::connect_lazy(config.common.database_url.expose(), 2)?);
    db.migrate().await?;
    let principal = db.upsert_user(user, team, role).await?;
    let token = tokens::generate();
    db.insert_api_token(&airlock_db::tokens::NewToken {
        owner: principal.user_id,
        hash: &tokens::hash(&token),
        name: "created by admin create-token",
        prefix: &tokens::prefix(&token),
        scopes: airlock_core::Scopes::ALL,
        expires_at: None,
        created_by: None,
    })
    .await?;
    println!("{token}");
    Ok(())
}
