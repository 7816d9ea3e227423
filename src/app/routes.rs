//! Every route of the service, composed: the API's (`http`) and the pages
//! (`web`), behind the same middleware. Composed here so that neither of
//! the two needs the other.

use axum::Router;
use tokio::net::TcpListener;

use crate::http::{self, AppState};

/// All routes, with their state.
pub fn router(state: AppState) -> Router {
    http::with_middleware(http::routes().merge(crate::web::router())).with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address is the client address sign-in throttling uses.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
