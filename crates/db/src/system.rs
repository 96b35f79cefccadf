//! What the platform can run and how busy it is: each orchestrator reports its capacity
//! (and that it is alive); the gateway reads that with the counts of unfinished runs.

use airlock_core::{RunState, TeamId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Db, Result};

/// One orchestrator's report of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorStatus {
    /// Stable for the life of the process (host name and process id).
    pub instance: String,
    /// `local` or `kubernetes`.
    pub runtime: String,
    pub max_concurrent_runs: u32,
    pub team_max_concurrent_runs: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Runs that have not finished, over all teams and for one team.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunLoad {
    /// queued + scheduling: not started.
    pub queued: u64,
    /// starting + running: holding a sandbox.
    pub running: u64,
    pub team_queued: u64,
    pub team_running: u64,
}

#[derive(sqlx::FromRow)]
struct OrchestratorRow {
    instance: String,
    runtime: String,
    max_concurrent_runs: i32,
    team_max_concurrent_runs: Option<i32>,
    started_at: DateTime<Utc>,
    seen_at: DateTime<Utc>,
}

impl Db {
    /// How many runs are in each state, every state listed (zero when none is); one
    /// grouped query over all runs, for the runs-by-state gauge.
    pub async fn runs_by_state(&self) -> Result<Vec<(RunState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM runs GROUP BY state")
                .fetch_all(self.pool())
                .await?;
        Ok(RunState::ALL
            .iter()
            .map(|state| {
                let count = rows
                    .iter()
                    .find(|(name, _)| name == state.as_str())
                    .map_or(0, |(_, count)| *count);
                (*state, count)
            })
            .collect())
    }

    /// Records that this orchestrator is alive with this capacity.
    pub async fn report_orchestrator(&self, status: &OrchestratorStatus) -> Result<()> {
        sqlx::query(
            "INSERT INTO orchestrators (instance, runtime, max_concurrent_runs,
                                        team_max_concurrent_runs, started_at, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (instance) DO UPDATE SET runtime = $2, max_concurrent_runs = $3,
                 team_max_concurrent_runs = $4, started_at = $5, seen_at = $6",
        )
        .bind(&status.instance)
        .bind(&status.runtime)
        .bind(i32::try_from(status.max_concurrent_runs).unwrap_or(i32::MAX))
        .bind(
            status
                .team_max_concurrent_runs
                .map(|q| i32::try_from(q).unwrap_or(i32::MAX)),
        )
        .bind(status.started_at)
        .bind(status.seen_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes this orchestrator's report (it is stopping).
    pub async fn withdraw_orchestrator(&self, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM orchestrators WHERE instance = $1")
            .bind(instance)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets orchestrators not seen since `before` (they stopped or died).
    pub async fn forget_orchestrators(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM orchestrators WHERE seen_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// The orchestrators that reported, most recently seen first.
    pub async fn orchestrators(&self) -> Result<Vec<OrchestratorStatus>> {
        let rows: Vec<OrchestratorRow> = sqlx::query_as(
            "SELECT instance, runtime, max_concurrent_runs, team_max_concurrent_runs,
                    started_at, seen_at
             FROM orchestrators ORDER BY seen_at DESC, instance",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| OrchestratorStatus {
                instance: row.instance,
                runtime: row.runtime,
                max_concurrent_runs: u32::try_from(row.max_concurrent_runs).unwrap_or(0),
                team_max_concurrent_runs: row
                    .team_max_concurrent_runs
                    .and_then(|q| u32::try_from(q).ok()),
                started_at: row.started_at,
                seen_at: row.seen_at,
            })
            .collect())
    }

    /// Unfinished runs over all teams and for `team_id`.
    pub async fn run_load(&self, team_id: TeamId) -> Result<RunLoad> {
        let (queued, running, team_queued, team_running): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE r.state IN ('queued', 'scheduling')),
                    count(*) FILTER (WHERE r.state IN ('starting', 'running')),
                    count(*) FILTER (WHERE r.state IN ('queued', 'scheduling') AND e.team_id = $1),
                    count(*) FILTER (WHERE r.state IN ('starting', 'running') AND e.team_id = $1)
             FROM runs r JOIN evaluations e ON e.id = r.evaluation_id
             WHERE r.state IN ('queued', 'scheduling', 'starting', 'running')",
        )
        .bind::<Uuid>(team_id.as_uuid())
        .fetch_one(self.pool())
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(RunLoad {
            queued: count(queued),
            running: count(running),
            team_queued: count(team_queued),
            team_running: count(team_running),
        })
    }
}
