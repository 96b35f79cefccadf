//! `/api/v1/runs`: one run and its event stream.

use airlock_core::messages::RunSnapshot;
use airlock_core::{ErrorCode, RunId};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::EventListOut;
use crate::error::{ApiError, ApiResult, ErrorOut};
use airlock_core::Scope;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/runs/{id}", get(read))
        .route("/api/v1/runs/{id}/events", get(events))
}

async fn visible_run(state: &AppState, caller: &Caller, id: &str) -> ApiResult<RunSnapshot> {
    let id = RunId::parse(id).ok_or_else(|| ApiError::not_found("run"))?;
    match state.db.run(id).await? {
        Some((run, team_id)) if team_id == caller.team_id() => Ok(run),
        _ => Err(ApiError::not_found("run")),
    }
}

/// Read one run.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = RunSnapshot),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such run in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RunSnapshot>> {
    caller.require(Scope::EvaluationsRead)?;
    Ok(Json(visible_run(&state, &caller, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger seq; default 0 (from the start).
    after_seq: Option<i64>,
    /// At most this many, 1 to 5000; default 1000.
    limit: Option<i64>,
}

/// Read a run's events in seq order.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/events",
    tag = "runs",
    params(("id" = String, Path, description = "Run id"), EventsQuery),
    responses(
        (status = 200, description = "One page of events", body = EventListOut),
        (status = 400, description = "Bad after_seq or limit", body = ErrorOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such run in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EventListOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let Query(query) = query?;
    let run = visible_run(&state, &caller, &id).await?;
    let after_seq = query.after_seq.unwrap_or(0);
    let limit = query.limit.unwrap_or(1000);
    if after_seq < 0 || !(1..=5000).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "after_seq must be >= 0 and limit between 1 and 5000",
        ));
    }
    let events = state.db.run_events(run.id, after_seq, limit).await?;
    let next_after_seq = events.last().map(|e| e.seq).unwrap_or(after_seq);
    Ok(Json(EventListOut {
        events,
        next_after_seq,
    }))
}
