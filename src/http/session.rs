//! Signing in and out, and creating the first account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::SESSION_COOKIE;
use super::{ApiError, AppState, CookieSettings};
use crate::service::SessionToken;
use crate::store::UserRecord;

/// Body of `POST /-/sign-in` and `POST /-/site-init`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    username: String,
    password: SecretString,
}

/// The session cookie, for the JSON endpoints and the web pages alike:
/// `HttpOnly`, `SameSite=Lax`, `Secure` over HTTPS.
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

fn user_json(user: &UserRecord) -> Value {
    json!({ "username": user.username, "siteAdmin": user.site_admin })
}

/// Checks username and password; sets the session cookie.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<(CookieJar, Json<Value>), ApiError> {
    let (token, user) = state.service.sign_in(&body.username, body.password).await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((jar, Json(user_json(&user))))
}

/// Ends the session and clears the cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state.service.sign_out(cookie.value()).await?;
    }
    Ok((jar.remove(removal_cookie()), StatusCode::NO_CONTENT))
}

/// Creates the site admin on an empty instance and signs them in.
pub(super) async fn site_init(
    State(state): State<AppState>,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, CookieJar, Json<Value>), ApiError> {
    let password = SecretString::from(secrecy::ExposeSecret::expose_secret(&body.password));
    let user = state
        .service
        .initialize_site(&body.username, body.password)
        .await?;
    let (token, _) = state.service.sign_in(&user.username, password).await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((StatusCode::CREATED, jar, Json(user_json(&user))))
}
