//! How page requests fail: every service error is mapped explicitly to a
//! page or a redirect.

use std::time::Duration;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::service::{Error, retry_after_secs};

/// An error answered with a page.
#[derive(Debug)]
pub enum WebError {
    Service(Error),
    /// The form's CSRF token is missing or wrong.
    Csrf,
    BadRequest(String),
    Template(askama::Error),
}

impl From<Error> for WebError {
    fn from(error: Error) -> Self {
        Self::Service(error)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = ErrorPage { title, message }
        .render()
        .unwrap_or_else(|_| title.to_owned());
    (status, Html(html)).into_response()
}

/// Adds `Retry-After`, in whole seconds, to a 429 or 503 answer.
pub(crate) fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    response
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing here, or you may not see it.",
    )
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            // Every variant is listed so a new one forces a decision here.
            Self::Service(error) => match error {
                Error::Unauthenticated(_) => Redirect::to("/sign-in").into_response(),
                // Site admin pages do not exist for other users.
                Error::Forbidden(_) | Error::NotFound(_) => not_found(),
                Error::InvalidInput(message) => {
                    page(StatusCode::BAD_REQUEST, "Invalid request", &message)
                }
                Error::Conflict(message) => page(StatusCode::CONFLICT, "Conflict", &message),
                Error::CodeHostUnavailable(message) => {
                    page(StatusCode::BAD_GATEWAY, "Code host unavailable", &message)
                }
                Error::PublishFailed(message) => page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Publishing failed",
                    &message,
                ),
                Error::SealMismatch => page(
                    StatusCode::CONFLICT,
                    "Credential needs attention",
                    &Error::SealMismatch.to_string(),
                ),
                Error::Throttled {
                    message,
                    retry_after,
                } => with_retry_after(
                    page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", &message),
                    retry_after,
                ),
                Error::Overloaded {
                    message,
                    retry_after,
                } => with_retry_after(
                    page(StatusCode::SERVICE_UNAVAILABLE, "Busy", &message),
                    retry_after,
                ),
                Error::Internal(detail) => {
                    tracing::error!(error = %detail, "internal error on a page");
                    page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "The error has been logged. Try again later.",
                    )
                }
            },
            Self::Csrf => page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this site or has expired. Go back, reload the page and try again.",
            ),
            Self::BadRequest(message) => page(StatusCode::BAD_REQUEST, "Invalid request", &message),
            Self::Template(error) => {
                tracing::error!(%error, "rendering a page failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The error has been logged. Try again later.",
                )
            }
        }
    }
}
