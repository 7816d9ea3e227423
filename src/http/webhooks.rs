//! `POST /.api/webhooks/{code_host}`: pull request events from code hosts,
//! authenticated by their signature (see [`Service::receive_webhook`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::service::WebhookReceipt;

pub(super) async fn receive(
    State(state): State<AppState>,
    Path(code_host): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let receipt = state
        .service
        .receive_webhook(&code_host, &headers, &body)
        .await?;
    Ok(Json(json!({
        "result": match receipt {
            WebhookReceipt::Ignored => "ignored",
            WebhookReceipt::SyncQueued => "sync_queued",
        }
    })))
}
