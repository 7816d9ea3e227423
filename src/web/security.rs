//! Settings → Security: change your password (other sessions end, this
//! one stays) and sign out everywhere.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

use super::auth_pages::NoFields;
use super::csrf::CsrfForm;
use super::form_outcome::{fixable, unprocessable};
use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::Password;
use crate::http::{AppState, removal_cookie};
use crate::service::Error;

pub(super) const PATH: &str = "/user/settings/security";

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage {
    chrome: Chrome,
    min_password_len: usize,
    changed: bool,
    error: Option<String>,
}

/// `?changed=1` after a successful password change.
#[derive(Deserialize, Default)]
pub(super) struct Notice {
    changed: Option<String>,
}

/// The change-password form.
#[derive(Deserialize)]
pub(super) struct ChangePasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

fn page(
    caller: &WebCaller,
    changed: bool,
    error: Option<String>,
) -> Result<SecurityPage, WebError> {
    caller.user()?;
    Ok(SecurityPage {
        chrome: Chrome::new(caller, "settings-security"),
        min_password_len: Password::MIN_LEN,
        changed,
        error,
    })
}

pub(super) async fn show(
    caller: WebCaller,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    super::render(&page(&caller, notice.changed.is_some(), None)?)
}

/// Changes the password; this browser's session is kept, the others end.
pub(super) async fn change_password(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<ChangePasswordForm>,
) -> Result<Response, WebError> {
    caller.user()?;
    let result = if form.new_password == form.confirm_password {
        let session = jar
            .get(state.cookies.session_name())
            .map(|c| c.value().to_owned());
        state
            .service
            .change_password(
                &caller.caller,
                session.as_deref(),
                SecretString::from(form.current_password),
                SecretString::from(form.new_password),
            )
            .await
    } else {
        Err(Error::InvalidInput(
            "the new password and its confirmation differ".into(),
        ))
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{PATH}?changed=1")).into_response()),
        Err(error) => unprocessable(&page(&caller, false, Some(fixable(error)?))?),
    }
}

/// Ends every session of the user, this one included.
pub(super) async fn sign_out_everywhere(
    State(state): State<AppState>,
    caller: WebCaller,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let user_id = caller.user()?.id;
    state.service.end_sessions(&caller.caller, user_id).await?;
    Ok((
        jar.remove(removal_cookie(&state.cookies)),
        Redirect::to("/sign-in"),
    )
        .into_response())
}
