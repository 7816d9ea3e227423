//! Staying within code host rate limits: spacing out content-creating
//! requests per code host (GitHub's secondary limits ask for about one per
//! second, never many in parallel), and waiting out a rate-limit answer
//! instead of failing or hammering.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::codehost;

/// Hands out evenly spaced start times per key (a code host).
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    next_slot: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Pacer {
    /// Waits until a request to `key` may start, `interval` after the
    /// previous one. Concurrent callers get consecutive slots.
    pub async fn wait_turn(&self, key: &str, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let slot = {
            let mut slots = self
                .next_slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let slot = slots.get(key).copied().filter(|s| *s > now).unwrap_or(now);
            slots.insert(key.to_owned(), slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// How rate-limit answers are waited out.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Tries after the first before giving up.
    pub retries: u32,
    /// The longest single wait; a code host asking for more fails the
    /// changeset with its rate-limit error instead.
    pub max_wait: Duration,
    /// The wait when the code host does not say how long.
    pub default_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            retries: 5,
            max_wait: Duration::from_secs(15 * 60),
            default_wait: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Runs `call`, waiting and retrying while the code host answers with
    /// a rate limit. `on_wait` hears about every wait (for progress output).
    pub async fn run<T, F, Fut>(
        &self,
        mut call: F,
        on_wait: impl Fn(Duration),
    ) -> Result<T, codehost::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, codehost::Error>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(codehost::Error::RateLimited {
                    target,
                    retry_after,
                }) if attempt < self.retries => {
                    let wait = retry_after.unwrap_or(self.default_wait);
                    if wait > self.max_wait {
                        return Err(codehost::Error::RateLimited {
                            target,
                            retry_after,
                        });
                    }
                    attempt += 1;
                    // A second more than asked: resets are whole seconds.
                    let wait = wait + Duration::from_secs(1);
                    tracing::info!(code_host = %target, wait_secs = wait.as_secs(), attempt, "rate limited; waiting");
                    crate::telemetry::metrics::rate_limit_wait(wait);
                    on_wait(wait);
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_to_one_code_host_are_spaced_out() {
        let pacer = Pacer::default();
        let start = Instant::now();
        let interval = Duration::from_secs(1);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let pacer = pacer.clone();
            tasks.spawn(async move {
                pacer.wait_turn("github", interval).await;
                Instant::now()
            });
        }
        let mut started: Vec<Duration> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|at| at - start)
            .collect();
        started.sort();
        assert_eq!(
            started,
            [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]
        );
        // Another code host is not held up.
        let other = Instant::now();
        pacer.wait_turn("gitlab", interval).await;
        assert_eq!(Instant::now(), other);
    }

    fn limited(retry_after: Option<Duration>) -> codehost::Error {
        codehost::Error::RateLimited {
            target: "GitHub https://github.com".into(),
            retry_after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_are_waited_out_then_retried() {
        let calls = AtomicU32::new(0);
        let waits = Mutex::new(Vec::new());
        let start = Instant::now();
        let result = Backoff::default()
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(limited(Some(Duration::from_secs(30))))
                    } else {
                        Ok("done")
                    }
                },
                |wait| waits.lock().unwrap_or_else(|e| e.into_inner()).push(wait),
            )
            .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(Instant::now() - start, Duration::from_secs(62));
        assert_eq!(waits.into_inner().map(|w| w.len()).unwrap_or(0), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_waits_are_counted() {
        let metrics = crate::telemetry::metrics::handle();
        let calls = AtomicU32::new(0);
        Backoff::default()
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(limited(Some(Duration::from_secs(5))))
                    } else {
                        Ok(())
                    }
                },
                |_| {},
            )
            .await
            .expect("retried");
        metrics.run_upkeep();
        let rendered = metrics.render();
        assert!(
            rendered.contains("batchcred_rate_limit_waits_total ")
                && rendered.contains("batchcred_rate_limit_wait_seconds_total "),
            "{rendered}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_longer_than_allowed_fail_at_once() {
        let backoff = Backoff {
            max_wait: Duration::from_secs(10),
            ..Backoff::default()
        };
        let result: Result<(), _> = backoff
            .run(
                || async { Err(limited(Some(Duration::from_secs(3600)))) },
                |_| {},
            )
            .await;
        assert!(matches!(result, Err(codehost::Error::RateLimited { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded() {
        let calls = AtomicU32::new(0);
        let backoff = Backoff {
            retries: 2,
            ..Backoff::default()
        };
        let result: Result<(), _> = backoff
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(limited(None))
                },
                |_| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
