//! The web UI: server-rendered pages over the [`crate::service`] layer.
//!
//! Every page is an askama template (HTML-escaped by default) filled from
//! service calls made as the signed-in caller, so authorization is decided
//! in the service exactly as for the GraphQL API. Forms post back with a
//! CSRF token (see [`csrf`]) and answer with a redirect (POST-redirect-GET).
//! Dialogs are rendered by the server from the query string (`?add=…`) and
//! turned into modals by a few lines of JavaScript; without it they still
//! work as inline panels.

mod access_tokens;
mod admin;
mod audit_log;
mod auth_pages;
mod batch_changes;
mod changesets;
mod csrf;
mod error;
mod form_outcome;
mod github_app;
mod security;
mod session;

pub use error::WebError;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::domain::UserAccount;
use crate::http::AppState;
use crate::service::CredentialNotice;
use session::WebCaller;

/// Where a signed-in user lands: their Batch Changes settings.
const HOME: &str = "/user/settings/batch-changes";

/// The page routes, merged into [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(auth_pages::root))
        .route(
            "/sign-in",
            get(auth_pages::sign_in_page).post(auth_pages::sign_in),
        )
        .route("/sign-out", post(auth_pages::sign_out))
        .route(
            "/site-init",
            get(auth_pages::site_init_page).post(auth_pages::site_init),
        )
        .route("/user/settings", get(auth_pages::settings_root))
        .route(
            "/user/settings/batch-changes",
            get(batch_changes::show_credentials),
        )
        .route(
            "/user/settings/batch-changes/credentials",
            post(batch_changes::create_credential),
        )
        .route(
            "/user/settings/batch-changes/github-app/new",
            post(github_app::start),
        )
        .route(
            "/site-admin/batch-changes/github-app/new",
            post(github_app::start),
        )
        .route(
            "/user/settings/batch-changes/github-app",
            post(github_app::create_existing),
        )
        .route(
            "/site-admin/batch-changes/github-app",
            post(github_app::create_existing),
        )
        .route(
            crate::service::GITHUB_APP_CALLBACK_PATH,
            get(github_app::callback),
        )
        .route(
            "/user/settings/batch-changes/credentials/{id}/delete",
            post(batch_changes::delete_credential),
        )
        .route(
            "/user/settings/batch-changes/credentials/{id}/check",
            post(batch_changes::check_credential),
        )
        .route(
            "/user/settings/batch-changes/credentials/{id}/confirm-key",
            post(batch_changes::confirm_ssh_key),
        )
        .route(
            "/user/settings/batch-changes/credentials/{id}/signing",
            post(batch_changes::enable_signing),
        )
        .route(
            "/user/settings/batch-changes/credentials/{id}/signing/disable",
            post(batch_changes::disable_signing),
        )
        .route(
            access_tokens::PATH,
            get(access_tokens::show).post(access_tokens::create),
        )
        .route(
            "/user/settings/access-tokens/{id}/delete",
            post(access_tokens::revoke),
        )
        .route(security::PATH, get(security::show))
        .route(
            "/user/settings/security/password",
            post(security::change_password),
        )
        .route(
            "/user/settings/security/sign-out-everywhere",
            post(security::sign_out_everywhere),
        )
        .route(changesets::PATH, get(changesets::show))
        .route("/batch-changes/changesets/import", post(changesets::import))
        .route(
            "/batch-changes/changesets/{id}/{action}",
            post(changesets::act),
        )
        .route("/site-admin", get(admin::root))
        .route(audit_log::PATH, get(audit_log::show))
        .route(
            "/site-admin/batch-changes",
            get(batch_changes::show_credentials),
        )
        .route(
            "/site-admin/batch-changes/credentials",
            post(batch_changes::create_credential),
        )
        .route(
            "/site-admin/batch-changes/credentials/{id}/delete",
            post(batch_changes::delete_credential),
        )
        .route(
            "/site-admin/batch-changes/credentials/{id}/check",
            post(batch_changes::check_credential),
        )
        .route(
            "/site-admin/batch-changes/credentials/{id}/confirm-key",
            post(batch_changes::confirm_ssh_key),
        )
        .route(
            "/site-admin/batch-changes/credentials/{id}/signing",
            post(batch_changes::enable_signing),
        )
        .route(
            "/site-admin/batch-changes/credentials/{id}/signing/disable",
            post(batch_changes::disable_signing),
        )
        .route(
            "/site-admin/code-hosts",
            get(admin::code_hosts_page).post(admin::add_code_host),
        )
        .route("/site-admin/code-hosts/{id}", post(admin::update_code_host))
        .route(
            "/site-admin/code-hosts/{id}/delete",
            post(admin::delete_code_host),
        )
        .route(
            "/site-admin/users",
            get(admin::users_page).post(admin::create_user),
        )
        .route(
            "/site-admin/users/{id}/password",
            post(admin::reset_password),
        )
        .route(
            "/site-admin/users/{id}/revoke-sessions",
            post(admin::revoke_sessions),
        )
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .layer(axum::middleware::map_response(security_headers))
}

/// What every page's frame (header, avatar menu) needs.
pub(crate) struct Chrome {
    /// The signed-in user, if any.
    pub user: Option<UserAccount>,
    /// The CSRF token every form on the page carries.
    pub csrf: String,
    /// Which sidebar entry is current, for `aria-current`.
    pub section: &'static str,
    /// Credentials the user should act on (theirs; the site's for site
    /// admins), shown at the top of every page.
    pub notices: Vec<CredentialNotice>,
}

impl Chrome {
    pub(crate) fn new(caller: &WebCaller, section: &'static str) -> Self {
        Self {
            user: caller.caller.user().cloned(),
            csrf: caller.csrf_token(),
            section,
            notices: caller.notices.clone(),
        }
    }

    /// Where the notice links: the settings page listing the credentials.
    pub(crate) fn notice_link(&self, notice: &CredentialNotice) -> &'static str {
        if notice.site {
            "/site-admin/batch-changes"
        } else {
            HOME
        }
    }

    /// The avatar's letter.
    pub(crate) fn initial(&self) -> String {
        self.user
            .as_ref()
            .and_then(|u| u.username.chars().next())
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn is_site_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.site_admin)
    }
}

/// Pages are never cached and may only load our own assets.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    // A page may widen its own policy (the GitHub App manifest page posts
    // its form to GitHub).
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}

/// Renders a template into a response, or a logged 500.
pub(crate) fn render(template: &impl askama::Template) -> Result<Response, WebError> {
    let html = template.render().map_err(WebError::Template)?;
    Ok(axum::response::Html(html).into_response())
}
