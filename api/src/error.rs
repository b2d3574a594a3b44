//! The one place HTTP errors are rendered: `{"success": false, "error": CODE, "message": ...}`.
//! Codes are part of the contract; a 5xx never carries internal detail (it is logged instead).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::Serialize;
use shared::db::DbFailure;
use utoipa::ToSchema;

/// Every error: `success` is false, `error` a stable code, `message` for humans; `field` names
/// the offending input of a 400 when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A stable code such as `VALIDATION_ERROR` or `MAILBOX_NOT_FOUND`.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", example = "VALIDATION_ERROR")]
    pub error: &'static str,
    pub message: String,
    /// The offending input (`to[1]`, `limit`...), on a 400 that has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// On `SEND_FAILED`: the stored message the mail server refused (its status is `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message_id: Option<uuid::Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Missing X-MAILAPI-TOKEN header")]
    NoApiToken,
    #[error("Token not found or invalid")]
    InvalidToken,
    #[error("Token has expired or is inactive")]
    TokenExpired,
    #[error("{0}")]
    AccessDenied(&'static str),
    #[error("{0}")]
    DomainNotAllowed(String),
    #[error("{0}")]
    SenderNotAuthorized(String),
    #[error("Mailbox not found")]
    MailboxNotFound,
    #[error("Message not found")]
    MessageNotFound,
    /// A folder that does not exist in the mailbox, or a folder name that cannot be one.
    #[error("{0}")]
    InvalidFolder(String),
    #[error("{0}")]
    NotFound(String),
    /// A 400 with a specific code, naming the offending field.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Request body is too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("Expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("Rate limit exceeded: {limit} requests per {window}")]
    RateLimited {
        retry_after_secs: u64,
        limit: u32,
        window: &'static str,
    },
    #[error("A required service is unavailable; retry later")]
    Unavailable(#[source] anyhow::Error),
    /// Load shedding (`crate::overload`): refused before any work, nothing stored.
    #[error("The server is overloaded ({reason}); retry in {retry_after_secs} s")]
    Overloaded {
        reason: &'static str,
        retry_after_secs: u64,
    },
    /// The request body did not arrive within `MAILAPI_BODY_TIMEOUT_SECS`.
    #[error("The request body did not arrive in time")]
    RequestTimeout,
    /// The MTA refused the message for good at submission; only answered to a request that
    /// waited for the submission (`Prefer: wait`). The reply is the client's business, not an
    /// internal detail: it says why.
    #[error("Failed to send email: the mail server refused it: {reply}")]
    SendFailed {
        message_id: uuid::Uuid,
        reply: String,
    },
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
    /// The mailbox server failed, timed out or could not be reached.
    #[error("IMAP connection error")]
    ImapError(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(
        code: &'static str,
        field: impl Into<Option<String>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Invalid {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        ApiError::Invalid {
            code: "VALIDATION_ERROR",
            field: Some(field),
            message,
        }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            NoApiToken | InvalidToken | TokenExpired => StatusCode::UNAUTHORIZED,
            AccessDenied(_) | DomainNotAllowed(_) | SenderNotAuthorized(_) => StatusCode::FORBIDDEN,
            MailboxNotFound | MessageNotFound | NotFound(_) => StatusCode::NOT_FOUND,
            Invalid { .. } | InvalidFolder(_) => StatusCode::BAD_REQUEST,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Conflict { .. } => StatusCode::CONFLICT,
            Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable(_) | Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            SendFailed { .. } | Internal(_) | ImapError(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            NoApiToken => "NO_API_TOKEN",
            InvalidToken => "INVALID_TOKEN",
            TokenExpired => "TOKEN_EXPIRED",
            AccessDenied(_) => "ACCESS_DENIED",
            DomainNotAllowed(_) => "DOMAIN_NOT_ALLOWED",
            SenderNotAuthorized(_) => "SENDER_NOT_AUTHORIZED",
            MailboxNotFound => "MAILBOX_NOT_FOUND",
            MessageNotFound => "MESSAGE_NOT_FOUND",
            InvalidFolder(_) => "INVALID_FOLDER",
            NotFound(_) => "NOT_FOUND",
            Invalid { code, .. } | Conflict { code, .. } | Unprocessable { code, .. } => code,
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            RateLimited { .. } => "RATE_LIMITED",
            Unavailable(_) => "SERVICE_UNAVAILABLE",
            Overloaded { .. } => "OVERLOADED",
            RequestTimeout => "REQUEST_TIMEOUT",
            SendFailed { .. } => "SEND_FAILED",
            Internal(_) => "INTERNAL_ERROR",
            ImapError(_) => "IMAP_ERROR",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match shared::db::classify(&e) {
            // The database cannot be reached: the client should retry, and nothing was accepted.
            DbFailure::Unreachable => ApiError::Unavailable(e.into()),
            DbFailure::Conflict | DbFailure::Refused | DbFailure::Other => {
                ApiError::Internal(e.into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Shedding is counted by a metric instead: a log line per refused request would add
        // work exactly when there is too much.
        if status.is_server_error() && !matches!(self, ApiError::Overloaded { .. }) {
            // Logged once, here, with the whole cause chain; the client sees only the code.
            let cause = match &self {
                ApiError::Unavailable(e) | ApiError::Internal(e) | ApiError::ImapError(e) => {
                    format!("{e:#}")
                }
                _ => String::new(),
            };
            tracing::error!(code = self.code(), %status, cause, "request failed");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let message_id = match &self {
            ApiError::SendFailed { message_id, .. } => Some(*message_id),
            _ => None,
        };
        let body = ErrorBody {
            success: false,
            error: self.code(),
            message: self.to_string(),
            field,
            message_id,
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // Postgres (or what the request needed) is away: a restart or failover takes
            // seconds; clients that honour the header come back then rather than at once.
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still be on its way; do not read it as the next request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `Retry-After` of a 503 `SERVICE_UNAVAILABLE`.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

pub type ApiResult<T> = Result<T, ApiError>;
