//! Authentication: every API request carries `Authorization: Bearer <token>`; the token
//! is looked up by its hash. This is the seam OIDC login plugs into: another way of
//! producing the same [`Principal`].

use airlock_core::TeamId;
use airlock_db::Principal;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::{AppState, tokens};

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl Caller {
    pub fn team_id(&self) -> TeamId {
        self.0.team_id
    }

    /// Fails with 403 unless the caller's role may submit and cancel.
    pub fn require_write(&self, action: &str) -> Result<(), ApiError> {
        if self.0.role.can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden(action))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if !tokens::looks_like_token(token) {
            return Err(ApiError::unauthorized());
        }
        match state.db.principal_for_token(&tokens::hash(token)).await? {
            Some(principal) => {
                state.limiter.check(principal.user_id)?;
                Ok(Caller(principal))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}
