//! The one table of error codes: each has an HTTP status and a stable machine-readable
//! name that clients may match on. Names never change once published.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be parsed (malformed JSON or YAML, bad query string).
    MalformedRequest,
    /// No credentials, or credentials that are not valid.
    Unauthorized,
    /// Authenticated, but the role does not allow this action.
    Forbidden,
    /// A state-changing request authenticated by the session cookie lacked the matching
    /// `X-CSRF-Token` header (or came from another origin).
    CsrfFailed,
    /// The credential (an API token's scopes, or an access token's) does not cover this
    /// action, although the role might.
    InsufficientScope,
    /// No such object, or not visible to the caller.
    NotFound,
    /// The object's state does not allow the action.
    Conflict,
    /// The change would leave the team without an admin.
    LastAdmin,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The Content-Type is neither JSON nor YAML.
    UnsupportedMediaType,
    /// The body parsed but one or more fields are invalid; `details.errors` lists them.
    ValidationFailed,
    /// Too many requests; retry after the time given in `Retry-After`.
    RateLimited,
    /// A dependency (PostgreSQL, RabbitMQ) is unavailable; retry later.
    Unavailable,
    /// An unexpected failure; the cause is logged, never returned.
    Internal,
    /// Single sign-on was asked for but no identity provider is configured.
    OidcNotConfigured,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        Self::MalformedRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::CsrfFailed,
        Self::InsufficientScope,
        Self::NotFound,
        Self::Conflict,
        Self::LastAdmin,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
        Self::OidcNotConfigured,
    ];

    pub const fn http_status(self) -> u16 {
        match self {
            Self::MalformedRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::CsrfFailed | Self::InsufficientScope => 403,
            Self::NotFound => 404,
            Self::Conflict | Self::LastAdmin => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed => 422,
            Self::RateLimited => 429,
            Self::Unavailable | Self::OidcNotConfigured => 503,
            Self::Internal => 500,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::CsrfFailed => "csrf_failed",
            Self::InsufficientScope => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::LastAdmin => "last_admin",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::OidcNotConfigured => "oidc_not_configured",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_names_match_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("serializes");
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
        }
    }
}
