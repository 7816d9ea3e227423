//! Signing in and out, and creating the first account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client_address::ClientAddress;
use super::{ApiError, AppState, CookieSettings};
use crate::domain::UserAccount;
use crate::service::SessionToken;

/// Body of `POST /-/sign-in` and `POST /-/site-init`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    username: String,
    password: SecretString,
}

/// The session cookie, for the JSON endpoints and the web pages alike:
/// `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`; over HTTPS `Secure`
/// and named `__Host-…`.
pub(crate) fn session_cookie(token: &SessionToken, settings: &CookieSettings) -> Cookie<'static> {
    let max_age =
        time::Duration::seconds(i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX));
    Cookie::build((settings.session_name(), token.0.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.secure)
        .path("/")
        .max_age(max_age)
        .build()
}

/// Clears the session cookie (a `__Host-` cookie is only replaced by one
/// that is `Secure` with `Path=/` too).
pub(crate) fn removal_cookie(settings: &CookieSettings) -> Cookie<'static> {
    Cookie::build((settings.session_name(), ""))
        .secure(settings.secure)
        .path("/")
        .build()
}

fn user_json(user: &UserAccount) -> Value {
    json!({ "username": user.username, "siteAdmin": user.site_admin })
}

/// Checks username and password; sets the session cookie. Throttled per
/// account and per client address (429 with `Retry-After`); 503 when the
/// server-wide bound on password checks is reached.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<(CookieJar, Json<Value>), ApiError> {
    let (token, user) = state
        .service
        .sign_in(&body.username, body.password, client)
        .await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((jar, Json(user_json(&user))))
}

/// Ends the session and clears the cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(cookie) = jar.get(state.cookies.session_name()) {
        state.service.sign_out(cookie.value()).await?;
    }
    Ok((
        jar.remove(removal_cookie(&state.cookies)),
        StatusCode::NO_CONTENT,
    ))
}

/// Creates the site admin on an empty instance and signs them in.
pub(super) async fn site_init(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, CookieJar, Json<Value>), ApiError> {
    let password = SecretString::from(secrecy::ExposeSecret::expose_secret(&body.password));
    let user = state
        .service
        .initialize_site(&body.username, body.password)
        .await?;
    let (token, _) = state
        .service
        .sign_in(&user.username, password, client)
        .await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((StatusCode::CREATED, jar, Json(user_json(&user))))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crypto::RandomToken;

    fn settings(secure: bool) -> CookieSettings {
        CookieSettings {
            secure,
            max_age: Duration::from_secs(60),
        }
    }

    #[test]
    fn over_https_session_cookies_are_secure_host_cookies() -> Result<(), crate::crypto::Error> {
        let token = SessionToken(RandomToken::generate("bcs_")?);
        let https = session_cookie(&token, &settings(true)).to_string();
        assert!(https.starts_with("__Host-batchcred_session="), "{https}");
        for part in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
            assert!(https.contains(part), "{part} missing: {https}");
        }
        assert!(!https.contains("Domain"), "{https}");
        let removal = removal_cookie(&settings(true)).to_string();
        assert!(
            removal.starts_with("__Host-batchcred_session="),
            "{removal}"
        );
        assert!(removal.contains("Secure") && removal.contains("Path=/"));

        let http = session_cookie(&token, &settings(false)).to_string();
        assert!(http.starts_with("batchcred_session="), "{http}");
        assert!(!http.contains("Secure"), "{http}");
        Ok(())
    }
}
