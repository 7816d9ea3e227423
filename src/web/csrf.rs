//! CSRF protection for every form the pages post.
//!
//! The token is an HMAC keyed by the browser's session cookie (or, before
//! sign-in, by a random pre-session cookie): a page on another site can
//! neither read those HttpOnly cookies nor the token in our pages, so it
//! cannot forge a form. Nothing is stored server-side, so every replica
//! accepts the token, and signing out invalidates it with the session.

use axum::extract::{Form, FromRequest, Request};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WebError;
use crate::http::{AppState, CookieSettings};
use crate::service::RandomToken;

/// The name of the hidden form field.
pub(crate) const FIELD: &str = "csrf";

/// The cookie value the token is derived from: the session if there is
/// one, else the pre-session cookie.
pub(crate) fn seed(jar: &CookieJar, cookies: &CookieSettings) -> Option<String> {
    jar.get(cookies.session_name())
        .or_else(|| jar.get(cookies.csrf_name()))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The token for a seed. Without a seed there is no valid token; the
/// empty string never verifies.
pub(crate) fn token_for(seed: Option<&str>) -> String {
    let Some(seed) = seed else {
        return String::new();
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(seed.as_bytes()) else {
        return String::new();
    };
    mac.update(b"batchcred/csrf/v1");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `submitted` is the token for the request's cookies.
pub(crate) fn verify(jar: &CookieJar, cookies: &CookieSettings, submitted: &str) -> bool {
    let expected = token_for(seed(jar, cookies).as_deref());
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A pre-session cookie for a browser that has no cookie to derive a
/// token from yet; `None` if it already has one. Over HTTPS it is `Secure`
/// and `__Host-` prefixed like the session cookie.
pub(crate) fn pre_session_cookie(
    jar: &CookieJar,
    cookies: &CookieSettings,
) -> Result<Option<Cookie<'static>>, WebError> {
    if seed(jar, cookies).is_some() {
        return Ok(None);
    }
    let token = RandomToken::generate("bcf_")
        .map_err(|e| WebError::Service(crate::service::Error::from(e)))?;
    Ok(Some(
        Cookie::build((cookies.csrf_name(), token.expose().to_owned()))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(cookies.secure)
            .path("/")
            .build(),
    ))
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A urlencoded form whose CSRF token has been checked. Handlers that
/// change anything take their body only through this extractor.
pub(crate) struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(request.headers());
        let Form(envelope) = Form::<Envelope<T>>::from_request(request, state)
            .await
            .map_err(|rejection| WebError::BadRequest(rejection.body_text()))?;
        if !verify(&jar, &state.cookies, &envelope.csrf) {
            return Err(WebError::Csrf);
        }
        Ok(Self(envelope.form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secure: bool) -> CookieSettings {
        CookieSettings {
            secure,
            max_age: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn tokens_depend_on_the_seed_and_need_one() {
        let cookies = settings(false);
        let a = token_for(Some("bcs_a"));
        assert_eq!(a, token_for(Some("bcs_a")));
        assert_ne!(a, token_for(Some("bcs_b")));
        assert_eq!(token_for(None), "");
        let jar = CookieJar::new().add(Cookie::new(cookies.session_name(), "bcs_a"));
        assert!(verify(&jar, &cookies, &a));
        assert!(!verify(&jar, &cookies, "wrong"));
        assert!(!verify(&CookieJar::new(), &cookies, ""));
        // Over HTTPS only the prefixed cookie counts.
        assert!(!verify(&jar, &settings(true), &a));
    }

    #[test]
    fn over_https_the_pre_session_cookie_is_a_secure_host_cookie() -> Result<(), String> {
        let cookie = pre_session_cookie(&CookieJar::new(), &settings(true))
            .map_err(|e| format!("{e:?}"))?
            .ok_or("no cookie")?
            .to_string();
        assert!(cookie.starts_with("__Host-batchcred_csrf="), "{cookie}");
        assert!(
            cookie.contains("Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        let plain = pre_session_cookie(&CookieJar::new(), &settings(false))
            .map_err(|e| format!("{e:?}"))?
            .ok_or("no cookie")?
            .to_string();
        assert!(plain.starts_with("batchcred_csrf=") && !plain.contains("Secure"));
        Ok(())
    }
}
