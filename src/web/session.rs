//! Who is looking at a page, from the session cookie alone (browsers send
//! no API tokens), and the session cookie itself.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::{WebError, csrf};
use crate::auth::Caller;
use crate::http::{AppState, CookieSettings, SESSION_COOKIE};
use crate::service::{Error, SessionToken};
use crate::store::UserRecord;

/// The caller of a page request. An unknown or expired session is simply
/// anonymous here: pages then ask to sign in rather than fail.
pub(crate) struct WebCaller {
    pub caller: Caller,
    csrf_seed: Option<String>,
}

impl WebCaller {
    /// The CSRF token for forms on this page.
    pub(crate) fn csrf_token(&self) -> String {
        csrf::token_for(self.csrf_seed.as_deref())
    }

    /// The signed-in user, or the error that sends them to sign in.
    pub(crate) fn user(&self) -> Result<&UserRecord, WebError> {
        self.caller
            .user()
            .ok_or_else(|| WebError::Service(Error::Unauthenticated("sign in first".into())))
    }
}

impl FromRequestParts<AppState> for WebCaller {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let csrf_seed = csrf::seed(&jar);
        let caller = match jar.get(SESSION_COOKIE) {
            None => Caller::Anonymous,
            Some(cookie) => match state.service.caller_for_session(cookie.value()).await {
                Ok(caller) => caller,
                Err(Error::Unauthenticated(_)) => Caller::Anonymous,
                Err(other) => return Err(WebError::Service(other)),
            },
        };
        Ok(Self { caller, csrf_seed })
    }
}

/// The session cookie, with the same attributes as the JSON sign-in
/// endpoint sets (`HttpOnly`, `SameSite=Lax`, `Secure` over HTTPS).
pub(crate) fn session_cookie(token: &SessionToken, settings: &CookieSettings) -> Cookie<'static> {
    let max_age =
        time::Duration::seconds(i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX));
    Cookie::build((SESSION_COOKIE, token.0.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.secure)
        .path("/")
        .max_age(max_age)
        .build()
}

/// Clears the session cookie.
pub(crate) fn removal_cookie() -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, "")).path("/").build()
}
