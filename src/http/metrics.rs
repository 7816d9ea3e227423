//! `GET /metrics`, in the Prometheus text format, on a listener of its own
//! (`serve --metrics-listen`): the public port never serves it, so the
//! metrics are reachable only where the operator binds them.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::service::Service;
use crate::telemetry::metrics;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, service: Service) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(service);
    axum::serve(listener, app).await
}

async fn render(State(service): State<Service>) -> impl IntoResponse {
    let pool = service.database_pool();
    metrics::db_pool(pool.open, pool.idle, pool.max);
    match service.job_counts().await {
        Ok(counts) => metrics::changeset_job_states(&counts),
        // The rest of the page is still worth serving.
        Err(error) => tracing::warn!(%error, "could not count changeset jobs for the metrics"),
    }
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics::render())
}
