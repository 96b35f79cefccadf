//! Replicas and their leases (`replicas`), and singleton roles (`leader_leases`).
//!
//! Each replica writes only its own row while it lives: registering, renewing its lease
//! (which fails once another replica has found it lost: the replica must then stop
//! touching anything it owned), and withdrawing at shutdown. Finding a replica lost is
//! the one write to another's row, done once by whichever replica sees the lease expired.

use airlock_core::replica::ReplicaService;
use chrono::{DateTime, Utc};
use std::time::Duration;

use crate::{Db, Result};

/// What a replica says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub id: String,
    pub service: ReplicaService,
    pub host: String,
    /// Orchestrators: `local` or `kubernetes`.
    pub runtime: Option<String>,
    /// Orchestrators: runs at once on this replica.
    pub capacity: Option<u32>,
}

/// How a replica ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaEnd {
    /// Its lease expired: it died or lost contact.
    Lost,
    /// It shut down and withdrew.
    Stopped,
}

/// A replica as the system view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRecord {
    pub info: ReplicaInfo,
    /// Orchestrators: run attempts it holds a claim of.
    pub running: u32,
    /// Result-processors: the report partitions it consumes.
    pub partitions: Vec<u16>,
    /// Singleton roles whose leader lease it holds.
    pub roles: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub lease_expires_at: DateTime<Utc>,
    pub ended: Option<(ReplicaEnd, DateTime<Utc>)>,
}

#[derive(sqlx::FromRow)]
struct ReplicaRow {
    id: String,
    service: String,
    host: String,
    runtime: Option<String>,
    capacity: Option<i32>,
    partitions: Vec<i32>,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
    lease_expires_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    end_state: Option<String>,
    running: i64,
    roles: Vec<String>,
}

