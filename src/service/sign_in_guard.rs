//! What keeps sign-in from being a guessing oracle or a memory bomb: a
//! server-wide bound on password checks running at once (Argon2 takes
//! ~19 MiB each), and the per-client-address back-off, kept in memory
//! with a bounded number of entries. The per-account back-off lives in the
//! database (see `Service::sign_in`) so that it holds across replicas.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sign_in_backoff::{BackoffPolicy, Failures};
use crate::auth::CheckMemory;

/// Sign-in protection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Password checks that may run at once; beyond it sign-in answers 503
    /// at once instead of queueing.
    pub max_concurrent: usize,
    pub account: BackoffPolicy,
    pub address: BackoffPolicy,
    /// Client addresses remembered at most; the oldest are dropped first.
    pub max_tracked_addresses: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            max_concurrent: default_max_concurrent(),
            account: BackoffPolicy::ACCOUNT,
            address: BackoffPolicy::ADDRESS,
            max_tracked_addresses: 100_000,
        }
    }
}

/// One password check per core: Argon2 is CPU-bound, so more at once
/// only adds memory and latency.
pub fn default_max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A password check, run on a check thread with that thread's memory.
type Check = Box<dyn FnOnce(&mut CheckMemory) + Send>;

/// The server-wide sign-in state, shared by every request of a replica.
#[derive(Debug)]
pub struct SignInGuard {
    limits: SignInLimits,
    checks: Arc<Semaphore>,
    /// Feeds the check threads, started on the first sign-in: a fixed set
    /// of `max_concurrent` threads, each keeping its Argon2 memory for
    /// every check it runs, so password checks hold at most
    /// `max_concurrent` × 19 MiB however many sign-ins come, and nothing
    /// is left to the allocator to hold on to.
    workers: OnceLock<Option<Mutex<mpsc::Sender<Check>>>>,
    addresses: Mutex<AddressFailures>,
}

