//! `POST /.api/graphql`.

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::caller::{AuthMethod, RequestCaller};
use super::{ApiError, AppState};
use crate::api::CurrentSession;

/// Header that cookie-authenticated API calls must carry. A cross-site
/// form cannot set custom headers, so this (with `SameSite=Lax` cookies)
/// stops cross-site request forgery. Sourcegraph's client sends it too.
pub const CSRF_HEADER: &str = "x-requested-with";

pub(super) async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    RequestCaller {
        caller,
        method,
        session,
    }: RequestCaller,
    request: GraphQLRequest,
) -> Result<GraphQLResponse, ApiError> {
    if method == AuthMethod::SessionCookie && !headers.contains_key(CSRF_HEADER) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cookie-authenticated API requests must send the X-Requested-With header",
        ));
    }
    let request =
        crate::api::prepare_request(request.into_inner(), caller).data(CurrentSession(session));
    Ok(state.schema.execute(request).await.into())
}
