//! All of Airlock's SQL. Each service holds its facade ([`GatewayDb`],
//! [`OrchestratorDb`], [`ResultsDb`]) over the shared [`Db`] and calls its methods;
//! nothing else writes a query. Migrations are embedded from the repository's `migrations/` directory.

pub mod audit;
pub mod claims;
mod error;
pub mod evaluations;
pub mod events;
mod facades;
pub mod identity;
pub mod outbox;
pub mod replicas;
pub mod results;
pub mod rows;
pub mod run_pages;
pub mod schema;
pub mod sessions;
pub mod system;
pub mod tokens;

pub use claims::{AdoptedClaim, ClaimOutcome, ClaimRequest};
pub use error::{DbError, Result};
pub use facades::{GatewayDb, OrchestratorDb, ResultsDb};
pub use outbox::OutboxMessage;
pub use replicas::{ReplicaEnd, ReplicaInfo, ReplicaRecord};
pub use rows::*;
pub use schema::SchemaCheck;
pub use system::RunLoad;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, postgres::PgListener};
use std::str::FromStr;
use std::time::Duration;

/// The migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A pool of connections to Airlock's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects lazily: the pool opens connections when first used, so a service can
    /// start (and report not-ready) while PostgreSQL is down.
    /// TLS is used when the URL asks for it (`sslmode=require`, `verify-ca`, `verify-full`
    /// or `prefer`) or `PGSSLMODE` does; otherwise the connection is plain, as it always
    /// was, rather than PostgreSQL's opportunistic `prefer`.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self> {
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| DbError::Config(e.to_string()))?;
        if !url.contains("sslmode=") && std::env::var_os("PGSSLMODE").is_none() {
            options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations; fails if the database holds one this build does not
    /// know (the `migrate` command: a newer schema must not be touched by an older build).
    /// Services never migrate: they check the schema ([`Db::require_current_schema`]).
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Whether PostgreSQL answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// A listener for a notification channel (used to wake the outbox relay).
    pub async fn listen(&self, channel: &str) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    /// The pool's connections, for metrics.
    pub fn pool_usage(&self) -> PoolUsage {
        let open = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(open)
            .min(open);
        PoolUsage {
            in_use: open - idle,
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Open connections lent out.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}
