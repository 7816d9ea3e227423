//! Working out who a request comes from: an API access token in the
//! `Authorization` header, or a session cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum_extra::extract::CookieJar;

use super::{ApiError, AppState};
use secrecy::SecretString;

use crate::auth::Caller;

/// How the caller proved who they are; cookie callers need CSRF checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    AccessToken,
    SessionCookie,
}

/// The caller of a request. A bad token or an expired session is an
/// error (401), not a silent fall-back to anonymous, so clients learn
/// they must sign in again.
pub struct RequestCaller {
    pub caller: Caller,
    pub method: AuthMethod,
    /// The session cookie, when that is how the caller signed in: a
    /// password change keeps this session and ends the others.
    pub session: Option<SecretString>,
}

/// Accepts `token <value>` (Sourcegraph's form) and `Bearer <value>`.
fn access_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the Authorization header must be `token <access token>`",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(malformed());
    }
    Ok(Some(token.trim()))
}

impl FromRequestParts<AppState> for RequestCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = access_token(parts)? {
            let caller = state.service.caller_for_access_token(token).await?;
            return Ok(Self {
                caller,
                method: AuthMethod::AccessToken,
                session: None,
            });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if let Some(cookie) = jar.get(state.cookies.session_name()) {
            let caller = state.service.caller_for_session(cookie.value()).await?;
            return Ok(Self {
                caller,
                method: AuthMethod::SessionCookie,
                session: Some(SecretString::from(cookie.value())),
            });
        }
        Ok(Self {
            caller: Caller::Anonymous,
            method: AuthMethod::None,
            session: None,
        })
    }
}
