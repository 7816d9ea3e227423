//! Readiness, as a load balancer sees it: `GET /readyz` says whether this
//! server wants new requests, while `GET /healthz` (liveness) only says
//! whether it works. A draining server is alive but not ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// Shared by the handlers and whoever drains the server; starts ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// From now on `/readyz` answers 503, so load balancers send new
    /// requests elsewhere; requests that still arrive are served.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// 200 while serving, 503 once draining or while the store does not answer.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.readiness.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if state.service.healthy().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn draining_is_seen_by_every_clone_and_never_undone() {
        let readiness = Readiness::default();
        let handler_view = readiness.clone();
        assert!(!handler_view.is_draining());
        readiness.start_draining();
        readiness.start_draining();
        assert!(handler_view.is_draining());
    }
}