impl SignInGuard {
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            limits,
            checks: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            workers: OnceLock::new(),
            addresses: Mutex::new(AddressFailures::default()),
        }
    }

    pub fn limits(&self) -> &SignInLimits {
        &self.limits
    }

    /// A slot to run one password check in, if one is free now. The
    /// permit must live as long as the check itself (move it into the
    /// blocking task), not merely as long as the request.
    pub fn try_check_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.checks).try_acquire_owned().ok()
    }

    /// Runs a password check on a check thread, holding `slot` until the
    /// check is done (also if the waiting request is dropped). `None` if
    /// the check threads could not be started.
    pub async fn run_check<R: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        check: impl FnOnce(&mut CheckMemory) -> R + Send + 'static,
    ) -> Option<R> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Check = Box::new(move |memory| {
            let outcome = check(memory);
            drop(slot);
            let _ = done.send(outcome);
        });
        let workers = self.workers.get_or_init(|| self.start_workers()).as_ref()?;
        workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .ok()?;
        result.await.ok()
    }

    fn start_workers(&self) -> Option<Mutex<mpsc::Sender<Check>>> {
        let (sender, receiver) = mpsc::channel::<Check>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..self.limits.max_concurrent.max(1) {
            let receiver = Arc::clone(&receiver);
            let started = std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || {
                    let mut memory = CheckMemory::default();
                    loop {
                        let job = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(error) = started {
                tracing::error!(%error, "cannot start a password check thread");
                return None;
            }
        }
        Some(Mutex::new(sender))
    }

    /// How long a client address must still wait, if at all.
    pub fn address_retry_after(&self, address: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let key = address_key(address);
        let failures = self.lock_addresses().entries.get(&key).copied()?;
        self.limits.address.retry_after(&failures, now)
    }

    /// Records a failed attempt from a client address.
    pub fn record_address_failure(&self, address: IpAddr, now: DateTime<Utc>) {
        let key = address_key(address);
        let policy = &self.limits.address;
        let mut table = self.lock_addresses();
        if !table.entries.contains_key(&key) {
            table.make_room(self.limits.max_tracked_addresses, policy, now);
        }
        let previous = table.entries.get(&key).copied();
        table
            .entries
            .insert(key, policy.after_failure(previous.as_ref(), now));
    }

    /// Client addresses currently remembered.
    #[cfg(test)]
    fn tracked_addresses(&self) -> usize {
        self.lock_addresses().entries.len()
    }

    fn lock_addresses(&self) -> std::sync::MutexGuard<'_, AddressFailures> {
        // The table holds no invariant a panicking holder could break.
        self.addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Failures per client address (IPv6 per /64: one host usually owns one).
#[derive(Debug, Default)]
struct AddressFailures {
    entries: HashMap<IpAddr, Failures>,
}

impl AddressFailures {
    /// Makes room for one more entry: forgotten entries go first, then the
    /// one whose last failure is oldest. Runs only when the table is full,
    /// and a new entry needs a failed password check, which the semaphore
    /// paces, so the scan cannot be made to run often.
    fn make_room(&mut self, capacity: usize, policy: &BackoffPolicy, now: DateTime<Utc>) {
        let capacity = capacity.max(1);
        if self.entries.len() < capacity {
            return;
        }
        self.entries
            .retain(|_, failures| !policy.forgotten(failures.last, now));
        while self.entries.len() >= capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, failures)| failures.last)
                .map(|(key, _)| *key)
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

/// The throttling key of an address: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64 prefix.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// The per-account throttling key: usernames compared case-insensitively,
/// so `Alice` and `alice` share one count. Names that cannot be usernames
/// have none (no account can have them; the address rule still counts).
pub fn account_key(username: &str) -> Option<String> {
    crate::domain::Username::parse(username.trim())
        .ok()
        .map(|name| name.as_str().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn guard(max_tracked_addresses: usize) -> SignInGuard {
        SignInGuard::new(SignInLimits {
            max_concurrent: 1,
            account: BackoffPolicy::ACCOUNT,
            address: BackoffPolicy {
                free_attempts: 2,
                ..BackoffPolicy::ADDRESS
            },
            max_tracked_addresses,
        })
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn the_check_slots_are_bounded_and_released() {
        let guard = guard(10);
        let first = guard.try_check_slot();
        assert!(first.is_some());
        assert!(guard.try_check_slot().is_none(), "only one slot");
        drop(first);
        assert!(guard.try_check_slot().is_some(), "released with the permit");
    }

    #[tokio::test]
    async fn checks_run_on_the_check_threads_and_release_their_slot() {
        let guard = guard(10);
        let slot = guard.try_check_slot();
        let thread = guard
            .run_check(slot.unwrap_or_else(|| unreachable!()), |_| {
                std::thread::current().name().map(str::to_owned)
            })
            .await;
        assert_eq!(thread, Some(Some("password-check-0".to_owned())));
        assert!(guard.try_check_slot().is_some(), "slot released");
    }

    #[test]
    fn an_address_waits_after_its_free_attempts() {
        let guard = guard(10);
        let client = ip("192.0.2.7");
        guard.record_address_failure(client, at(0));
        guard.record_address_failure(client, at(0));
        assert_eq!(
            guard.address_retry_after(client, at(0)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(guard.address_retry_after(client, at(1)), None);
        assert_eq!(guard.address_retry_after(ip("192.0.2.8"), at(0)), None);
    }

    #[test]
    fn ipv6_hosts_are_throttled_per_64_prefix_and_mapped_ipv4_as_ipv4() {
        let guard = guard(10);
        guard.record_address_failure(ip("2001:db8:1:2::1"), at(0));
        guard.record_address_failure(ip("2001:db8:1:2:ffff::9"), at(0));
        assert!(
            guard
                .address_retry_after(ip("2001:db8:1:2::77"), at(0))
                .is_some()
        );
        assert!(
            guard
                .address_retry_after(ip("2001:db8:1:3::1"), at(0))
                .is_none()
        );
        guard.record_address_failure(ip("::ffff:192.0.2.1"), at(0));
        guard.record_address_failure(ip("192.0.2.1"), at(0));
        assert!(guard.address_retry_after(ip("192.0.2.1"), at(0)).is_some());
    }

    #[test]
    fn the_address_table_stays_bounded_dropping_forgotten_then_oldest() {
        let guard = guard(3);
        guard.record_address_failure(ip("192.0.2.1"), at(0));
        guard.record_address_failure(ip("192.0.2.2"), at(10));
        guard.record_address_failure(ip("192.0.2.3"), at(20));
        guard.record_address_failure(ip("192.0.2.4"), at(30));
        assert_eq!(guard.tracked_addresses(), 3);
        let table = guard.lock_addresses();
        assert!(!table.entries.contains_key(&ip("192.0.2.1")), "oldest went");
        drop(table);
        // An hour later every entry is forgotten: one scan clears them all.
        guard.record_address_failure(ip("192.0.2.9"), at(4000));
        assert_eq!(guard.tracked_addresses(), 1);
        for n in 0..1000 {
            guard.record_address_failure(ip(&format!("10.0.{}.{}", n / 250, n % 250)), at(5000));
        }
        assert_eq!(guard.tracked_addresses(), 3);
    }

    #[test]
    fn account_keys_ignore_case_and_refuse_non_usernames() {
        assert_eq!(account_key("Alice").as_deref(), Some("alice"));
        assert_eq!(account_key(" alice ").as_deref(), Some("alice"));
        assert_eq!(account_key(&"x".repeat(100)), None);
        assert_eq!(account_key("a b"), None);
    }
}
