//! Run claims (`run_claims`, written only by orchestrators): which replica started each
//! run attempt, and the count global quotas are decided on.
//!
//! A claim is inserted in one transaction that reads the limits (`global_limits`), holds
//! the platform's and then the team's advisory lock, counts the unreleased claims and
//! applies [`GlobalLimits::admit`]: two replicas admitting for one team queue on the
//! lock, so the quota holds at every moment. The primary key (run, attempt) makes
//! "exactly one replica starts an attempt" a constraint.

use airlock_core::replica::{GlobalLimits, Refusal};
use airlock_core::{RunId, TeamId};
use uuid::Uuid;

use crate::{Db, OrchestratorDb, Result};

/// Advisory lock namespaces (the first key of the two-key form).
const PLATFORM_LOCK: i32 = 0x4149_0001;
const TEAM_LOCK: i32 = 0x4149_0002;

/// One run attempt a replica wants to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    pub run_id: RunId,
    pub attempt: u32,
    pub team_id: TeamId,
    pub replica_id: &'a str,
}

/// What came of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This replica holds the attempt now: start it.
    Claimed,
    /// This replica held it already (a redelivery to the replica that runs it).
    AlreadyMine,
    /// Another replica holds (or held) this attempt: do not start it.
    Taken { by: String },
    /// A global limit is reached; try again when a claim is released.
    Refused(Refusal),
}

/// A claim moved to this replica from a lost one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptedClaim {
    pub run_id: RunId,
    pub attempt: u32,
    pub team_id: TeamId,
}

impl Db {
    /// The limits in force (none when no orchestrator has started yet).
    pub async fn global_limits(&self) -> Result<GlobalLimits> {
        let mut connection = self.pool().acquire().await?;
        Ok(read_limits(&mut connection).await?.unwrap_or_default())
    }
}

impl OrchestratorDb {
    /// Sets the limits every orchestrator enforces (an orchestrator starting with its
    /// configuration); returns the limits it replaced, if any.
    pub async fn set_global_limits(
        &self,
        limits: GlobalLimits,
        by: &str,
    ) -> Result<Option<GlobalLimits>> {
        let mut tx = self.pool().begin().await?;
        let previous = read_limits(&mut tx).await?;
        sqlx::query(
            "INSERT INTO global_limits (singleton, team_max_concurrent_runs, platform_max_concurrent_runs, set_by)
             VALUES (true, $1, $2, $3)
             ON CONFLICT (singleton) DO UPDATE SET team_max_concurrent_runs = $1,
                 platform_max_concurrent_runs = $2, set_by = $3, set_at = now()",
        )
        .bind(limits.per_team.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
        .bind(limits.platform.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
        .bind(by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Claims a run attempt for a replica if the global limits allow (see the module).
    /// Without limits a claim is one look and one insert (the primary key settles a race);
    /// with limits the count and the insert happen under the advisory locks.
    #[tracing::instrument(skip_all, fields(run_id = %claim.run_id, attempt = claim.attempt))]
    pub async fn claim_attempt(&self, claim: ClaimRequest<'_>) -> Result<ClaimOutcome> {
        let attempt = i32::try_from(claim.attempt).unwrap_or(i32::MAX);
        let (holder, limits) = look(self.pool(), claim, attempt).await?;
        if let Some(outcome) = holder {
            return Ok(outcome);
        }
        if limits == GlobalLimits::default() {
            let mut connection = self.pool().acquire().await?;
            return insert_claim(&mut connection, claim, attempt).await;
        }
        let mut tx = self.pool().begin().await?;
        let team: Uuid = claim.team_id.as_uuid();
        let mut platform_running = 0;
        if limits.platform.is_some() {
            sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
                .bind(PLATFORM_LOCK)
                .execute(&mut *tx)
                .await?;
            platform_running =
                sqlx::query_scalar("SELECT count(*) FROM run_claims WHERE released_at IS NULL")
                    .fetch_one(&mut *tx)
                    .await?;
        }
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
            .bind(TEAM_LOCK)
            .bind(team)
            .execute(&mut *tx)
            .await?;
        let team_running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM run_claims WHERE team_id = $1 AND released_at IS NULL",
        )
        .bind(team)
        .fetch_one(&mut *tx)
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        if let Err(refusal) = limits.admit(count(team_running), count(platform_running)) {
            return Ok(ClaimOutcome::Refused(refusal));
        }
        let outcome = insert_claim(&mut tx, claim, attempt).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Releases this replica's claim of an attempt (the attempt ended here); idempotent.
    pub async fn release_claim(&self, run_id: RunId, attempt: u32, replica_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE run_claims SET released_at = now()
             WHERE run_id = $1 AND attempt = $2 AND replica_id = $3 AND released_at IS NULL",
        )
        .bind(run_id.as_uuid())
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(replica_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves up to `limit` unreleased claims of the lost replica `from` to `to`; each is
    /// moved to exactly one taker. The taker then follows or retries the attempt and
    /// releases the claim when done, so a taker that dies half-way leaves them to the next.
    pub async fn adopt_claims(
        &self,
        from: &str,
        to: &str,
        limit: u32,
    ) -> Result<Vec<AdoptedClaim>> {
        let rows: Vec<(Uuid, i32, Uuid)> = sqlx::query_as(
            "UPDATE run_claims c SET replica_id = $2
             FROM (SELECT run_id, attempt FROM run_claims
                    WHERE replica_id = $1 AND released_at IS NULL
                    ORDER BY claimed_at LIMIT $3 FOR UPDATE SKIP LOCKED) moving
             WHERE c.run_id = moving.run_id AND c.attempt = moving.attempt
             RETURNING c.run_id, c.attempt, c.team_id",
        )
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(run_id, attempt, team_id)| AdoptedClaim {
                run_id: run_id.into(),
                attempt: u32::try_from(attempt).unwrap_or(0),
                team_id: team_id.into(),
            })
            .collect())
    }

    /// Of these attempts, the ones some replica holds an unreleased claim of.
    pub async fn claimed_attempts(&self, attempts: &[(RunId, u32)]) -> Result<Vec<(RunId, u32)>> {
        let runs: Vec<Uuid> = attempts.iter().map(|(r, _)| r.as_uuid()).collect();
        let numbers: Vec<i32> = attempts
            .iter()
            .map(|(_, a)| i32::try_from(*a).unwrap_or(i32::MAX))
            .collect();
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT c.run_id, c.attempt FROM run_claims c
             JOIN unnest($1::uuid[], $2::int[]) AS a(run_id, attempt)
               ON a.run_id = c.run_id AND a.attempt = c.attempt
             WHERE c.released_at IS NULL",
        )
        .bind(&runs)
        .bind(&numbers)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(run, attempt)| (run.into(), u32::try_from(attempt).unwrap_or(0)))
            .collect())
    }
}

