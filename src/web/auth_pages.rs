//! Signing in and out, and the first-run page that creates the site admin.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::csrf::{self, CsrfForm};
use super::error::with_retry_after;
use super::session::WebCaller;
use super::{Chrome, HOME, WebError};
use crate::http::{AppState, ClientAddress, CookieSettings};
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
    cookies: &CookieSettings,
    caller: &WebCaller,
    first_run: bool,
    username: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (jar, chrome) = match csrf::pre_session_cookie(&jar, cookies)? {
        Some(cookie) => {
            let jar = jar.add(cookie);
            let seed = csrf::seed(&jar, cookies);
            let chrome = Chrome {
                user: None,
                csrf: csrf::token_for(seed.as_deref()),
                section: "",
                notices: Vec::new(),
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
    form_page(
        jar,
        &state.cookies,
        &caller,
        false,
        String::new(),
        None,
        StatusCode::OK,
    )
}

/// Throttled like `POST /-/sign-in`: the form is shown again with the
/// message, answering 429 (or 503) with `Retry-After`.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    caller: WebCaller,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    let password = SecretString::from(form.password);
    let result = state
        .service
        .sign_in(&form.username, password, client)
        .await;
    let (status, message, retry_after) = match result {
        Ok((token, _)) => {
            let jar = jar.add(session_cookie(&token, &state.cookies));
            return Ok((jar, Redirect::to(HOME)).into_response());
        }
        Err(Error::Unauthenticated(message)) => (StatusCode::UNAUTHORIZED, message, None),
        Err(Error::Throttled {
            message,
            retry_after,
        }) => (StatusCode::TOO_MANY_REQUESTS, message, Some(retry_after)),
        Err(Error::Overloaded {
            message,
            retry_after,
        }) => (StatusCode::SERVICE_UNAVAILABLE, message, Some(retry_after)),
        Err(other) => return Err(other.into()),
    };
    let page = form_page(
        jar,
        &state.cookies,
        &caller,
        false,
        form.username,
        Some(message),
        status,
    )?;
    Ok(match retry_after {
        Some(wait) => with_retry_after(page, wait),
        None => page,
    })
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    if let Some(cookie) = jar.get(state.cookies.session_name()) {
        state.service.sign_out(cookie.value()).await?;
    }
    let jar = jar.remove(removal_cookie(&state.cookies));
    Ok((jar, Redirect::to("/sign-in")).into_response())
}

pub(super) async fn site_init_page(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if state.service.site_initialized().await? {
        return Ok(Redirect::to("/sign-in").into_response());
    }
    form_page(
        jar,
        &state.cookies,
        &caller,
        true,
        String::new(),
        None,
        StatusCode::OK,
    )
}

pub(super) async fn site_init(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
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
                &state.cookies,
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
    let (token, _) = state.service.sign_in(&user.username, again, client).await?;
    let jar = jar.add(session_cookie(&token, &state.cookies));
    Ok((jar, Redirect::to(HOME)).into_response())
}
