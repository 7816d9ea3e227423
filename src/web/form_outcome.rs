//! What a form handler does with the service's answer: on success it
//! redirects (so a reload does not post again); on an error the person can
//! fix, it shows the page again with the message and 422, having changed
//! nothing; anything else becomes the error page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::WebError;
use crate::service::Error;

/// The message of an error the person can fix by changing what they
/// typed: bad input, or a conflict with what exists. Any other error is
/// handed back for the error page.
pub(super) fn fixable(error: Error) -> Result<String, WebError> {
    match error {
        Error::InvalidInput(message) | Error::Conflict(message) => Ok(message),
        other => Err(other.into()),
    }
}

/// [`fixable`], also counting the code host's answers as fixable where the
/// form named what it was asked about (a token, a pull request): it does
/// not know it, or did not answer.
pub(super) fn fixable_at_code_host(error: Error) -> Result<String, WebError> {
    match error {
        Error::NotFound(message) | Error::CodeHostUnavailable(message) => Ok(message),
        other => fixable(other),
    }
}

/// The page again, with the form and what to fix in it: 422, nothing
/// was changed.
pub(super) fn unprocessable(page: &impl Template) -> Result<Response, WebError> {
    Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(page)?).into_response())
}