fn int(value: Option<u32>) -> Option<i32> {
    value.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl ReplicaRow {
    fn into_record(self) -> Option<ReplicaRecord> {
        let service = ReplicaService::parse(&self.service)?;
        let unsigned = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
        let ended = match (self.end_state.as_deref(), self.ended_at) {
            (Some("lost"), Some(at)) => Some((ReplicaEnd::Lost, at)),
            (Some(_), Some(at)) => Some((ReplicaEnd::Stopped, at)),
            _ => None,
        };
        Some(ReplicaRecord {
            info: ReplicaInfo {
                id: self.id,
                service,
                host: self.host,
                runtime: self.runtime,
                capacity: unsigned(self.capacity),
            },
            running: u32::try_from(self.running).unwrap_or(0),
            partitions: self
                .partitions
                .into_iter()
                .filter_map(|p| u16::try_from(p).ok())
                .collect(),
            roles: self.roles,
            started_at: self.started_at,
            heartbeat_at: self.heartbeat_at,
            lease_expires_at: self.lease_expires_at,
            ended,
        })
    }
}

impl Db {
    /// Registers this replica with a lease of `lease` from now.
    #[tracing::instrument(skip_all, fields(replica = %info.id))]
    pub async fn register_replica(&self, info: &ReplicaInfo, lease: Duration) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, service, host, runtime, capacity, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        )
        .bind(&info.id)
        .bind(info.service.as_str())
        .bind(&info.host)
        .bind(&info.runtime)
        .bind(int(info.capacity))
        .bind(secs(lease))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Renews this replica's lease; `false` when it can no longer be renewed (another
    /// replica found it lost, or it withdrew).
    pub async fn renew_replica(
        &self,
        id: &str,
        lease: Duration,
        partitions: &[u16],
    ) -> Result<bool> {
        let partitions: Vec<i32> = partitions.iter().map(|p| i32::from(*p)).collect();
        let done = sqlx::query(
            "UPDATE replicas SET heartbeat_at = now(),
                                 lease_expires_at = now() + make_interval(secs => $2),
                                 partitions = $3
             WHERE id = $1 AND ended_at IS NULL AND lease_expires_at > now()",
        )
        .bind(id)
        .bind(secs(lease))
        .bind(&partitions)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks this replica stopped (it is shutting down and has let go of what it held)
    /// and gives up its leader leases.
    pub async fn withdraw_replica(&self, id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE replicas SET ended_at = now(), end_state = 'stopped', lease_expires_at = now()
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM leader_leases WHERE holder = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks every replica of `service` whose lease has expired as lost, once; returns
    /// their ids (the caller takes over what they held).
    pub async fn mark_lost_replicas(&self, service: ReplicaService) -> Result<Vec<String>> {
        let ids = sqlx::query_scalar(
            "UPDATE replicas SET ended_at = now(), end_state = 'lost'
             WHERE service = $1 AND ended_at IS NULL AND lease_expires_at <= now()
             RETURNING id",
        )
        .bind(service.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(ids)
    }

    /// Marks one replica lost now, whatever its lease says: it is known dead (its lock
    /// on this host was free). `false` when it had ended already.
    pub async fn mark_replica_lost(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replicas SET ended_at = now(), end_state = 'lost', lease_expires_at = now()
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replicas lost whose claims have not all been taken over yet (a taker may have died
    /// half-way): ids of lost orchestrators that still hold an unreleased claim.
    pub async fn lost_replicas_holding_claims(&self) -> Result<Vec<String>> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT c.replica_id FROM run_claims c
             JOIN replicas r ON r.id = c.replica_id
             WHERE c.released_at IS NULL AND r.ended_at IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(ids)
    }

    /// Live replicas of `service` (lease not expired), by id.
    pub async fn live_replicas(&self, service: ReplicaService) -> Result<Vec<ReplicaInfo>> {
        Ok(self
            .replicas(Duration::ZERO)
            .await?
            .into_iter()
            .filter(|r| {
                r.info.service == service && r.ended.is_none() && r.lease_expires_at > Utc::now()
            })
            .map(|r| r.info)
            .collect())
    }

    /// Every live replica, and those that ended within `recent`; live first, then by id.
    pub async fn replicas(&self, recent: Duration) -> Result<Vec<ReplicaRecord>> {
        let rows: Vec<ReplicaRow> = sqlx::query_as(
            "SELECT r.id, r.service, r.host, r.runtime, r.capacity, r.partitions, r.started_at,
                    r.heartbeat_at,
                    r.lease_expires_at, r.ended_at, r.end_state,
                    (SELECT count(*) FROM run_claims c
                      WHERE c.replica_id = r.id AND c.released_at IS NULL) AS running,
                    ARRAY(SELECT l.role FROM leader_leases l
                           WHERE l.holder = r.id AND l.expires_at > now() ORDER BY l.role) AS roles
             FROM replicas r
             WHERE r.ended_at IS NULL OR r.ended_at > now() - make_interval(secs => $1)
             ORDER BY r.ended_at IS NOT NULL, r.service, r.id",
        )
        .bind(secs(recent))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(ReplicaRow::into_record)
            .collect())
    }

    /// Removes replicas that ended more than `age` ago and hold nothing (housekeeping).
    pub async fn forget_ended_replicas(&self, age: Duration) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM replicas r
             WHERE r.ended_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM run_claims c
                                WHERE c.replica_id = r.id AND c.released_at IS NULL)",
        )
        .bind(secs(age))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Takes or renews the leader lease of `role` for `holder`; `true` when `holder` holds
    /// it now (it did, or the previous holder's lease had expired).
    pub async fn hold_leader_lease(
        &self,
        role: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leader_leases AS l (role, holder, acquired_at, expires_at)
             VALUES ($1, $2, now(), now() + make_interval(secs => $3))
             ON CONFLICT (role) DO UPDATE
                SET holder = EXCLUDED.holder,
                    acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END,
                    expires_at = EXCLUDED.expires_at
                WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
             RETURNING holder",
        )
        .bind(role)
        .bind(holder)
        .bind(secs(lease))
        .fetch_optional(self.pool())
        .await?;
        Ok(held.as_deref() == Some(holder))
    }

    /// The current holder of `role`, if its lease has not expired.
    pub async fn leader(&self, role: &str) -> Result<Option<String>> {
        let holder = sqlx::query_scalar(
            "SELECT holder FROM leader_leases WHERE role = $1 AND expires_at > now()",
        )
        .bind(role)
        .fetch_optional(self.pool())
        .await?;
        Ok(holder)
    }
}
