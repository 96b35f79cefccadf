//! `/api/v1/audit`: the audit log for admins — their team's entries, and failed sign-ins
//! nobody could be named for — newest first, paged by an opaque cursor.

use airlock_core::Scope;
use airlock_db::audit::{AuditEntry, AuditFilter};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorOut};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorOut {
    pub id: Uuid,
    pub name: String,
}

/// Who did what to which object, when, from where, with what outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryOut {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// Absent for a failed sign-in that named nobody.
    pub actor: Option<ActorOut>,
    /// login, login_failed, logout, evaluation.submit, evaluation.cancel, token.create,
    /// token.revoke, role.change, service_account.create.
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub source_address: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor_id.map(|id| ActorOut {
                id,
                name: e.actor_name.unwrap_or_default(),
            }),
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            source_address: e.source_address,
            outcome: e.outcome,
            detail: e.detail.0,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPageOut {
    pub entries: Vec<AuditEntryOut>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit log (admin).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "team",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first", body = AuditPageOut),
        (status = 400, description = "Bad cursor or limit", body = ErrorOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditPageOut>> {
    caller.require(Scope::Admin)?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(
            airlock_core::ErrorCode::MalformedRequest,
            "limit must be between 1 and 200",
        ));
    }
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| Uuid::from_slice(&bytes).ok())
                .ok_or_else(|| {
                    ApiError::new(airlock_core::ErrorCode::MalformedRequest, "invalid cursor")
                })?,
        ),
    };
    let entries = state
        .db
        .audit_entries(&AuditFilter {
            team_id: caller.team_id(),
            action: query.action.filter(|a| !a.is_empty()),
            before,
            limit: limit + 1,
        })
        .await?;
    let more = entries.len() as i64 > limit;
    let entries: Vec<AuditEntryOut> = entries
        .into_iter()
        .take(limit as usize)
        .map(Into::into)
        .collect();
    let next_cursor = more
        .then(|| {
            entries
                .last()
                .map(|e| URL_SAFE_NO_PAD.encode(e.id.as_bytes()))
        })
        .flatten();
    Ok(Json(AuditPageOut {
        entries,
        next_cursor,
    }))
}
