//! API tokens: created, listed and revoked by their owner (a team admin also manages the
//! team's service accounts' tokens). The secret is shown once, at creation; only its
//! hash is stored. A token can only pass on what its creator may do: its scopes must be
//! within the creating request's, and a token cannot outlive the token that made it.

use airlock_core::spec::FieldError;
use airlock_core::{Scope, Scopes, UserId};
use airlock_db::UserKind;
use airlock_db::tokens::{ApiToken, NewToken};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::tokens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{id}", delete(revoke))
        .route(
            "/api/v1/service-accounts/{id}/tokens",
            get(list_for_service_account).post(create_for_service_account),
        )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenOwnerOut {
    pub id: UserId,
    pub name: String,
}

/// A token as its owner sees it; never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenOut {
    pub id: Uuid,
    pub name: String,
    /// The token's first characters, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub owner: TokenOwnerOut,
}

impl From<ApiToken> for TokenOut {
    fn from(token: ApiToken) -> Self {
        Self {
            id: token.id,
            name: token.name,
            prefix: token.prefix,
            scopes: token.scopes.iter().collect(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
            owner: TokenOwnerOut {
                id: token.owner_id,
                name: token.owner_name,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenListOut {
    pub tokens: Vec<TokenOut>,
}

/// A new token: its record and, this once, its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTokenOut {
    pub token: TokenOut,
    /// The token itself. It is not stored and cannot be shown again.
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenIn {
    /// What the token is for (1–100 characters).
    pub name: Option<String>,
    /// Within what the creating request may do.
    pub scopes: Option<Vec<String>>,
    /// When it stops working; none for never (or the creating token's own expiry).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks a request for a new token; every problem is reported with its field.
fn validate(
    caller: &Caller,
    body: &TokenIn,
    owner_role_scopes: Scopes,
) -> ApiResult<(String, Scopes)> {
    let mut errors = Vec::new();
    let name = body.name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::new("name", "required", "give the token a name"));
    } else if name.chars().count() > 100 {
        errors.push(FieldError::new(
            "name",
            "too_long",
            "at most 100 characters",
        ));
    }
    let mut scopes = Vec::new();
    match &body.scopes {
        None => errors.push(FieldError::new(
            "scopes",
            "required",
            "list at least one scope",
        )),
        Some(names) if names.is_empty() => {
            errors.push(FieldError::new(
                "scopes",
                "required",
                "list at least one scope",
            ));
        }
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                match name.parse::<Scope>() {
                    Err(error) => errors.push(FieldError::new(
                        format!("scopes[{i}]"),
                        "unknown_scope",
                        error.to_string(),
                    )),
                    Ok(scope)
                        if !caller.scopes.contains(scope) || !owner_role_scopes.contains(scope) =>
                    {
                        errors.push(FieldError::new(
                            format!("scopes[{i}]"),
                            "scope_not_allowed",
                            format!("{scope} is beyond what you (or the token's owner) may do"),
                        ));
                    }
                    Ok(scope) => scopes.push(scope),
                }
            }
        }
    }
    if let Some(at) = body.expires_at
        && at <= Utc::now()
    {
        errors.push(FieldError::new(
            "expires_at",
            "in_past",
            "must be in the future",
        ));
    }
    if errors.is_empty() {
        Ok((name.to_owned(), scopes.into_iter().collect()))
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}

async fn issue(
    state: &AppState,
    caller: &Caller,
    owner: UserId,
    owner_role_scopes: Scopes,
    body: TokenIn,
) -> ApiResult<(StatusCode, Json<CreatedTokenOut>)> {
    let (name, scopes) = validate(caller, &body, owner_role_scopes)?;
    // A token made by a token expires no later than its maker.
    let expires_at = match (body.expires_at, caller.expires_at) {
        (Some(asked), Some(limit)) => Some(asked.min(limit)),
        (asked, limit) => asked.or(limit),
    };
    let secret = tokens::generate();
    let token = state
        .db
        .insert_api_token(&NewToken {
            owner,
            hash: &tokens::hash(&secret),
            name: &name,
            prefix: &tokens::prefix(&secret),
            scopes,
            expires_at,
            created_by: Some(caller.principal.user_id),
        })
        .await?;
    state
        .db
        .audit(&caller.audit(
            "token.create",
            "api_token",
            Some(token.id.to_string()),
            serde_json::json!({"name": token.name, "owner": token.owner_name, "scopes": scopes.names()}),
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenOut {
            token: token.into(),
            secret,
        }),
    ))
}

/// The caller's own tokens, newest first (revoked ones included).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "Your tokens", body = TokenListOut),
        (status = 401, description = "Not signed in", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TokenListOut>> {
    let tokens = state.db.api_tokens_of(caller.principal.user_id).await?;
    Ok(Json(TokenListOut {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a token for the caller; the response holds its secret, once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = TokenIn,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = CreatedTokenOut),
        (status = 401, description = "Not signed in", body = ErrorOut),
        (status = 422, description = "Invalid fields (codes required, too_long, unknown_scope, scope_not_allowed, in_past)", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TokenIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatedTokenOut>)> {
    let Json(body) = body.map_err(ApiError::from)?;
    let owner = caller.principal.user_id;
    let role_scopes = caller.principal.role.scopes();
    issue(&state, &caller, owner, role_scopes, body).await
}

/// Revokes a token: the caller's own, or (for an admin) one of the team's service
/// accounts'. Revoking twice is harmless.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = ErrorOut),
        (status = 404, description = "No such token of yours", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found("token");
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let token = state.db.api_token(id).await?.ok_or_else(not_found)?;
    let own = token.owner_id == caller.principal.user_id;
    let managed = token.owner_kind == UserKind::Service
        && token.owner_team == caller.team_id()
        && caller.scopes.contains(Scope::Admin);
    if !own && !managed {
        return Err(not_found());
    }
    if state.db.revoke_api_token(id).await? {
        state
            .db
            .audit(&caller.audit(
                "token.revoke",
                "api_token",
                Some(id.to_string()),
                serde_json::json!({"name": token.name, "owner": token.owner_name}),
            ))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A service account of the caller's team, for an admin.
async fn service_account(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<airlock_db::identity::Member> {
    caller.require(Scope::Admin)?;
    let not_found = || ApiError::not_found("service account");
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    state
        .db
        .member(caller.team_id(), id.into())
        .await?
        .filter(|m| m.kind == UserKind::Service)
        .ok_or_else(not_found)
}

/// A service account's tokens (admin).
#[utoipa::path(
    get,
    path = "/api/v1/service-accounts/{id}/tokens",
    tag = "team",
    params(("id" = String, Path, description = "Service account id")),
    responses(
        (status = 200, description = "Its tokens", body = TokenListOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
        (status = 404, description = "No such service account in your team", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn list_for_service_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenListOut>> {
    let account = service_account(&state, &caller, &id).await?;
    let tokens = state.db.api_tokens_of(account.id).await?;
    Ok(Json(TokenListOut {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a token for a service account (admin); the secret is shown once.
#[utoipa::path(
    post,
    path = "/api/v1/service-accounts/{id}/tokens",
    tag = "team",
    params(("id" = String, Path, description = "Service account id")),
    request_body = TokenIn,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = CreatedTokenOut),
        (status = 403, description = "Not an admin", body = ErrorOut),
        (status = 404, description = "No such service account in your team", body = ErrorOut),
        (status = 422, description = "Invalid fields", body = ErrorOut),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn create_for_service_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<TokenIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatedTokenOut>)> {
    let account = service_account(&state, &caller, &id).await?;
    let Json(body) = body.map_err(ApiError::from)?;
    issue(&state, &caller, account.id, account.role.scopes(), body).await
}
