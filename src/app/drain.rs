//! Stopping without dropping a request: on the stop signal the server
//! first reports not-ready (`/readyz` 503) while it keeps accepting and
//! serving for the drain period, so load balancers notice and send new
//! requests elsewhere; then it stops accepting and finishes the requests
//! in flight, for at most the shutdown timeout.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::http::Readiness;

/// How a server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSettings {
    /// How long the server keeps accepting after the signal while it
    /// reports not-ready; zero stops accepting at once.
    pub period: Duration,
    /// The longest wait for in-flight requests once accepting stopped.
    pub shutdown_timeout: Duration,
}

impl DrainSettings {
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for DrainSettings {
    fn default() -> Self {
        Self {
            period: Self::DEFAULT_PERIOD,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Resolves when the server should stop accepting: `period` after
/// `signal`, having marked `readiness` draining as soon as it came.
/// `stopping` is told at that moment, so the shutdown timeout can start.
pub(super) async fn stop_accepting(
    signal: impl Future<Output = ()>,
    readiness: Readiness,
    period: Duration,
    stopping: oneshot::Sender<()>,
) {
    signal.await;
    readiness.start_draining();
    tracing::info!(
        drain_secs = period.as_secs_f64(),
        "stop requested: reporting not-ready and still serving while load balancers notice"
    );
    tokio::time::sleep(period).await;
    tracing::info!("no longer accepting connections; finishing requests in flight");
    // Nobody listening means serving already ended: nothing to bound.
    let _ = stopping.send(());
}

/// Runs `serving` to its end, or until `timeout` after `stopping` fired,
/// whichever is first; requests still running then are abandoned.
pub(super) async fn finish_within(
    serving: impl Future<Output = std::io::Result<()>>,
    stopping: oneshot::Receiver<()>,
    timeout: Duration,
) -> std::io::Result<()> {
    let deadline = async {
        match stopping.await {
            Ok(()) => tokio::time::sleep(timeout).await,
            // Serving ended on its own before any stop: no deadline.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = serving => result,
        () = deadline => {
            tracing::warn!(
                timeout_secs = timeout.as_secs_f64(),
                "requests still in flight after the shutdown timeout; stopping anyway"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stop signal the test fires by hand, and the drain running on it.
    fn drain(
        period: Duration,
    ) -> (
        oneshot::Sender<()>,
        Readiness,
        tokio::task::JoinHandle<()>,
        oneshot::Receiver<()>,
    ) {
        let (fire, signal) = oneshot::channel::<()>();
        let readiness = Readiness::default();
        let (stopping, stopped) = oneshot::channel();
        let task = tokio::spawn(stop_accepting(
            async {
                let _ = signal.await;
            },
            readiness.clone(),
            period,
            stopping,
        ));
        (fire, readiness, task, stopped)
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_at_the_signal_and_accepting_until_the_period_ends() {
        let (fire, readiness, task, _stopped) = drain(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!readiness.is_draining(), "draining before any signal");
        assert!(!task.is_finished(), "stopped before any signal");

        let _ = fire.send(());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(readiness.is_draining(), "still ready after the signal");
        tokio::time::sleep(Duration::from_millis(4900)).await;
        assert!(!task.is_finished(), "stopped accepting within the period");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(task.is_finished(), "still accepting after the period");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_period_stops_accepting_at_once() {
        let (fire, readiness, task, stopped) = drain(Duration::ZERO);
        let _ = fire.send(());
        assert_eq!(stopped.await, Ok(()));
        assert!(readiness.is_draining());
        assert!(task.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_work_is_awaited_up_to_the_timeout_only() {
        // Work ending within the timeout is awaited to its end.
        let (stop, stopping) = oneshot::channel();
        let _ = stop.send(());
        let started = tokio::time::Instant::now();
        let finished = finish_within(
            async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                Err(std::io::Error::other("served to the end"))
            },
            stopping,
            Duration::from_secs(30),
        )
        .await;
        assert!(finished.is_err(), "the work's own result is returned");
        assert_eq!(started.elapsed(), Duration::from_secs(20));

        // Work outlasting it is cut at the timeout.
        let (stop, stopping) = oneshot::channel();
        let _ = stop.send(());
        let started = tokio::time::Instant::now();
        let cut = finish_within(std::future::pending(), stopping, Duration::from_secs(30)).await;
        assert!(cut.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_runs_before_a_stop() {
        let (stop, stopping) = oneshot::channel::<()>();
        let bounded = tokio::spawn(finish_within(
            std::future::pending(),
            stopping,
            Duration::from_secs(1),
        ));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!bounded.is_finished(), "cut without a stop");
        drop(stop);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(
            !bounded.is_finished(),
            "cut after the stop signal went away"
        );
        bounded.abort();
    }
}