async fn read_limits(connection: &mut sqlx::PgConnection) -> Result<Option<GlobalLimits>> {
    let row: Option<(Option<i32>, Option<i32>)> = sqlx::query_as(
        "SELECT team_max_concurrent_runs, platform_max_concurrent_runs FROM global_limits",
    )
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.map(|(team, platform)| limits_of(team, platform)))
}

/// The limits as stored (NULL: no limit).
fn limits_of(team: Option<i32>, platform: Option<i32>) -> GlobalLimits {
    let unsigned = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok());
    GlobalLimits {
        per_team: unsigned(team),
        platform: unsigned(platform),
    }
}

/// Who holds the attempt already (if anyone), and the limits in force, in one query.
async fn look(
    pool: &sqlx::PgPool,
    claim: ClaimRequest<'_>,
    attempt: i32,
) -> Result<(Option<ClaimOutcome>, GlobalLimits)> {
    let row: (Option<String>, Option<bool>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT c.replica_id, c.released_at IS NOT NULL,
                l.team_max_concurrent_runs, l.platform_max_concurrent_runs
         FROM (SELECT 1) one
         LEFT JOIN run_claims c ON c.run_id = $1 AND c.attempt = $2
         LEFT JOIN global_limits l ON true",
    )
    .bind(claim.run_id.as_uuid())
    .bind(attempt)
    .fetch_one(pool)
    .await?;
    let (holder, released, team, platform) = row;
    Ok((
        holder.map(|by| holder_outcome(claim, by, released.unwrap_or(false))),
        limits_of(team, platform),
    ))
}

fn holder_outcome(claim: ClaimRequest<'_>, by: String, released: bool) -> ClaimOutcome {
    if by == claim.replica_id && !released {
        ClaimOutcome::AlreadyMine
    } else {
        ClaimOutcome::Taken { by }
    }
}

/// Inserts the claim; when another replica got there first, says who.
async fn insert_claim(
    connection: &mut sqlx::PgConnection,
    claim: ClaimRequest<'_>,
    attempt: i32,
) -> Result<ClaimOutcome> {
    let inserted = sqlx::query(
        "INSERT INTO run_claims (run_id, attempt, team_id, replica_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(claim.run_id.as_uuid())
    .bind(attempt)
    .bind(claim.team_id.as_uuid())
    .bind(claim.replica_id)
    .execute(&mut *connection)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(ClaimOutcome::Claimed);
    }
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT replica_id, released_at IS NOT NULL FROM run_claims WHERE run_id = $1 AND attempt = $2",
    )
    .bind(claim.run_id.as_uuid())
    .bind(attempt)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.map_or(
        ClaimOutcome::Taken { by: String::new() },
        |(by, released)| holder_outcome(claim, by, released),
    ))
}
