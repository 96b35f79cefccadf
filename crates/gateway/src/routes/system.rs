//! `/api/v1/system`: capacity and load, so "why is my run not starting" has an answer.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{OrchestratorOut, SystemOut};
use crate::error::{ApiResult, ErrorOut};
use airlock_core::Scope;

/// An orchestrator renews its report every 5 s; after this long without one it is
/// called offline.
const OFFLINE_AFTER: TimeDelta = TimeDelta::seconds(15);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/system", get(system))
}

/// Capacity, the team's quota, and the queued and running counts.
#[utoipa::path(
    get,
    path = "/api/v1/system",
    tag = "system",
    responses(
        (status = 200, description = "Capacity and load", body = SystemOut),
        (status = 401, description = "No valid token", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn system(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SystemOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let load = state.db.run_load(caller.team_id()).await?;
    let now = Utc::now();
    let orchestrator =
        state
            .db
            .orchestrators()
            .await?
            .into_iter()
            .next()
            .map(|o| OrchestratorOut {
                online: now - o.seen_at < OFFLINE_AFTER,
                runtime: o.runtime,
                max_concurrent_runs: o.max_concurrent_runs,
                team_max_concurrent_runs: o.team_max_concurrent_runs,
                started_at: o.started_at,
                seen_at: o.seen_at,
            });
    Ok(Json(SystemOut {
        orchestrator,
        queued: load.queued,
        running: load.running,
        team_queued: load.team_queued,
        team_running: load.team_running,
    }))
}
