//! Team administration (role admin): the members and their roles, and service accounts
//! for CI. A member of another team is simply not found.

use airlock_core::spec::FieldError;
use airlock_core::{ErrorCode, Role, Scope, UserId};
use airlock_db::UserKind;
use airlock_db::identity::{Member, RoleChange};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorOut};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/team/members", get(members))
        .route("/api/v1/team/members/{id}", patch(change_role))
        .route(
            "/api/v1/service-accounts",
            get(service_accounts).post(create_service_account),
        )
}

/// A person or service account of the team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberOut {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub kind: UserKind,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<Member> for MemberOut {
    fn from(m: Member) -> Self {
        Self {
            id: m.id,
            name: m.name,
            email: m.email,
            kind: m.kind,
            role: m.role,
            created_at: m.created_at,
            last_login_at: m.last_login_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembersOut {
    pub members: Vec<MemberOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceAccountsOut {
    pub service_accounts: Vec<MemberOut>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RoleIn {
    pub role: Role,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ServiceAccountIn {
    /// Unique across Airlock (1–100 characters: letters, digits, `-`, `_`, `.`).
    pub name: String,
    pub role: Role,
}

/// The team's members (admin).
#[utoipa::path(
    get,
    path = "/api/v1/team/members",
    tag = "team",
    responses(
        (status = 200, description = "Members", body = MembersOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn members(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<MembersOut>> {
    caller.require(Scope::Admin)?;
    let members = state.db.members(caller.team_id(), None).await?;
    Ok(Json(MembersOut {
        members: members.into_iter().map(Into::into).collect(),
    }))
}

/// Changes a member's role (admin). The team keeps at least one admin.
#[utoipa::path(
    patch,
    path = "/api/v1/team/members/{id}",
    tag = "team",
    params(("id" = String, Path, description = "User id")),
    request_body = RoleIn,
    responses(
        (status = 200, description = "Changed", body = MemberOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
        (status = 404, description = "No such member of your team", body = ErrorOut),
        (status = 409, description = "It would leave the team without an admin (last_admin)", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<RoleIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<MemberOut>> {
    caller.require(Scope::Admin)?;
    let not_found = || ApiError::not_found("member");
    let id: UserId = id.parse::<Uuid>().map_err(|_| not_found())?.into();
    let Json(body) = body.map_err(ApiError::from)?;
    let before = state
        .db
        .member(caller.team_id(), id)
        .await?
        .ok_or_else(not_found)?;
    match state.db.set_role(caller.team_id(), id, body.role).await? {
        RoleChange::NotFound => return Err(not_found()),
        RoleChange::LastAdmin => {
            return Err(ApiError::new(
                ErrorCode::LastAdmin,
                "the team would have no admin left; make someone else admin first",
            ));
        }
        RoleChange::Changed => {}
    }
    if before.role != body.role {
        state
            .db
            .audit(&caller.audit(
                "role.change",
                "user",
                Some(id.to_string()),
                serde_json::json!({"name": before.name, "from": before.role, "to": body.role}),
            ))
            .await?;
    }
    let member = state
        .db
        .member(caller.team_id(), id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(member.into()))
}

/// The team's service accounts (admin).
#[utoipa::path(
    get,
    path = "/api/v1/service-accounts",
    tag = "team",
    responses(
        (status = 200, description = "Service accounts", body = ServiceAccountsOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn service_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ServiceAccountsOut>> {
    caller.require(Scope::Admin)?;
    let accounts = state
        .db
        .members(caller.team_id(), Some(UserKind::Service))
        .await?;
    Ok(Json(ServiceAccountsOut {
        service_accounts: accounts.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a service account in the team (admin), e.g. for a CI job.
#[utoipa::path(
    post,
    path = "/api/v1/service-accounts",
    tag = "team",
    request_body = ServiceAccountIn,
    responses(
        (status = 201, description = "Created", body = MemberOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
        (status = 409, description = "The name is taken", body = ErrorOut),
        (status = 422, description = "Invalid name", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create_service_account(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ServiceAccountIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<MemberOut>)> {
    caller.require(Scope::Admin)?;
    let Json(body) = body.map_err(ApiError::from)?;
    let name = body.name.trim();
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "name",
            "invalid_format",
            "1 to 100 characters: letters, digits, '-', '_' or '.'",
        )]));
    }
    let Some(account) = state
        .db
        .create_service_account(caller.team_id(), name, body.role)
        .await?
    else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the name {name} is taken"),
        ));
    };
    state
        .db
        .audit(&caller.audit(
            "service_account.create",
            "user",
            Some(account.id.to_string()),
            serde_json::json!({"name": account.name, "role": account.role}),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}
