//! `/api/v1/me`: who the caller is and what this request may do, for the web UI's header,
//! sign-in check and CSRF token.

use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::{Caller, Via};
use crate::dto::MeOut;
use crate::error::{ApiResult, ErrorOut};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/me", get(me))
}

/// The caller's user, team, role and effective scopes.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "identity",
    responses(
        (status = 200, description = "The caller", body = MeOut),
        (status = 401, description = "Not signed in", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn me(caller: Caller) -> ApiResult<Json<MeOut>> {
    let principal = caller.principal;
    Ok(Json(MeOut {
        user: principal.user_name,
        user_id: principal.user_id,
        email: principal.email,
        kind: principal.kind,
        team: principal.team_name,
        team_id: principal.team_id,
        role: principal.role,
        scopes: caller.scopes.iter().collect(),
        auth: caller.via.as_str().to_owned(),
        csrf_token: match caller.via {
            Via::Session { csrf_token } => Some(csrf_token),
            _ => None,
        },
    }))
}
