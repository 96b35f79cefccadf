//! Authentication and authorization. A request is authenticated by exactly one of:
//! - `Authorization: Bearer` with an Airlock API token (`alk_…`, looked up by hash),
//! - `Authorization: Bearer` with a JWT access token from the configured OpenID provider,
//! - the browser session cookie set at login (state-changing requests must then carry
//!   the session's CSRF token in `X-CSRF-Token`, and a request announcing an `Origin`
//!   must come from the gateway's own origin — which also guards WebSocket upgrades).
//!
//! Browsers cannot set headers on a WebSocket, so an upgrade may also offer a token as the
//! subprotocol `bearer.<token>` beside [`STREAM_PROTOCOL`].
//!
//! What a request may do is its role's scopes intersected with its credential's scopes;
//! [`Caller::require`] checks one. Failed credentials are counted per source address
//! (429 past the limit) and recorded in the audit log.

pub mod claims;
mod http;
pub mod jwt;
pub mod oidc;
pub mod session;

use airlock_core::{ErrorCode, Scope, Scopes, TeamId};
use airlock_db::Principal;
use airlock_db::audit::AuditRecord;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::error::ApiError;
use crate::{AppState, tokens};

/// The WebSocket subprotocol of the stream endpoints.
pub const STREAM_PROTOCOL: &str = "airlock.v1";

/// The subprotocol prefix that carries a token on a WebSocket upgrade.
const TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a JWT's user is remembered before it is looked up again.
const JWT_USER_TTL: Duration = Duration::from_secs(60);

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session { csrf_token: String },
    ApiToken { id: Uuid },
    Jwt,
}

impl Via {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Session { .. } => "session",
            Self::ApiToken { .. } => "api_token",
            Self::Jwt => "jwt",
        }
    }
}

/// The authenticated caller of a request.
pub struct Caller {
    pub principal: Principal,
    /// What this request may do: the role's scopes ∩ the credential's.
    pub scopes: Scopes,
    pub via: Via,
    /// The client's address, for the audit log.
    pub source: Option<String>,
    /// When the credential itself expires (API tokens), if it does.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Caller {
    pub fn team_id(&self) -> TeamId {
        self.principal.team_id
    }

    /// Fails with 403 unless the request may do `scope`: `forbidden` when the role does
    /// not allow it, `insufficient_scope` when only the credential does not.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else if !self.principal.role.scopes().contains(scope) {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("your role ({}) does not allow {scope}", self.principal.role),
            ))
        } else {
            Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("this credential lacks the scope {scope}"),
            ))
        }
    }

    /// An audit record of something this caller did.
    pub fn audit(
        &self,
        action: &'static str,
        object_type: &'static str,
        object_id: Option<String>,
        detail: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord::by(
            &self.principal,
            self.source.clone(),
            action,
            object_type,
            object_id,
            detail,
        )
    }
}

/// The client's address: the peer, or (when trusted) the last `X-Forwarded-For` entry —
/// the one the proxy in front of us added; earlier entries are the client's own claims.
pub fn source_address(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(last) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(last);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let address = source_address(parts, state.config.identity.trust_forwarded_for);
        let source = address.map(|a| a.to_string());
        let caller = if let Some(token) = bearer_token(parts) {
            match bearer(state, token, source.clone()).await? {
                Ok(caller) => caller,
                Err((method, reason)) => {
                    return Err(refuse(state, address, method, &reason).await);
                }
            }
        } else if let Some(cookie) = session::read_cookie(
            &parts.headers,
            session::session_cookie_name(state.config.identity.cookie_secure),
        ) {
            let idle = state.config.identity.session_idle_secs as i64;
            let Some(found) = state.db.session(&tokens::hash(cookie), idle).await? else {
                return Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "your session has ended; sign in again",
                ));
            };
            check_same_origin(state, &parts.headers)?;
            if is_unsafe(&parts.method) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !session::same_secret(sent, &found.csrf_token) {
                    return Err(ApiError::new(
                        ErrorCode::CsrfFailed,
                        "missing or wrong X-CSRF-Token header for a cookie-authenticated request",
                    ));
                }
            }
            Caller {
                scopes: found.principal.role.scopes(),
                principal: found.principal,
                via: Via::Session {
                    csrf_token: found.csrf_token,
                },
                source,
                expires_at: None,
            }
        } else {
            return Err(ApiError::unauthorized());
        };
        state.limiter.check(caller.principal.user_id)?;
        Ok(caller)
    }
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated request that names its origin must name ours.
fn check_same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ours = match &state.config.identity.public_url {
        Some(url) => url.trim_end_matches('/') == origin,
        None => {
            let host = headers.get(HOST).and_then(|v| v.to_str().ok());
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            host.is_some() && host == origin_host
        }
    };
    if ours {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::CsrfFailed,
            format!("requests from {origin} may not use this session"),
        ))
    }
}

