//! Who is looking at a page, from the session cookie alone (browsers send
//! no API tokens).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::{WebError, csrf};
use crate::domain::UserAccount;
use crate::http::AppState;
use crate::service::Caller;
use crate::service::{CredentialNotice, Error};

/// The caller of a page request. An unknown or expired session is simply
/// anonymous here: pages then ask to sign in rather than fail.
pub(crate) struct WebCaller {
    pub caller: Caller,
    csrf_seed: Option<String>,
    /// The caller's credentials needing attention, for the notice on every
    /// page; read for page views (GET) only, as forms answer a redirect.
    pub notices: Vec<CredentialNotice>,
}

impl WebCaller {
    /// The session (or pre-session) cookie's value, binding a flow that
    /// leaves the site (the GitHub App manifest) to this browser.
    pub(crate) fn session_seed(&self) -> &str {
        self.csrf_seed.as_deref().unwrap_or_default()
    }

    /// The CSRF token for forms on this page.
    pub(crate) fn csrf_token(&self) -> String {
        csrf::token_for(self.csrf_seed.as_deref())
    }

    /// The signed-in user, or the error that sends them to sign in.
    pub(crate) fn user(&self) -> Result<&UserAccount, WebError> {
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
        let csrf_seed = csrf::seed(&jar, &state.cookies);
        let caller = match jar.get(state.cookies.session_name()) {
            None => Caller::Anonymous,
            Some(cookie) => match state.service.caller_for_session(cookie.value()).await {
                Ok(caller) => caller,
                Err(Error::Unauthenticated(_)) => Caller::Anonymous,
                Err(other) => return Err(WebError::Service(other)),
            },
        };
        let notices = if parts.method == axum::http::Method::GET {
            // The notice is a courtesy: a failure to read it never fails
            // the page.
            match state.service.credential_notices(&caller).await {
                Ok(notices) => notices,
                Err(error) => {
                    tracing::warn!(%error, "reading credential notices failed");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        Ok(Self {
            caller,
            csrf_seed,
            notices,
        })
    }
}
