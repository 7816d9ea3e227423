//! The back-off arithmetic of sign-in throttling: after a number of free
//! failed attempts, each further attempt waits twice as long as the one
//! before, up to a cap. Pure functions of the failure count and the time,
//! so they are tested with any clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How one key (an account, a client address) is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures allowed before any wait.
    pub free_attempts: u32,
    /// The wait after the first failure beyond the free ones; it doubles
    /// with each further failure.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Failures are forgotten after this long without a new one (at least
    /// `max`, so a capped wait is never cut short).
    pub forget_after: Duration,
}

/// Failed attempts recorded for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last: DateTime<Utc>,
}

impl BackoffPolicy {
    /// The default for accounts: 5 free attempts, then 1 s, 2 s, 4 s … up
    /// to 15 minutes; forgotten after an hour of quiet.
    pub const ACCOUNT: Self = Self {
        free_attempts: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(3600),
    };

    /// The default for client addresses, which several people may share
    /// (NAT, an office proxy): more free attempts, the same back-off.
    pub const ADDRESS: Self = Self {
        free_attempts: 20,
        ..Self::ACCOUNT
    };

    /// How long the next attempt must wait after `failures` failures.
    pub fn wait_after(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.free_attempts) else {
            return Duration::ZERO;
        };
        // 2^31 times any base is past any sensible cap: stop doubling there.
        let factor = 1u32 << beyond.min(31);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Whether failures last recorded at `last` no longer count at `now`.
    pub fn forgotten(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(last)
            .to_std()
            .is_ok_and(|quiet| quiet >= self.forget_after.max(self.max))
    }

    /// The earliest time failures last recorded before count as forgotten.
    pub fn forget_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let forget = chrono::Duration::from_std(self.forget_after.max(self.max))
            .unwrap_or(chrono::Duration::MAX);
        now.checked_sub_signed(forget)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// How long an attempt at `now` must still wait, if at all.
    pub fn retry_after(&self, failures: &Failures, now: DateTime<Utc>) -> Option<Duration> {
        if self.forgotten(failures.last, now) {
            return None;
        }
        let wait = self.wait_after(failures.count);
        let waited = now
            .signed_duration_since(failures.last)
            .to_std()
            .unwrap_or(Duration::ZERO);
        wait.checked_sub(waited).filter(|left| !left.is_zero())
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(&self, previous: Option<&Failures>, now: DateTime<Utc>) -> Failures {
        let count = match previous {
            Some(previous) if !self.forgotten(previous.last, now) => {
                previous.count.saturating_add(1)
            }
            _ => 1,
        };
        Failures { count, last: now }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    const POLICY: BackoffPolicy = BackoffPolicy {
        free_attempts: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(900),
        forget_after: Duration::from_secs(3600),
    };

    #[test]
    fn waits_start_after_the_free_attempts_and_double_up_to_the_cap() {
        let waits: Vec<u64> = (0..=16).map(|n| POLICY.wait_after(n).as_secs()).collect();
        assert_eq!(
            waits,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
        assert_eq!(POLICY.wait_after(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn an_attempt_during_the_wait_is_told_how_long_is_left() {
        let mut clock = at(0);
        let mut failures: Option<Failures> = None;
        for _ in 0..6 {
            assert_eq!(
                failures.and_then(|f| POLICY.retry_after(&f, clock)),
                None,
                "free attempts and attempts after the wait are let through"
            );
            failures = Some(POLICY.after_failure(failures.as_ref(), clock));
            clock += chrono::Duration::seconds(2);
        }
        // Six failures, the last at 10 s: the wait is 2 s, until 12 s.
        let failures = failures.unwrap_or(Failures {
            count: 0,
            last: clock,
        });
        assert_eq!(failures.count, 6);
        let left = POLICY.retry_after(&failures, at(10) + chrono::Duration::milliseconds(500));
        assert_eq!(left, Some(Duration::from_millis(1500)));
        assert_eq!(POLICY.retry_after(&failures, at(12)), None);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_hour() {
        let many = Failures {
            count: 40,
            last: at(0),
        };
        assert_eq!(
            POLICY.retry_after(&many, at(60)),
            Some(Duration::from_secs(840))
        );
        assert_eq!(POLICY.retry_after(&many, at(3599)), None);
        assert!(!POLICY.forgotten(many.last, at(3599)));
        assert!(POLICY.forgotten(many.last, at(3600)));
        assert_eq!(POLICY.after_failure(Some(&many), at(3599)).count, 41);
        assert_eq!(POLICY.after_failure(Some(&many), at(3600)).count, 1);
        assert_eq!(POLICY.forget_before(at(3600)), at(0));
    }

    #[test]
    fn retry_after_headers_round_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
