//! The GitHub App manifest flow in the browser: the add-credential dialog
//! posts here to create an App, this page posts the manifest on to GitHub
//! (the form submits itself), and GitHub sends the browser back to the
//! callback, which stores the App as a credential and returns to the
//! credentials page, with a message when anything went wrong.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebError;
use super::batch_changes::Scope;
use super::csrf::CsrfForm;
use super::session::WebCaller;
use crate::http::AppState;

/// "Create a GitHub App": which GitHub, and optionally which organisation
/// will own the App.
#[derive(Deserialize)]
pub(super) struct NewAppForm {
    url: String,
    #[serde(default)]
    organization: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Create a GitHub App</title>
<link rel="stylesheet" href="/assets/style.css"><script src="/assets/app.js" defer></script></head>
<body><main class="narrow">
<h1>Create a GitHub App</h1>
<p>GitHub asks you to confirm the new App's name, then sends you back here.</p>
<form method="post" action="{{ form_url }}" data-autosubmit>
<input type="hidden" name="manifest" value="{{ manifest }}">
<button type="submit" class="primary">Continue to GitHub</button>
</form>
</main></body></html>"#
)]
struct ManifestPage {
    form_url: String,
    manifest: String,
}

/// Starts the manifest flow and answers the page that posts it to GitHub.
pub(super) async fn start(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    CsrfForm(form): CsrfForm<NewAppForm>,
) -> Result<Response, WebError> {
    let user = match scope {
        Scope::User => Some(caller.user()?.id),
        Scope::Site => None,
    };
    let organization = Some(form.organization.trim()).filter(|o| !o.is_empty());
    let started = state
        .service
        .start_github_app_manifest(
            &caller.caller,
            caller.session_seed(),
            &form.url,
            user,
            organization,
        )
        .await?;
    let origin = url::Url::parse(&started.form_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut response = super::render(&ManifestPage {
        form_url: started.form_url,
        manifest: started.manifest,
    })?;
    // The one page whose form may leave this origin: to GitHub's.
    let policy = format!(
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
         form-action 'self' {origin}; base-uri 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

/// What GitHub sends the browser back with.
#[derive(Deserialize)]
pub(super) struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GitHub App</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body><main class="narrow">
<h1>{{ title }}</h1>
<p class="{% if failed %}error{% else %}notice{% endif %}" role="status">{{ message }}</p>
<p><a href="{{ back }}">Back to the Batch Changes settings</a></p>
</main></body></html>"#
)]
struct OutcomePage {
    title: &'static str,
    message: String,
    failed: bool,
    back: &'static str,
}

/// Finishes the manifest flow: stores the App, or says why not.
pub(super) async fn callback(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(callback): Query<Callback>,
) -> Result<Response, WebError> {
    caller.user()?;
    let result = state
        .service
        .finish_github_app_manifest(
            &caller.caller,
            caller.session_seed(),
            &callback.state,
            &callback.code,
        )
        .await;
    match result {
        Ok(view) if view.is_site_credential() => {
            Ok(Redirect::to(Scope::Site.path()).into_response())
        }
        Ok(_) => Ok(Redirect::to(Scope::User.path()).into_response()),
        Err(error) => {
            let mut response = super::render(&OutcomePage {
                title: "The GitHub App was not added",
                message: format!("Nothing was stored: {error}"),
                failed: true,
                back: Scope::User.path(),
            })?;
            *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            Ok(response)
        }
    }
}

/// "Add GitHub App": an existing App's id, private key and installations.
#[derive(Deserialize)]
pub(super) struct ExistingAppForm {
    url: String,
    app_id: String,
    private_key: secrecy::SecretString,
    #[serde(default)]
    installations: String,
}

/// Adds a GitHub App credential for an existing App.
pub(super) async fn create_existing(
    State(state): State<AppState>,
    caller: WebCaller,
    scope: Scope,
    CsrfForm(form): CsrfForm<ExistingAppForm>,
) -> Result<Response, WebError> {
    let user = match scope {
        Scope::User => Some(caller.user()?.id),
        Scope::Site => None,
    };
    let invalid = |what: &str| WebError::Service(crate::service::Error::InvalidInput(what.into()));
    let app_id = form
        .app_id
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid("the App ID must be a number"))?;
    let installations: Vec<u64> = form
        .installations
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid("installation IDs must be numbers"))?;
    state
        .service
        .create_github_app_credential(
            &caller.caller,
            crate::service::CreateGitHubAppCredential {
                user,
                url: form.url,
                app_id,
                private_key: form.private_key,
                installations: (!installations.is_empty()).then_some(installations),
            },
        )
        .await?;
    Ok(Redirect::to(scope.path()).into_response())
}
