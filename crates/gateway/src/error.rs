//! The one error type handlers return. Each variant maps to a stable code from
//! `airlock_core::ErrorCode`; 5xx causes are logged here and never sent to the client.

use airlock_core::ErrorCode;
use airlock_core::spec::FieldError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorOut {
    /// Stable, machine-readable.
    pub code: ErrorCode,
    /// For a person.
    pub message: String,
    /// Structured detail, e.g. `{"errors": [{"path", "code", "message"}]}` for 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<serde_json::Value>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "sign in, or send a valid token as `Authorization: Bearer <token>`",
        )
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] if one.path.is_empty() => one.message.clone(),
            [one] => format!("{}: {}", one.path, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            details: Some(serde_json::json!({ "errors": errors })),
            ..Self::new(ErrorCode::ValidationFailed, message)
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// An unexpected failure: the cause is logged, the client sees only the code.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "dependency unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "a dependency is unavailable; retry shortly",
        )
        .with_retry_after(5)
    }

    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }
}

/// A query string that does not parse is the client's mistake, said in its own words.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(ErrorCode::MalformedRequest, rejection.body_text())
    }
}

/// A JSON body that does not parse (or is not declared JSON) is the client's mistake.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        let code = match rejection {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            _ if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                ErrorCode::PayloadTooLarge
            }
            _ => ErrorCode::MalformedRequest,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<airlock_db::DbError> for ApiError {
    fn from(error: airlock_db::DbError) -> Self {
        if error.is_unavailable() {
            Self::unavailable(error)
        } else {
            Self::internal(error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorOut {
            code: self.code,
            message: self.message,
            details: self.details,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
