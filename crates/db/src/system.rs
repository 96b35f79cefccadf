//! How busy the platform is: runs by state and the counts of unfinished runs (what the
//! replicas can run is in [`crate::replicas`]).

use airlock_core::{RunState, TeamId};
use uuid::Uuid;

use crate::{GatewayDb, Result, ResultsDb};

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

impl ResultsDb {
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
}

impl GatewayDb {
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
