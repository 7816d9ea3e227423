//! The Batch Changes credential pages: a user's own tokens (user settings)
//! and the global ones (site admin). Both list every code host with a
//! green tick or a red circle, and open the add, SSH key and remove
//! dialogs from the query string.

use std::convert::Infallible;

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::auth_pages::NoFields;
use super::csrf::{CsrfForm, FIELD as CSRF_FIELD};
use super::form_outcome::{fixable_at_code_host, unprocessable};
use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::{CodeHostKind, CredentialId, KindDescriptor, SigningKeySource, UsernameRule};
use crate::http::AppState;
use crate::service::CheckOptions;
use crate::service::{CodeHostView, CreateCredential, CredentialView, Error, PageRequest};

/// Whose credentials a page shows: the same handlers serve the user's
/// settings and the site admin's pages, told apart by their path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    User,
    Site,
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(if parts.uri.path().starts_with(Self::Site.path()) {
            Self::Site
        } else {
            Self::User
        })
    }
}

impl Scope {
    pub(super) fn path(self) -> &'static str {
        match self {
            Self::User => "/user/settings/batch-changes",
            Self::Site => "/site-admin/batch-changes",
        }
    }

    fn section(self) -> &'static str {
        match self {
            Self::User => "settings-batch-changes",
            Self::Site => "admin-batch-changes",
        }
    }
}

/// One code host in the list, with the credential that belongs to the
/// page's owner. The row is rendered by `partials/code_host_row.html`
/// alone, so new credential fields are shown there.
pub(crate) struct HostRow {
    pub code_host_id: String,
    pub kind: CodeHostKind,
    pub url: String,
    pub requires_ssh: bool,
    /// The page owner's own credential for this host.
    pub credential: Option<CredentialView>,
    /// On a user's page: the global credential that covers this host, as
    /// the service shows it to this viewer (details for site admins only).
    pub global: Option<CredentialView>,
    /// The page owner's GitHub App credential, where they have a token too.
    pub github_app: Option<CredentialView>,
}

impl HostRow {
    fn from_view(scope: Scope, view: CodeHostView) -> Self {
        let (credential, global) = match view.credential {
            // On a user's page the global credential is not theirs.
            Some(c) if scope == Scope::User && c.is_site_credential() => (None, Some(c)),
            other => (other, None),
        };
        Self {
            code_host_id: view.code_host.id.to_string(),
            kind: view.code_host.kind,
            url: view.code_host.url.as_str().to_owned(),
            requires_ssh: view.code_host.git_url_type == crate::domain::GitUrlType::Ssh,
            credential,
            global,
            github_app: view.github_app,
        }
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        self.kind.display_name()
    }

    pub(crate) fn icon(&self) -> &'static str {
        self.kind.descriptor().icon
    }

    /// Why the page owner's credential needs them to act, if it does.
    pub(crate) fn attention(&self) -> Option<String> {
        self.credential.as_ref()?.attention_reason()
    }
}

/// The add-token modal.
struct AddDialog {
    kind: &'static KindDescriptor,
    url: String,
    token_page: String,
    /// The username field's label, where the kind needs one.
    username_label: Option<&'static str>,
    username: String,
    error: Option<String>,
}

/// The SSH public key modal.
struct KeyDialog {
    kind_name: &'static str,
    url: String,
    public_key: String,
    just_added: bool,
}

/// The commit-signing key modal: the public key to upload and where.
struct SigningDialog {
    credential_id: String,
    kind_name: &'static str,
    url: String,
    public_key: String,
    /// Where the code host takes signing keys.
    upload_help: &'static str,
    /// Whether the key is the credential's SSH key (already on the code
    /// host for pushing, but as an authentication key).
    uses_ssh_key: bool,
}

/// The remove confirmation.
struct RemoveDialog {
    credential_id: String,
    kind_name: &'static str,
    url: String,
}

#[derive(Template)]
#[template(path = "batch_changes.html")]
struct BatchChangesPage {
    chrome: Chrome,
    site: bool,
    path: &'static str,
    csrf_field: &'static str,
    rows: Vec<HostRow>,
    add: Option<AddDialog>,
    key: Option<KeyDialog>,
    signing: Option<SigningDialog>,
    remove: Option<RemoveDialog>,
}

