//! The audit log (written by the gateway): who did what to which object, when, from
//! where, and whether it succeeded. Append-only; entries are ordered by their time-ordered
//! id, which is also the paging cursor.

use airlock_core::{TeamId, UserId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::{GatewayDb, Result};

/// One thing that happened, to be recorded.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub team_id: Option<TeamId>,
    pub actor_id: Option<UserId>,
    pub actor_name: Option<String>,
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: Option<String>,
    pub source_address: Option<String>,
    pub success: bool,
    pub detail: Value,
}

impl AuditRecord {
    /// Something `actor` did successfully, from `source_address`.
    pub fn by(
        actor: &crate::Principal,
        source_address: Option<String>,
        action: &'static str,
        object_type: &'static str,
        object_id: Option<String>,
        detail: Value,
    ) -> Self {
        Self {
            team_id: Some(actor.team_id),
            actor_id: Some(actor.user_id),
            actor_name: Some(actor.user_name.clone()),
            action,
            object_type,
            object_id,
            source_address,
            success: true,
            detail,
        }
    }
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub source_address: Option<String>,
    pub outcome: String,
    pub detail: Json<Value>,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub team_id: TeamId,
    pub action: Option<String>,
    /// Only entries older than this one.
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Inserts one entry with any executor, so callers can make it part of their transaction.
pub async fn insert<'e>(executor: impl PgExecutor<'e>, record: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, team_id, actor_id, actor_name, action, object_type, object_id,
                                source_address, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(record.team_id.map(|t| t.as_uuid()))
    .bind(record.actor_id.map(|u| u.as_uuid()))
    .bind(&record.actor_name)
    .bind(record.action)
    .bind(record.object_type)
    .bind(&record.object_id)
    .bind(&record.source_address)
    .bind(if record.success { "success" } else { "failure" })
    .bind(Json(&record.detail))
    .execute(executor)
    .await?;
    Ok(())
}

impl GatewayDb {
    /// Records one entry on its own.
    #[tracing::instrument(skip_all, fields(action = record.action))]
    pub async fn audit(&self, record: &AuditRecord) -> Result<()> {
        insert(self.pool(), record).await
    }

    /// The team's entries, plus failed logins nobody could be named for (no team), newest
    /// first.
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor_id, actor_name, action, object_type, object_id, source_address,
                    outcome, detail
             FROM audit_log
             WHERE (team_id = $1 OR team_id IS NULL)
               AND ($2::text IS NULL OR action = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.team_id.as_uuid())
        .bind(&filter.action)
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(self.pool())
        .await?)
    }
}
