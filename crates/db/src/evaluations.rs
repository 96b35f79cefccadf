//! Evaluations and their runs as the gateway creates and reads them.

use airlock_core::event::EventBody;
use airlock_core::messages::{RunOwner, RunRequested, RunSnapshot};
use airlock_core::state::StateCounts;
use airlock_core::{EvalSpec, EvaluationId, EvaluationStatus, RunId, RunState, TeamId, UserId};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::outbox::{self, OutboxMessage};
use crate::rows::{Evaluation, EvaluationRow, RUN_COLUMNS, RunRow};
use crate::{GatewayDb, OrchestratorDb, Result};

/// A run about to be created.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: RunId,
    pub task_index: u32,
    pub task_id: String,
    pub epoch: u32,
}

/// An evaluation about to be created, with its runs and the messages announcing them.
#[derive(Debug, Clone)]
pub struct NewEvaluation<'a> {
    pub id: EvaluationId,
    pub team_id: TeamId,
    pub owner_id: UserId,
    pub spec: &'a EvalSpec,
    pub created_at: DateTime<Utc>,
    pub runs: &'a [NewRun],
    pub outbox: &'a [OutboxMessage],
    /// Recorded in the same transaction.
    pub audit: Option<&'a crate::audit::AuditRecord>,
}

/// Which evaluations to list.
#[derive(Debug, Clone, Default)]
pub struct EvaluationFilter {
    pub team_id: Option<TeamId>,
    pub status: Option<EvaluationStatus>,
    /// Every pair must be among the evaluation's labels.
    pub labels: Vec<(String, String)>,
    /// Only names containing this text, ignoring case.
    pub name: Option<String>,
    /// Only evaluations submitted by the user of this name.
    pub owner: Option<String>,
    pub order: EvaluationOrder,
    /// Continue after the evaluation with this sort key and id (see [`EvaluationOrder`]).
    pub after: Option<(String, EvaluationId)>,
    pub limit: i64,
}

/// The order of a listing. Each is total (ties broken by id), so a cursor of
/// (sort key, id) continues exactly where a page ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EvaluationOrder {
    /// Newest first; the sort key is `created_at` in RFC 3339.
    #[default]
    Newest,
    /// Oldest first; the sort key is `created_at` in RFC 3339.
    Oldest,
    /// By name, A to Z ignoring case; the sort key is the lowercased name.
    NameAsc,
    /// By name, Z to A ignoring case; the sort key is the lowercased name.
    NameDesc,
}

impl EvaluationOrder {
    /// The sort key of `evaluation` in this order, as a cursor carries it.
    pub fn key_of(self, evaluation: &Evaluation) -> String {
        match self {
            Self::Newest | Self::Oldest => evaluation.created_at.to_rfc3339(),
            Self::NameAsc | Self::NameDesc => evaluation.name.to_lowercase(),
        }
    }

    /// (ORDER BY, the cursor condition) — fixed SQL, never built from input.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Newest => (
                "e.created_at DESC, e.id DESC",
                "(e.created_at, e.id) < ($8::timestamptz, $9)",
            ),
            Self::Oldest => (
                "e.created_at ASC, e.id ASC",
                "(e.created_at, e.id) > ($8::timestamptz, $9)",
            ),
            Self::NameAsc => (
                "lower(e.name) ASC, e.id ASC",
                "(lower(e.name), e.id) > ($8::text, $9)",
            ),
            Self::NameDesc => (
                "lower(e.name) DESC, e.id DESC",
                "(lower(e.name), e.id) < ($8::text, $9)",
            ),
        }
    }
}

/// `text` as a LIKE pattern matching itself literally anywhere.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

const EVALUATION_COLUMNS: &str = "e.id, e.team_id, e.owner_id, u.name AS owner_name, e.name, e.spec, \
     e.status, e.counts, e.run_count, e.cancel_requested_at, e.created_at, e.started_at, e.finished_at";

