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
    /// One aggregate per score name, by name.
    pub scores: Vec<ScoreSummary>,
}

impl EvaluationSummaryOut {
    pub fn new(e: &Evaluation, scores: Vec<ScoreSummary>) -> Self {
        Self {
            scores,
            ..Self::from(e)
        }
    }
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
            scores: Vec::new(),
        }
    }
}

/// An evaluation with its spec, runs and score aggregates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvaluationOut {
    #[serde(flatten)]
    pub summary: EvaluationSummaryOut,
    pub spec: EvalSpec,
    /// The first page of runs in task then epoch order (all of them for an evaluation
    /// of up to 100 runs); empty when read with `runs=false`.
    pub runs: Vec<RunSnapshot>,
    /// Pass as `cursor` to `GET /api/v1/evaluations/{id}/runs` for the runs after
    /// `runs`; absent when `runs` holds them all.
    pub runs_next_cursor: Option<String>,
}

/// One page of an evaluation's runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunListOut {
    pub items: Vec<RunSnapshot>,
    /// Pass as `cursor` for the next page (with the same `sort` and `state`); absent on
    /// the last page.
    pub next_cursor: Option<String>,
}

/// The distribution of one score's values over an evaluation's runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistogramOut {
    pub name: String,
    /// Values counted (runs that reported this score).
    pub count: u64,
    /// Equal-width bins from the smallest to the largest value, at most 30.
    pub bins: Vec<airlock_core::histogram::Bin>,
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

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeOut {
    pub user: String,
    pub user_id: airlock_core::UserId,
    pub email: Option<String>,
    pub kind: airlock_db::UserKind,
    pub team: String,
    pub team_id: TeamId,
    pub role: airlock_core::Role,
    /// What this request may do: the role's scopes, narrowed by the credential's.
    pub scopes: Vec<airlock_core::Scope>,
    /// How the caller signed in: `session`, `api_token` or `jwt`.
    pub auth: String,
    /// For a browser session: send it as `X-CSRF-Token` on POST, PATCH and DELETE.
    pub csrf_token: Option<String>,
}

/// What the platform can run and how busy it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SystemOut {
    /// Runs at once over all live orchestrator replicas (the sum of their capacities);
    /// 0 when none is live.
    pub capacity: u32,
    /// Runs one team may hold at once over all replicas; absent when there is no
    /// per-team limit.
    pub team_max_concurrent_runs: Option<u32>,
    /// Runs all teams together may hold at once; absent when there is no platform limit.
    pub platform_max_concurrent_runs: Option<u32>,
    /// Runs of every team not started yet (queued or scheduling).
    pub queued: u64,
    /// Runs of every team holding a sandbox (starting or running).
    pub running: u64,
    /// The caller's team's runs not started yet.
    pub team_queued: u64,
    /// The caller's team's runs holding a sandbox.
    pub team_running: u64,
    /// Live replicas first, then those lost or stopped within the last hour.
    pub replicas: Vec<ReplicaOut>,
}

/// One replica of an orchestrator or a result-processor, and its lease.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplicaOut {
    /// Like `orchestrator-host1-4f2a09c1`, or the pod's name.
    pub id: String,
    /// `orchestrator` or `result-processor`.
    pub service: String,
    pub host: String,
    /// `local` or `kubernetes` for an orchestrator; absent for a result-processor.
    pub runtime: Option<String>,
    /// An orchestrator's own runs at once; absent for a result-processor.
    pub capacity: Option<u32>,
    /// Runs this orchestrator holds now (0 for a result-processor).
    pub running: u32,
    /// Report partitions assigned to a result-processor (empty for an orchestrator).
    pub partitions: Vec<u16>,
    /// Singleton roles it holds, like `kubernetes-reaper` or `replica-cleanup`.
    pub roles: Vec<String>,
    /// `live`, `lost` (its lease expired) or `stopped` (it shut down cleanly).
    pub state: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    pub lease_expires_at: DateTime<Utc>,
    /// When it was found lost or stopped.
    pub ended_at: Option<DateTime<Utc>>,
}
