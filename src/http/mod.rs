//! The HTTP server: routes, request limits, and who is calling.

mod caller;
mod client_address;
mod error;
mod graphql;
mod metrics;
mod observe;
mod readiness;
mod session;
mod webhooks;

pub(crate) use client_address::ClientAddress;
pub use client_address::TrustedProxies;
pub use error::ApiError;
pub use metrics::serve_metrics;
pub use observe::REQUEST_ID_HEADER;
pub use readiness::Readiness;
pub(crate) use session::{removal_cookie, session_cookie};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::api::{BatchcredSchema, build_schema};
use crate::service::Service;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub schema: BatchcredSchema,
    pub cookies: Arc<CookieSettings>,
    /// Whose `X-Forwarded-For` names the client (see [`ClientAddress`]).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Whether `/readyz` still invites new requests (see [`Readiness`]).
    pub readiness: Readiness,
}

/// How session cookies are issued.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The instance is served over HTTPS: every cookie is `Secure` and its
    /// name has the `__Host-` prefix, so browsers refuse to let a plain
    /// HTTP page or a sibling domain set or overwrite it. Over plain HTTP
    /// (local use) the names stay unprefixed, as browsers require.
    pub secure: bool,
    pub max_age: Duration,
}

impl CookieSettings {
    /// The session cookie's name.
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-batchcred_session"
        } else {
            "batchcred_session"
        }
    }

    /// The name of the cookie carrying the pre-session CSRF key for the
    /// sign-in and first-run forms.
    pub fn csrf_name(&self) -> &'static str {
        if self.secure {
            "__Host-batchcred_csrf"
        } else {
            "batchcred_csrf"
        }
    }
}

impl AppState {
    pub fn new(service: Service, cookies: CookieSettings, trusted_proxies: TrustedProxies) -> Self {
        Self {
            schema: build_schema(service.clone()),
            service,
            cookies: Arc::new(cookies),
            trusted_proxies: Arc::new(trusted_proxies),
            readiness: Readiness::default(),
        }
    }
}

/// The API's routes: health, GraphQL, webhooks and the session endpoints.
/// The app merges them with the pages (`web`) and wraps both in
/// [`with_middleware`]. `/metrics` is not among them: it is served on its
/// own listener (see [`serve_metrics`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readiness::readyz))
        .route("/.api/graphql", post(graphql::execute))
        .route("/.api/webhooks/{code_host}", post(webhooks::receive))
        .route("/-/sign-in", post(session::sign_in))
        .route("/-/sign-out", post(session::sign_out))
        .route("/-/site-init", post(session::site_init))
}

/// What every request goes through: its id, its span and metrics, and the
/// body size limit.
pub fn with_middleware(routes: Router<AppState>) -> Router<AppState> {
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);
    // Layers wrap what is above them: the request id is settled first,
    // then `observe` opens the request's span around everything else.
    routes
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(observe::sanitize_request_id))
}

/// Liveness: 200 when the store answers, 503 when it does not; unlike
/// `/readyz`, still 200 while draining.
async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.service.healthy().await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
    }
}
