//! Errors of the non-GraphQL endpoints, as JSON `{"error": "…"}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::service::{Error, retry_after_secs};

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After` (429 and 503 answers).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retrying_after(status: StatusCode, message: String, wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(status, message)
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        // Every variant is listed so a new one forces a decision here.
        match error {
            Error::Unauthenticated(message) => Self::new(StatusCode::UNAUTHORIZED, message),
            Error::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, message),
            Error::NotFound(message) => Self::new(StatusCode::NOT_FOUND, message),
            Error::InvalidInput(message) => Self::new(StatusCode::BAD_REQUEST, message),
            Error::Conflict(message) => Self::new(StatusCode::CONFLICT, message),
            Error::CodeHostUnavailable(message) => Self::new(StatusCode::BAD_GATEWAY, message),
            Error::PublishFailed(message) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, message),
            Error::SealMismatch => Self::new(StatusCode::CONFLICT, Error::SealMismatch.to_string()),
            Error::Throttled {
                message,
                retry_after,
            } => Self::retrying_after(StatusCode::TOO_MANY_REQUESTS, message, retry_after),
            Error::Overloaded {
                message,
                retry_after,
            } => Self::retrying_after(StatusCode::SERVICE_UNAVAILABLE, message, retry_after),
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}
