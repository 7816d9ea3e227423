//! Errors of the non-GraphQL endpoints, as JSON `{"error": "…"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::service::Error;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
            Error::SealMismatch => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Error::SealMismatch.to_string(),
            ),
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
        (self.status, Json(body)).into_response()
    }
}
