//! Response bodies (`XxxOut`), converted from domain records at the edge.

use airlock_core::messages::{RunSnapshot, StoredEvent};
use airlock_core::score::ScoreSummary;
use airlock_core::state::StateCounts;
use airlock_core::{EvalSpec, EvaluationId, EvaluationStatus, TeamId};
use airlock_db::Evaluation;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// An evaluation without its runs or spec, as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvaluationSummaryOut {
    pub id: EvaluationId,
    pub name: String,
    pub status: EvaluationStatus,
    pub owner: String,
    pub team_id: TeamId,
    pub labels: BTreeMap<String, String>,
    pub priority: airlock_core::spec::Priority,
    pub run_count: u32,
    /// Runs per state.
    pub counts: StateCounts,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Evaluation> for EvaluationSummaryOut {
    fn from(e: &Evaluation) -> Self {
        Self {
            id: e.id,
            name: e.name.clone(),
            status: e.status,
            owner: e.owner_name.clone(),
            team_id: e.team_id,
            labels: e.spec.labels.clone(),
            priority: e.spec.priority,
            run_count: e.run_count,
            counts: e.counts.clone(),
            cancel_requested_at: e.cancel_requested_at,
            created_at: e.created_at,
            started_at: e.started_at,
            finished_at: e.finished_at,
        }
    }
}

/// An evaluation with its spec, runs and score aggregates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvaluationOut {
    #[serde(flatten)]
    pub summary: EvaluationSummaryOut,
    pub spec: EvalSpec,
    /// In task then epoch order.
    pub runs: Vec<RunSnapshot>,
    /// One aggregate per score name.
    pub scores: Vec<ScoreSummary>,
}

/// One page of evaluations, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvaluationListOut {
    pub items: Vec<EvaluationSummaryOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a run's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventListOut {
    pub events: Vec<StoredEvent>,
    /// Pass as `after_seq` for the next page; equals the request's when nothing is new.
    pub next_after_seq: i64,
}

/// The answer to a cancel request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelOut {
    pub id: EvaluationId,
    pub status: EvaluationStatus,
    /// When cancellation was first requested.
    pub cancel_requested_at: Option<DateTime<Utc>>,
}
