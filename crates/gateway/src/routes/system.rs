//! `/api/v1/system`: capacity, load and the replicas that serve them, so "why is my run
//! not starting" has an answer.

use airlock_core::replica::ReplicaService;
use airlock_db::{ReplicaEnd, ReplicaRecord};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use std::time::Duration;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{ReplicaOut, SystemOut};
use crate::error::{ApiResult, ErrorOut};
use airlock_core::Scope;

/// Replicas that ended are listed this long.
const RECENTLY_ENDED: Duration = Duration::from_secs(3600);

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
    let replicas = state.db.replicas(RECENTLY_ENDED).await?;
    let live_orchestrators: Vec<&ReplicaRecord> = replicas
        .iter()
        .filter(|r| {
            r.info.service == ReplicaService::Orchestrator
                && r.ended.is_none()
                && r.lease_expires_at > now
        })
        .collect();
    let capacity = live_orchestrators
        .iter()
        .filter_map(|r| r.info.capacity)
        .fold(0u32, u32::saturating_add);
    let limits = state.db.global_limits().await?;
    Ok(Json(SystemOut {
        capacity,
        team_max_concurrent_runs: limits.per_team,
        platform_max_concurrent_runs: limits.platform,
        queued: load.queued,
        running: load.running,
        team_queued: load.team_queued,
        team_running: load.team_running,
        replicas: replicas.into_iter().map(|r| replica_out(r, now)).collect(),
    }))
}

fn replica_out(record: ReplicaRecord, now: chrono::DateTime<Utc>) -> ReplicaOut {
    let (state, ended_at) = match record.ended {
        Some((ReplicaEnd::Lost, at)) => ("lost", Some(at)),
        Some((ReplicaEnd::Stopped, at)) => ("stopped", Some(at)),
        // Expired but not yet marked: it is as good as lost.
        None if record.lease_expires_at <= now => ("lost", None),
        None => ("live", None),
    };
    ReplicaOut {
        id: record.info.id,
        service: record.info.service.as_str().to_owned(),
        host: record.info.host,
        runtime: record.info.runtime,
        capacity: record.info.capacity,
        running: record.running,
        partitions: record.partitions,
        roles: record.roles,
        state: state.to_owned(),
        started_at: record.started_at,
        heartbeat_at: record.heartbeat_at,
        lease_expires_at: record.lease_expires_at,
        ended_at,
    }
}