type Refusal = (&'static str, String);

/// Authenticates a bearer credential. The inner error is a refused credential (method,
/// reason); the outer one a failure of ours (e.g. the database is down).
async fn bearer(
    state: &AppState,
    token: &str,
    source: Option<String>,
) -> Result<Result<Caller, Refusal>, ApiError> {
    if tokens::looks_like_token(token) {
        let Some(grant) = state.db.principal_for_token(&tokens::hash(token)).await? else {
            return Ok(Err((
                "api_token",
                "unknown, revoked or expired API token".into(),
            )));
        };
        return Ok(Ok(Caller {
            scopes: grant.principal.role.scopes().intersect(grant.scopes),
            principal: grant.principal,
            via: Via::ApiToken { id: grant.token_id },
            source,
            expires_at: grant.expires_at,
        }));
    }
    let Some(oidc) = state.oidc.as_ref() else {
        return Ok(Err(("bearer", "not an Airlock API token".into())));
    };
    let claims = match oidc.verify_access_token(token).await {
        Ok(claims) => claims,
        Err(oidc::OidcError::Provider(error)) => {
            return Err(ApiError::unavailable(format!("identity provider: {error}")));
        }
        Err(error) => return Ok(Err(("jwt", error.to_string()))),
    };
    let Some(claimed) = claims::read(&claims, &state.config.identity) else {
        return Ok(Err(("jwt", "access token has no subject".into())));
    };
    let principal = jwt_user(state, &oidc.issuer, &claimed).await?;
    Ok(Ok(Caller {
        scopes: principal
            .role
            .scopes()
            .intersect(claims::access_token_scopes(&claims)),
        principal,
        via: Via::Jwt,
        source,
        expires_at: None,
    }))
}

/// The user an access token names, created at first sight, remembered briefly so that
/// not every API call writes.
async fn jwt_user(
    state: &AppState,
    issuer: &str,
    claimed: &claims::Claimed,
) -> Result<Principal, ApiError> {
    if let Ok(cache) = state.jwt_users.lock()
        && let Some((principal, at)) = cache.get(&claimed.subject)
        && at.elapsed() < JWT_USER_TTL
    {
        return Ok(principal.clone());
    }
    let principal = state
        .db
        .provider_user(&claimed.identity(issuer, &state.config.identity, false))
        .await?;
    if let Ok(mut cache) = state.jwt_users.lock() {
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(claimed.subject.clone(), (principal.clone(), Instant::now()));
    }
    Ok(principal)
}

/// Counts and records a refused credential; past the per-address limit, answers 429
/// (and stops recording, so a flood cannot fill the audit log).
pub async fn refuse(
    state: &AppState,
    address: Option<IpAddr>,
    method: &'static str,
    reason: &str,
) -> ApiError {
    crate::metrics::auth_failure(method);
    if let Some(address) = address
        && let Err(limited) = state.failures.check(address)
    {
        return limited;
    }
    tracing::info!(method, reason, source = ?address, "credential refused");
    let record = AuditRecord {
        team_id: None,
        actor_id: None,
        actor_name: None,
        action: "login_failed",
        object_type: "session",
        object_id: None,
        source_address: address.map(|a| a.to_string()),
        success: false,
        detail: serde_json::json!({"method": method, "reason": reason}),
    };
    if let Err(error) = state.db.audit(&record).await {
        tracing::warn!(%error, "could not record a failed login");
    }
    ApiError::unauthorized()
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
    let upgrade = parts.headers.get(axum::http::header::UPGRADE)?;
    if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    parts
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX))
}
