//! `/api/v1/me`: who the caller is, for the web UI's header and sign-in check.

use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::MeOut;
use crate::error::{ApiResult, ErrorOut};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/me", get(me))
}

/// The caller's user, team and role.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "identity",
    responses(
        (status = 200, description = "The caller", body = MeOut),
        (status = 401, description = "No valid token", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn me(caller: Caller) -> ApiResult<Json<MeOut>> {
    let principal = caller.0;
    Ok(Json(MeOut {
        user: principal.user_name,
        team: principal.team_name,
        team_id: principal.team_id,
        role: principal.role,
    }))
}