impl GatewayDb {
    /// Creates the evaluation, its runs (queued, each with its first event saying so) and
    /// its outbox messages in one transaction: either all of it is stored or nothing is.
    #[tracing::instrument(skip_all, fields(evaluation_id = %new.id, runs = new.runs.len()))]
    pub async fn insert_evaluation(&self, new: NewEvaluation<'_>) -> Result<()> {
        let mut counts = StateCounts::default();
        counts.add(RunState::Queued, new.runs.len() as u64);
        let queued = EventBody::Status {
            state: RunState::Queued,
            reason: None,
            exit_code: None,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO evaluations (id, team_id, owner_id, name, spec, labels, priority, status, counts,
                                      run_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $10)",
        )
        .bind(new.id.as_uuid())
        .bind(new.team_id.as_uuid())
        .bind(new.owner_id.as_uuid())
        .bind(&new.spec.name)
        .bind(Json(new.spec))
        .bind(Json(&new.spec.labels))
        .bind(new.spec.priority.rank())
        .bind(Json(&counts))
        .bind(i32::try_from(new.runs.len()).unwrap_or(i32::MAX))
        .bind(new.created_at)
        .execute(&mut *tx)
        .await?;
        for chunk in new.runs.chunks(10_000) {
            let ids: Vec<Uuid> = chunk.iter().map(|r| r.id.as_uuid()).collect();
            let indexes: Vec<i32> = chunk.iter().map(|r| r.task_index as i32).collect();
            let task_ids: Vec<&str> = chunk.iter().map(|r| r.task_id.as_str()).collect();
            let epochs: Vec<i32> = chunk.iter().map(|r| r.epoch as i32).collect();
            sqlx::query(
                "INSERT INTO runs (id, evaluation_id, task_index, task_id, epoch, last_seq, created_at, updated_at)
                 SELECT id, $1, task_index, task_id, epoch, 1, $6, $6
                 FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::int4[]) AS r(id, task_index, task_id, epoch)",
            )
            .bind(new.id.as_uuid())
            .bind(&ids)
            .bind(&indexes)
            .bind(&task_ids)
            .bind(&epochs)
            .bind(new.created_at)
            .execute(&mut *tx)
            .await?;
            // Every run's stream begins with its first state, so a timeline is complete.
            sqlx::query(
                "INSERT INTO run_events (run_id, seq, attempt, kind, ts, body)
                 SELECT id, 1, 1, 'status', $2, $3 FROM UNNEST($1::uuid[]) AS r(id)",
            )
            .bind(&ids)
            .bind(new.created_at)
            .bind(Json(&queued))
            .execute(&mut *tx)
            .await?;
        }
        outbox::insert(&mut tx, new.outbox).await?;
        if let Some(record) = new.audit {
            crate::audit::insert(&mut *tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One evaluation, if it exists and (when `team_id` is given) belongs to that team.
    #[tracing::instrument(skip(self))]
    pub async fn evaluation(
        &self,
        id: EvaluationId,
        team_id: Option<TeamId>,
    ) -> Result<Option<Evaluation>> {
        let row: Option<EvaluationRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVALUATION_COLUMNS} FROM evaluations e JOIN users u ON u.id = e.owner_id
             WHERE e.id = $1 AND ($2::uuid IS NULL OR e.team_id = $2)"
        )))
        .bind(id.as_uuid())
        .bind(team_id.map(|t| t.as_uuid()))
        .fetch_optional(self.pool())
        .await?;
        row.map(Evaluation::try_from).transpose()
    }

    /// Evaluations matching the filter, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn evaluations(&self, filter: &EvaluationFilter) -> Result<Vec<Evaluation>> {
        let labels: serde_json::Map<String, serde_json::Value> = filter
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let (order_by, after) = filter.order.sql();
        let rows: Vec<EvaluationRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVALUATION_COLUMNS} FROM evaluations e JOIN users u ON u.id = e.owner_id
             WHERE ($1::uuid IS NULL OR e.team_id = $1)
               AND ($2::text IS NULL OR e.status = $2)
               AND e.labels @> $3
               AND ($4::text IS NULL OR lower(e.name) LIKE $4)
               AND ($5::text IS NULL OR u.name = $5)
               AND ($7::bool OR {after})
             ORDER BY {order_by}
             LIMIT $6"
        )))
        .bind(filter.team_id.map(|t| t.as_uuid()))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(Json(labels))
        .bind(filter.name.as_deref().map(contains_pattern))
        .bind(filter.owner.as_deref())
        .bind(filter.limit)
        .bind(filter.after.is_none())
        .bind(filter.after.as_ref().map(|(key, _)| key.as_str()))
        .bind(filter.after.as_ref().map(|(_, id)| id.as_uuid()))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Evaluation::try_from).collect()
    }

    /// The runs of an evaluation in task then epoch order.
    #[tracing::instrument(skip(self))]
    pub async fn runs_of(&self, evaluation_id: EvaluationId) -> Result<Vec<RunSnapshot>> {
        let rows: Vec<RunRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE evaluation_id = $1 ORDER BY task_index, epoch"
        )))
        .bind(evaluation_id.as_uuid())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RunSnapshot::try_from).collect()
    }

    /// One run, with the team that owns it.
    #[tracing::instrument(skip(self))]
    pub async fn run(&self, id: RunId) -> Result<Option<(RunSnapshot, TeamId)>> {
        let row: Option<(Uuid,)> = sqlx::query_as(
            "SELECT e.team_id FROM runs r JOIN evaluations e ON e.id = r.evaluation_id WHERE r.id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        let Some((team_id,)) = row else {
            return Ok(None);
        };
        let run: RunRow = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(id.as_uuid())
        .fetch_one(self.pool())
        .await?;
        Ok(Some((run.try_into()?, team_id.into())))
    }

    /// Records a cancel request and its control message in one transaction. Returns
    /// false when the evaluation had already been asked to cancel (nothing is written).
    #[tracing::instrument(skip(self, message, audit))]
    pub async fn request_cancel(
        &self,
        id: EvaluationId,
        message: &OutboxMessage,
        audit: Option<&crate::audit::AuditRecord>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE evaluations SET cancel_requested_at = now(), updated_at = now()
             WHERE id = $1 AND cancel_requested_at IS NULL",
        )
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        outbox::insert(&mut tx, std::slice::from_ref(message)).await?;
        if let Some(record) = audit {
            crate::audit::insert(&mut *tx, record).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

impl OrchestratorDb {
    /// What the orchestrator checks before starting a run: its state and attempt, and
    /// whether its evaluation has been asked to cancel. `None` when the run is unknown.
    pub async fn run_admission(&self, id: RunId) -> Result<Option<(RunState, u32, bool)>> {
        let row: Option<(String, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT r.state, r.attempt, e.cancel_requested_at
             FROM runs r JOIN evaluations e ON e.id = r.evaluation_id WHERE r.id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        row.map(|(state, attempt, cancel)| {
            let state = state.parse::<RunState>().map_err(crate::rows::corrupt)?;
            Ok((state, u32::try_from(attempt).unwrap_or(0), cancel.is_some()))
        })
        .transpose()
    }

    /// Of these evaluations, the ones whose cancellation was requested.
    pub async fn cancelled_evaluations(&self, ids: &[EvaluationId]) -> Result<Vec<EvaluationId>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM evaluations WHERE id = ANY($1) AND cancel_requested_at IS NOT NULL",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(EvaluationId::from).collect())
    }
}

impl OrchestratorDb {
    /// The run request of a run's current attempt, rebuilt from its evaluation's spec (to
    /// retry an attempt whose original request is gone). `None` when the run is unknown.
    pub async fn run_request(&self, id: RunId) -> Result<Option<RunRequested>> {
        let row: Option<RunSourceRow> = sqlx::query_as(
            "SELECT r.evaluation_id, e.team_id, r.task_index, r.epoch, r.attempt, e.spec, e.created_at
             FROM runs r JOIN evaluations e ON e.id = r.evaluation_id WHERE r.id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        let Some(RunSourceRow {
            evaluation_id,
            team_id,
            task_index,
            epoch,
            attempt,
            spec: Json(spec),
            created_at,
        }) = row
        else {
            return Ok(None);
        };
        let task = spec
            .tasks
            .get(usize::try_from(task_index).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                crate::rows::corrupt(format!("run {id} points past its spec's tasks"))
            })?;
        let owner = RunOwner {
            run_id: id,
            evaluation_id: evaluation_id.into(),
            team_id: team_id.into(),
        };
        let epoch = u32::try_from(epoch).unwrap_or(1);
        let attempt = u32::try_from(attempt).unwrap_or(1);
        Ok(Some(RunRequested::new(
            &spec, owner, task, epoch, attempt, created_at,
        )))
    }
}

#[derive(sqlx::FromRow)]
struct RunSourceRow {
    evaluation_id: Uuid,
    team_id: Uuid,
    task_index: i32,
    epoch: i32,
    attempt: i32,
    spec: Json<EvalSpec>,
    created_at: DateTime<Utc>,
}
