//! Signing in and out, and the first-run page that creates the site admin.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::csrf::{self, CsrfForm};
use super::session::WebCaller;
use super::{Chrome, HOME, WebError};
use crate::http::{AppState, SESSION_COOKIE};
use crate::http::{removal_cookie, session_cookie};
use crate::service::Error;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    /// `true` for the first-run form, which creates the site admin.
    first_run: bool,
    username: String,
    error: Option<String>,
}

/// The sign-in and first-run form body.
#[derive(Deserialize)]
pub(super) struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// The body of forms that carry only their CSRF token.
#[derive(Deserialize)]
pub(super) struct NoFields {}

/// Renders the form, giving a cookie-less browser its CSRF cookie.
fn form_page(
    jar: CookieJar,
    caller: &WebCaller,
    first_run: bool,
    username: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (jar, chrome) = match csrf::pre_session_cookie(&jar)? {
        Some(cookie) => {
            let jar = jar.add(cookie);
            let seed = csrf::seed(&jar);
            let chrome = Chrome {
                user: None,
                csrf: csrf::token_for(seed.as_deref()),
                section: "",
            };
            (jar, chrome)
        }
        None => (jar, Chrome::new(caller, "")),
    };
    let page = SignInPage {
        chrome,
        first_run,
        username,
        error,
    };
    let body = super::render(&page)?;
    Ok((status, jar, body).into_response())
}

/// `/`: the first-run page, sign-in, or the user's settings.
pub(super) async fn root(
    State(state): State<AppState>,
    caller: WebCaller,
) -> Result<Redirect, WebError> {
    if !state.service.site_initialized().await? {
        return Ok(Redirect::to("/site-init"));
    }
    Ok(match caller.caller.user() {
        Some(_) => Redirect::to(HOME),
        None => Redirect::to("/sign-in"),
    })
}

/// `/user/settings` has one section today.
pub(super) async fn settings_root() -> Redirect {
    Redirect::to(HOME)
}

pub(super) async fn sign_in_page(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if !state.service.site_initialized().await? {
        return Ok(Redirect::to("/site-init").into_response());
    }
    if caller.caller.user().is_some() {
        return Ok(Redirect::to(HOME).into_response());
    }
    form_page(jar, &caller, false, String::new(), None, StatusCode::OK)
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    let password = SecretString::from(form.password);
    match state.service.sign_in(&form.username, password).await {
        Ok((token, _)) => {
            let jar = jar.add(session_cookie(&token, &state.cookies));
            Ok((jar, Redirect::to(HOME)).into_response())
        }
        Err(Error::Unauthenticated(message)) => form_page(
            jar,
            &caller,
            false,
            form.username,
            Some(message),
            StatusCode::UNAUTHORIZED,
        ),
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state.service.sign_out(cookie.value()).await?;
    }
    Ok((jar.remove(removal_cookie()), Redirect::to("/sign-in")).into_response())
}

pub(super) async fn site_init_page(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if state.service.site_initialized().await? {
        return Ok(Redirect::to("/sign-in").into_response());
    }
    form_page(jar, &caller, true, String::new(), None, StatusCode::OK)
}

pub(super) async fn site_init(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    let password = SecretString::from(form.password);
    let again = SecretString::from(password.expose_secret());
    let user = match state
        .service
        .initialize_site(&form.username, password)
        .await
    {
        Ok(user) => user,
        Err(Error::InvalidInput(message) | Error::Conflict(message)) => {
            return form_page(
                jar,
                &caller,
                true,
                form.username,
                Some(message),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        Err(Error::Forbidden(_)) => return Ok(Redirect::to("/sign-in").into_response()),
        Err(other) => return Err(other.into()),
    };
    let (token, _) = state.service.sign_in(&user.username, again).await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((jar, Redirect::to(HOME)).into_response())
}
