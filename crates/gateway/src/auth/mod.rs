//! Authentication: every API request carries `Authorization: Bearer <token>`; the token
//! is looked up by its hash. Browsers cannot set headers on a WebSocket, so a WebSocket
//! upgrade may instead offer the token as the subprotocol `bearer.<token>` beside
//! [`STREAM_PROTOCOL`], which the server selects. This is the seam OIDC login plugs into: another way of
//! producing the same [`Principal`].

use airlock_core::TeamId;
use airlock_db::Principal;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::{AppState, tokens};

/// The WebSocket subprotocol of the stream endpoints.
pub const STREAM_PROTOCOL: &str = "airlock.v1";

/// The subprotocol prefix that carries a token on a WebSocket upgrade.
const TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

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
        let token = bearer_token(parts).ok_or_else(ApiError::unauthorized)?;
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

/// The token of `Authorization: Bearer`, or else of a `bearer.<token>` WebSocket
/// subprotocol.
fn bearer_token(parts: &Parts) -> Option<&str> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let header = header.to_str().ok()?;
        return header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim);
    }
    parts
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX))
}
