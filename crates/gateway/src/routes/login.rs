//! Signing in and out in a browser: the OpenID Connect authorization code flow (with
//! PKCE, state bound to the browser by a cookie, and nonce), the optional development
//! login, logout, and what sign-in methods exist.

use airlock_core::{ErrorCode, Role};
use airlock_db::Principal;
use airlock_db::audit::AuditRecord;
use airlock_db::sessions::LoginRequest;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use crate::AppState;
use crate::auth::oidc::random_secret;
use crate::auth::session::{
    LOGIN_COOKIE, LOGIN_MAX_AGE_SECS, read_cookie, same_secret, session_cookie_name, set_cookie,
};
use crate::auth::{self, claims};
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::tokens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/dev-login", post(dev_login))
        .route("/api/v1/auth/config", get(config))
}

/// Which ways of signing in this gateway offers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthConfigOut {
    /// Single sign-on through the configured OpenID Connect provider (`/auth/login`).
    pub oidc: bool,
    /// The development login (`POST /auth/dev-login`).
    pub dev_login: bool,
}

/// Sign-in methods (no authentication needed).
#[utoipa::path(
    get,
    path = "/api/v1/auth/config",
    tag = "identity",
    responses((status = 200, description = "Sign-in methods", body = AuthConfigOut))
)]
pub async fn config(State(state): State<AppState>) -> Json<AuthConfigOut> {
    Json(AuthConfigOut {
        oidc: state.oidc.is_some(),
        dev_login: state.config.identity.dev_login,
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// Only a path on this site: `/x`, never `//host` or `/\host` or a scheme.
fn safe_return_to(requested: Option<&str>) -> String {
    match requested {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control)
                && path.len() <= 2000 =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// An empty response with `status` that sets `cookies`.
fn with_cookies(status: StatusCode, cookies: &[String]) -> Response {
    let mut response = status.into_response();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = with_cookies(StatusCode::FOUND, cookies);
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// Starts single sign-on: remembers the request and sends the browser to the provider.
pub async fn login(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> ApiResult<Response> {
    let Some(oidc) = state.oidc.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::OidcNotConfigured,
            "single sign-on is not configured on this gateway",
        ));
    };
    let request = oidc
        .authorization_request(&state.redirect_uri)
        .await
        .map_err(ApiError::unavailable)?;
    state
        .db
        .insert_login_request(
            &tokens::hash(&request.state),
            &LoginRequest {
                nonce: request.nonce,
                pkce_verifier: request.pkce_verifier,
                return_to: safe_return_to(query.return_to.as_deref()),
            },
        )
        .await?;
    let secure = state.config.identity.cookie_secure;
    let binding = set_cookie(
        LOGIN_COOKIE,
        &request.state,
        "/auth",
        LOGIN_MAX_AGE_SECS,
        secure,
    );
    Ok(redirect(&request.url, &[binding]))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider's answer: checks it, finds or creates the user, starts a fresh session
/// (any session the browser already had is ended — no fixation) and returns to the page
/// the user wanted. Failures go back to the sign-in page with a reason code.
pub async fn callback(
    State(state): State<AppState>,
    Query(query): Query<CallbackQuery>,
    parts: Parts,
) -> Response {
    let address = auth::source_address(&parts, state.config.identity.trust_forwarded_for);
    let secure = state.config.identity.cookie_secure;
    let clear_binding = set_cookie(LOGIN_COOKIE, "", "/auth", 0, secure);
    let fail = |code: &'static str| {
        redirect(
            &format!("/sign-in?error={code}"),
            std::slice::from_ref(&clear_binding),
        )
    };
    match finish_login(&state, &query, &parts.headers).await {
        Ok((principal, return_to)) => {
            match start_session(&state, &parts.headers, &principal, address, "oidc").await {
                Ok(cookie) => redirect(&return_to, &[cookie, clear_binding.clone()]),
                Err(error) => {
                    tracing::error!(?error, "could not start a session");
                    fail("login_failed")
                }
            }
        }
        Err((code, reason)) => {
            drop(auth::refuse(&state, address, "oidc", &reason).await);
            fail(code)
        }
    }
}

type LoginFailure = (&'static str, String);

async fn finish_login(
    state: &AppState,
    query: &CallbackQuery,
    headers: &HeaderMap,
) -> Result<(Principal, String), LoginFailure> {
    let oidc = state.oidc.as_ref().ok_or((
        "login_failed",
        "single sign-on is not configured".to_owned(),
    ))?;
    if let Some(error) = &query.error {
        let error: String = error.chars().take(100).collect();
        return Err(("access_denied", format!("provider answered {error}")));
    }
    let (Some(code), Some(login_state)) = (&query.code, &query.state) else {
        return Err(("login_failed", "callback without code or state".into()));
    };
    // The state must be the one this browser was given (login CSRF).
    let bound = read_cookie(headers, LOGIN_COOKIE).unwrap_or("");
    if !same_secret(bound, login_state) {
        return Err((
            "login_failed",
            "state does not match this browser's login".into(),
        ));
    }
    let request = state
        .db
        .take_login_request(&tokens::hash(login_state), LOGIN_MAX_AGE_SECS)
        .await
        .map_err(|e| ("login_failed", format!("database: {e}")))?
        .ok_or((
            "login_expired",
            "unknown, used or expired login state".into(),
        ))?;
    let claims = oidc
        .redeem(
            code,
            &state.redirect_uri,
            &request.pkce_verifier,
            &request.nonce,
        )
        .await
        .map_err(|e| ("login_failed", e.to_string()))?;
    let claimed = claims::read(&claims, &state.config.identity)
        .ok_or(("login_failed", "ID token without subject".into()))?;
    let principal = state
        .db
        .provider_user(&claimed.identity(&oidc.issuer, &state.config.identity, true))
        .await
        .map_err(|e| ("login_failed", format!("database: {e}")))?;
    Ok((principal, request.return_to))
}

/// Creates a session with a new random id and CSRF token, ends the one the browser
/// presented (if any), records the login; returns the `Set-Cookie` value.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
    address: Option<IpAddr>,
    method: &str,
) -> ApiResult<String> {
    let identity = &state.config.identity;
    let cookie_name = session_cookie_name(identity.cookie_secure);
    if let Some(old) = read_cookie(headers, cookie_name) {
        state.db.delete_session(&tokens::hash(old)).await?;
    }
    let id = random_secret();
    let max = identity.session_max_secs as i64;
    let source = address.map(|a| a.to_string());
    state
        .db
        .create_session(
            &tokens::hash(&id),
            principal.user_id,
            &random_secret(),
            Utc::now() + chrono::Duration::seconds(max),
            source.as_deref(),
        )
        .await?;
    state
        .db
        .audit(&AuditRecord::by(
            principal,
            source,
            "login",
            "session",
            None,
            serde_json::json!({"method": method}),
        ))
        .await?;
    tracing::info!(user = %principal.user_name, method, "signed in");
    Ok(set_cookie(
        cookie_name,
        &id,
        "/",
        max,
        identity.cookie_secure,
    ))
}

/// Ends the browser's session and clears its cookie.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "identity",
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, description = "Missing X-CSRF-Token", body = ErrorOut),
    )
)]
pub async fn logout(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let mut parts = parts;
    let secure = state.config.identity.cookie_secure;
    let cookie_name = session_cookie_name(secure);
    if let Some(cookie) = read_cookie(&parts.headers, cookie_name).map(str::to_owned) {
        // Authenticates (and checks CSRF) when the session is still alive; an ended
        // session just has its cookie cleared.
        match <auth::Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await
        {
            Ok(caller) => {
                state
                    .db
                    .audit(&caller.audit("logout", "session", None, serde_json::json!({})))
                    .await?;
            }
            Err(error) if error.code() != ErrorCode::Unauthorized => return Err(error),
            Err(_) => {}
        }
        state.db.delete_session(&tokens::hash(&cookie)).await?;
    }
    Ok(with_cookies(
        StatusCode::NO_CONTENT,
        &[set_cookie(cookie_name, "", "/", 0, secure)],
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DevLoginIn {
    pub user: String,
    pub team: String,
    pub role: Role,
}

/// Development only: signs in as whoever is named. 404 unless enabled.
pub async fn dev_login(
    State(state): State<AppState>,
    parts: Parts,
    body: Result<Json<DevLoginIn>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    if !state.config.identity.dev_login {
        return Err(ApiError::not_found("API route"));
    }
    let Json(body) = body.map_err(ApiError::from)?;
    let user = body.user.trim();
    let team = body.team.trim();
    if user.is_empty() || team.is_empty() || user.len() > 100 || team.len() > 100 {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "user and team must be 1 to 100 characters",
        ));
    }
    let principal = state.db.upsert_user(user, team, body.role).await?;
    let address = auth::source_address(&parts, state.config.identity.trust_forwarded_for);
    let cookie = start_session(&state, &parts.headers, &principal, address, "dev_login").await?;
    Ok(with_cookies(StatusCode::NO_CONTENT, &[cookie]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(safe_return_to(Some("/evaluations?x=1")), "/evaluations?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