/// Which dialog the page opens.
#[derive(Deserialize, Default)]
pub(super) struct Dialogs {
    add: Option<String>,
    key: Option<String>,
    signing: Option<String>,
    remove: Option<String>,
    new: Option<String>,
}

/// The "Sign commits" form: which key signs.
#[derive(Deserialize)]
pub(super) struct SigningForm {
    /// `generated` (the default) or `ssh_key`.
    #[serde(default)]
    source: String,
}

/// The add-token form.
#[derive(Deserialize)]
pub(super) struct AddTokenForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    username: String,
    /// Wiped from memory when dropped.
    #[serde(default)]
    token: SecretString,
}

/// More code hosts than any instance has; the list is not paginated.
const ALL: i32 = PageRequest::MAX_FIRST;

async fn rows(
    state: &AppState,
    caller: &WebCaller,
    scope: Scope,
) -> Result<Vec<HostRow>, WebError> {
    let page = PageRequest {
        first: Some(ALL),
        after: None,
    };
    let views = match scope {
        Scope::User => {
            let user = caller.user()?;
            state
                .service
                .user_code_hosts(&caller.caller, user.id, &page)
                .await?
        }
        Scope::Site => state.service.site_code_hosts(&caller.caller, &page).await?,
    };
    Ok(views
        .items
        .into_iter()
        .map(|view| HostRow::from_view(scope, view))
        .collect())
}

fn add_dialog(row: &HostRow, username: String, error: Option<String>) -> AddDialog {
    let url = crate::domain::CodeHostUrl::parse(&row.url);
    AddDialog {
        kind: row.kind.descriptor(),
        url: row.url.clone(),
        token_page: url
            .map(|u| row.kind.descriptor().token_page_url(&u))
            .unwrap_or_default(),
        username_label: match row.kind.descriptor().username {
            UsernameRule::Required { label } => Some(label),
            UsernameRule::NotNeeded => None,
        },
        username,
        error,
    }
}

fn build_page(
    caller: &WebCaller,
    scope: Scope,
    rows: Vec<HostRow>,
    dialogs: &Dialogs,
) -> BatchChangesPage {
    let add = dialogs.add.as_ref().and_then(|id| {
        rows.iter()
            .find(|r| &r.code_host_id == id)
            .map(|row| add_dialog(row, String::new(), None))
    });
    let with_credential = |id: &String| {
        rows.iter().find(|r| {
            r.credential
                .as_ref()
                .is_some_and(|c| &c.id.to_string() == id)
        })
    };
    let key = dialogs
        .key
        .as_ref()
        .and_then(with_credential)
        .and_then(|row| {
            let key = row.credential.as_ref()?.ssh_public_key.clone()?;
            Some(KeyDialog {
                kind_name: row.kind_name(),
                url: row.url.clone(),
                public_key: key,
                just_added: dialogs.new.is_some(),
            })
        });
    let signing = dialogs
        .signing
        .as_ref()
        .and_then(with_credential)
        .and_then(|row| {
            let credential = row.credential.as_ref()?;
            let signing = credential.signing.as_ref()?;
            Some(SigningDialog {
                credential_id: credential.id.to_string(),
                kind_name: row.kind_name(),
                url: row.url.clone(),
                public_key: signing.public_key.clone(),
                upload_help: row.kind.descriptor().ssh_signing_key_help?,
                uses_ssh_key: signing.source == SigningKeySource::SshKey,
            })
        });
    // The remove dialog serves the token and, beside it, the GitHub App.
    let remove = dialogs.remove.as_ref().and_then(|id| {
        rows.iter().find_map(|row| {
            [row.credential.as_ref(), row.github_app.as_ref()]
                .into_iter()
                .flatten()
                .find(|c| &c.id.to_string() == id)
                .map(|credential| RemoveDialog {
                    credential_id: credential.id.to_string(),
                    kind_name: row.kind_name(),
                    url: row.url.clone(),
                })
        })
    });
    BatchChangesPage {
        chrome: Chrome::new(caller, scope.section()),
        site: scope == Scope::Site,
        path: scope.path(),
        csrf_field: CSRF_FIELD,
        rows,
        add,
        key,
        signing,
        remove,
    }
}

