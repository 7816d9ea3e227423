//! Settings → Access tokens: the user's API access tokens, listed by
//! prefix and note, created with an optional expiry (the new token is
//! shown once, in the answer to the form), and revoked after a
//! confirmation dialog.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth_pages::NoFields;
use super::csrf::CsrfForm;
use super::form_outcome::{fixable, unprocessable};
use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::{AccessTokenId, AccessTokenInfo};
use crate::http::AppState;
use crate::service::{Error, PageRequest};

pub(super) const PATH: &str = "/user/settings/access-tokens";

/// The expiries offered, in days; the empty value is "never".
const EXPIRY_CHOICES: [(&str, &str); 6] = [
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("", "Never (until revoked)"),
];
const DEFAULT_EXPIRY_DAYS: &str = "90";

/// One token in the list.
#[derive(Clone)]
struct TokenRow {
    id: String,
    prefix: String,
    note: String,
    created: String,
    last_used: String,
    expires: String,
    expired: bool,
}

fn day(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d").to_string()
}

impl TokenRow {
    fn of(token: &AccessTokenInfo, now: DateTime<Utc>) -> Self {
        Self {
            id: token.id.to_string(),
            prefix: token
                .prefix
                .as_ref()
                .map_or_else(|| "—".to_owned(), |p| format!("{p}…")),
            note: token.note.clone(),
            created: day(token.created_at),
            last_used: token.last_used_at.map_or_else(|| "Never".to_owned(), day),
            expires: token.expires_at.map_or_else(|| "Never".to_owned(), day),
            expired: token.is_expired(now),
        }
    }
}

/// An expiry choice in the form.
struct ExpiryOption {
    value: &'static str,
    label: &'static str,
}

/// A token just created: shown on this page once, never again.
struct NewToken {
    token: String,
    note: String,
}

#[derive(Template)]
#[template(path = "access_tokens.html")]
struct AccessTokensPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    expiries: Vec<ExpiryOption>,
    form: CreateTokenForm,
    error: Option<String>,
    created: Option<NewToken>,
    revoke: Option<TokenRow>,
}

/// The create-token form, echoed back when it has an error.
#[derive(Deserialize)]
pub(super) struct CreateTokenForm {
    #[serde(default)]
    note: String,
    /// Days, or empty for no expiry.
    #[serde(default)]
    expires_in_days: String,
}

impl Default for CreateTokenForm {
    fn default() -> Self {
        Self {
            note: String::new(),
            expires_in_days: DEFAULT_EXPIRY_DAYS.to_owned(),
        }
    }
}

impl CreateTokenForm {
    fn lifetime(&self) -> Result<Option<std::time::Duration>, Error> {
        let days = self.expires_in_days.trim();
        if days.is_empty() {
            return Ok(None);
        }
        let days: u64 = days
            .parse()
            .map_err(|_| Error::InvalidInput("choose an expiry from the list".into()))?;
        Ok(Some(std::time::Duration::from_secs(
            days.saturating_mul(86_400),
        )))
    }
}

/// Which dialog the page opens.
#[derive(Deserialize, Default)]
pub(super) struct Dialogs {
    revoke: Option<String>,
}

async fn page(
    state: &AppState,
    caller: &WebCaller,
    form: CreateTokenForm,
    dialogs: Dialogs,
) -> Result<AccessTokensPage, WebError> {
    let user = caller.user()?;
    let everything = PageRequest {
        first: Some(PageRequest::MAX_FIRST),
        after: None,
    };
    let now = Utc::now();
    let tokens: Vec<TokenRow> = state
        .service
        .list_access_tokens(&caller.caller, user.id, &everything)
        .await?
        .items
        .iter()
        .map(|t| TokenRow::of(t, now))
        .collect();
    let revoke = dialogs
        .revoke
        .and_then(|id| tokens.iter().find(|t| t.id == id).cloned());
    Ok(AccessTokensPage {
        chrome: Chrome::new(caller, "settings-access-tokens"),
        tokens,
        expiries: EXPIRY_CHOICES
            .into_iter()
            .map(|(value, label)| ExpiryOption { value, label })
            .collect(),
        form,
        error: None,
        created: None,
        revoke,
    })
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(dialogs): Query<Dialogs>,
) -> Result<Response, WebError> {
    let page = page(&state, &caller, CreateTokenForm::default(), dialogs).await?;
    super::render(&page)
}

/// Creates a token for the signed-in user. The answer is the page itself
/// with the token in it (not a redirect: the token must not travel in a
/// URL, and is not stored anywhere it could be shown again).
pub(super) async fn create(
    State(state): State<AppState>,
    caller: WebCaller,
    CsrfForm(form): CsrfForm<CreateTokenForm>,
) -> Result<Response, WebError> {
    let user_id = caller.user()?.id;
    let result = match form.lifetime() {
        Ok(lifetime) => {
            state
                .service
                .create_access_token(&caller.caller, user_id, &form.note, lifetime)
                .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(created) => {
            let mut page = page(
                &state,
                &caller,
                CreateTokenForm::default(),
                Dialogs::default(),
            )
            .await?;
            page.created = Some(NewToken {
                token: created.token.expose().to_owned(),
                note: created.record.note,
            });
            Ok((StatusCode::CREATED, super::render(&page)?).into_response())
        }
        Err(error) => {
            let message = fixable(error)?;
            let mut page = page(&state, &caller, form, Dialogs::default()).await?;
            page.error = Some(message);
            unprocessable(&page)
        }
    }
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: AccessTokenId = id.parse().map_err(Error::from)?;
    state
        .service
        .delete_access_token(&caller.caller, id)
        .await?;
    Ok(Redirect::to(PATH).into_response())
}
