//! What the database hands back: domain-typed records, decoded from rows here so that no
//! caller sees a raw column.

use airlock_core::messages::{RunSnapshot, StoredEvent};
use airlock_core::score::{Aggregate, ScoreSummary};
use airlock_core::state::StateCounts;
use airlock_core::{
    EvalSpec, EvaluationId, EvaluationStatus, Role, RunId, RunState, TeamId, UserId,
};
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::{DbError, Result};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub user_name: String,
    pub team_id: TeamId,
    pub team_name: String,
    pub role: Role,
    pub kind: UserKind,
    pub email: Option<String>,
}

/// A person, or a service account a team created for automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    User,
    Service,
}

impl UserKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "user" => Ok(Self::User),
            "service" => Ok(Self::Service),
            other => Err(DbError::Corrupt(format!("unknown user kind `{other}`"))),
        }
    }
}

/// Columns of [`PrincipalRow`], for `users u JOIN teams t`.
pub(crate) const PRINCIPAL_COLUMNS: &str = "u.id AS user_id, u.name AS user_name, t.id AS team_id, t.name AS team_name, u.role, u.kind, u.email";

#[derive(FromRow)]
pub(crate) struct PrincipalRow {
    pub user_id: Uuid,
    pub user_name: String,
    pub team_id: Uuid,
    pub team_name: String,
    pub role: String,
    pub kind: String,
    pub email: Option<String>,
}

pub(crate) fn parse_role(text: &str) -> Result<Role> {
    text.parse().map_err(|e| DbError::Corrupt(format!("{e}")))
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = DbError;

    fn try_from(row: PrincipalRow) -> Result<Self> {
        Ok(Self {
            user_id: row.user_id.into(),
            user_name: row.user_name,
            team_id: row.team_id.into(),
            team_name: row.team_name,
            role: parse_role(&row.role)?,
            kind: UserKind::parse(&row.kind)?,
            email: row.email,
        })
    }
}

/// An evaluation's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub id: EvaluationId,
    pub team_id: TeamId,
    pub owner_id: UserId,
    pub owner_name: String,
    pub name: String,
    pub spec: EvalSpec,
    pub status: EvaluationStatus,
    pub counts: StateCounts,
    pub run_count: u32,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
pub(crate) struct EvaluationRow {
    pub id: Uuid,
    pub team_id: Uuid,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub name: String,
    pub spec: Json<EvalSpec>,
    pub status: String,
    pub counts: Json<StateCounts>,
    pub run_count: i32,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<EvaluationRow> for Evaluation {
    type Error = DbError;

    fn try_from(row: EvaluationRow) -> Result<Self> {
        Ok(Self {
            id: row.id.into(),
            team_id: row.team_id.into(),
            owner_id: row.owner_id.into(),
            owner_name: row.owner_name,
            name: row.name,
            spec: row.spec.0,
            status: row
                .status
                .parse()
                .map_err(|e| DbError::Corrupt(format!("{e}")))?,
            counts: row.counts.0,
            run_count: u32::try_from(row.run_count).unwrap_or(0),
            cancel_requested_at: row.cancel_requested_at,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

pub(crate) const RUN_COLUMNS: &str = "id, evaluation_id, task_id, epoch, attempt, state, reason, \
     exit_code, created_at, started_at, finished_at, scores, last_seq";

#[derive(FromRow)]
pub(crate) struct RunRow {
    pub id: Uuid,
    pub evaluation_id: Uuid,
    pub task_id: String,
    pub epoch: i32,
    pub attempt: i32,
    pub state: String,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub scores: Json<std::collections::BTreeMap<String, f64>>,
    pub last_seq: i64,
}

impl TryFrom<RunRow> for RunSnapshot {
    type Error = DbError;

    fn try_from(row: RunRow) -> Result<Self> {
        Ok(Self {
            id: RunId::from(row.id),
            evaluation_id: row.evaluation_id.into(),
            task_id: row.task_id,
            epoch: u32::try_from(row.epoch).unwrap_or(0),
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            state: row
                .state
                .parse::<RunState>()
                .map_err(|e| DbError::Corrupt(format!("{e}")))?,
            reason: row.reason,
            exit_code: row.exit_code,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            scores: row.scores.0,
            seq: row.last_seq,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    pub run_id: Uuid,
    pub seq: i64,
    pub attempt: i32,
    pub ts: DateTime<Utc>,
    pub body: Json<airlock_core::event::EventBody>,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            run_id: row.run_id.into(),
            seq: row.seq,
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            ts: row.ts,
            body: row.body.0,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct AggregateRow {
    pub name: String,
    pub count: i64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl AggregateRow {
    pub fn aggregate(&self) -> Aggregate {
        Aggregate {
            count: u64::try_from(self.count).unwrap_or(0),
            mean: self.mean,
            m2: self.m2,
            min: self.min,
            max: self.max,
        }
    }

    pub fn summary(self) -> ScoreSummary {
        let aggregate = self.aggregate();
        ScoreSummary::new(self.name, &aggregate)
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}