pub(super) async fn show_credentials(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Query(dialogs): Query<Dialogs>,
) -> Result<Response, WebError> {
    let rows = rows(&state, &caller, scope).await?;
    super::render(&build_page(&caller, scope, rows, &dialogs))
}

pub(super) async fn create_credential(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    CsrfForm(form): CsrfForm<AddTokenForm>,
) -> Result<Response, WebError> {
    let user = match scope {
        Scope::User => Some(caller.user()?.id),
        Scope::Site => None,
    };
    let kind: Result<CodeHostKind, Error> = form.kind.parse().map_err(Error::from);
    let request = kind.map(|kind| CreateCredential {
        user,
        kind,
        url: form.url.clone(),
        username: Some(form.username.clone()),
        token: form.token,
        repository: None,
    });
    let result = match request {
        Ok(request) => {
            state
                .service
                .create_credential(&caller.caller, request)
                .await
        }
        Err(error) => Err(error),
    };
    let message = match result {
        Ok(view) if view.ssh_public_key.is_some() => {
            let to = format!("{}?key={}&new=1", scope.path(), view.id);
            return Ok(Redirect::to(&to).into_response());
        }
        Ok(_) => return Ok(Redirect::to(scope.path()).into_response()),
        // What the person can fix is shown in the modal; nothing was stored.
        Err(error) => fixable_at_code_host(error)?,
    };
    let rows = rows(&state, &caller, scope).await?;
    let mut page = build_page(&caller, scope, rows, &Dialogs::default());
    let url = crate::domain::CodeHostUrl::parse(&form.url)
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    page.add = page
        .rows
        .iter()
        .find(|r| r.url == url)
        .map(|row| add_dialog(row, form.username, Some(message)));
    unprocessable(&page)
}

pub(super) async fn delete_credential(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: CredentialId = id.parse().map_err(Error::from)?;
    state.service.delete_credential(&caller.caller, id).await?;
    Ok(Redirect::to(scope.path()).into_response())
}

/// Checks a credential against its code host again. The outcome is
/// recorded with the credential and shown in its row, so a failed check
/// is not an error of this request.
pub(super) async fn check_credential(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: CredentialId = id.parse().map_err(Error::from)?;
    match state
        .service
        .check_credential(&caller.caller, id, &CheckOptions::default())
        .await
    {
        Ok(_) | Err(Error::InvalidInput(_) | Error::CodeHostUnavailable(_)) => {
            Ok(Redirect::to(scope.path()).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn confirm_ssh_key(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: CredentialId = id.parse().map_err(Error::from)?;
    state
        .service
        .confirm_ssh_key_added(&caller.caller, id)
        .await?;
    Ok(Redirect::to(scope.path()).into_response())
}

/// Turns commit signing on (a generated key unless the form asks for the
/// credential's SSH key) and opens the dialog with the key to upload.
pub(super) async fn enable_signing(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SigningForm>,
) -> Result<Response, WebError> {
    let id: CredentialId = id.parse().map_err(Error::from)?;
    let source = match form.source.as_str() {
        "" => SigningKeySource::Generated,
        name => SigningKeySource::from_stored(name)
            .ok_or_else(|| Error::InvalidInput(format!("{name:?} is not a signing key source")))?,
    };
    state
        .service
        .enable_commit_signing(&caller.caller, id, source)
        .await?;
    let to = format!("{}?signing={id}", scope.path());
    Ok(Redirect::to(&to).into_response())
}

/// Turns commit signing off.
pub(super) async fn disable_signing(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: CredentialId = id.parse().map_err(Error::from)?;
    state
        .service
        .disable_commit_signing(&caller.caller, id)
        .await?;
    Ok(Redirect::to(scope.path()).into_response())
}
