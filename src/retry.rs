//! When to try a failed write again: exponential backoff with jitter per object, never sooner than the API
//! server's own `Retry-After` (a 429 from API Priority and Fairness carries it as `details.retryAfterSeconds`).
//! A fixed retry period makes every failing object of a member retry in the same second, which is exactly the
//! load a throttling API server asked us to spread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first retry waits about this long.
pub const FIRST: Duration = Duration::from_secs(2);
/// No backoff grows beyond this.
pub const MAX: Duration = Duration::from_secs(120);
/// A `Retry-After` is honoured up to this (a longer one is the server's mistake, not a reason to stall).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Pure: the wait before retry number `attempt` (0 for the first), for a `jitter` in [0, 1], at least
/// `retry_after`. The backoff doubles from [`FIRST`] up to [`MAX`]; the jitter takes it anywhere between half
/// and all of that ("equal jitter"), so that a batch of failures spreads out while each still backs off.
pub fn delay(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let base = FIRST.checked_mul(2u32.checked_pow(attempt.min(16)).unwrap_or(u32::MAX)).unwrap_or(MAX).min(MAX);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.5 };
    let backoff = base.mul_f64(0.5 + 0.5 * jitter);
    backoff.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// The `Retry-After` of a kube error: a 429 (or a 503 that carries one) with `details.retryAfterSeconds`;
/// a 429 without it waits one second.
pub fn retry_after(e: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(s) = e else { return None };
    let secs = s.details.as_ref().map(|d| d.retry_after_seconds).filter(|s| *s > 0);
    match (s.code, secs) {
        (429, secs) => Some(Duration::from_secs(u64::from(secs.unwrap_or(1)))),
        (_, Some(secs)) => Some(Duration::from_secs(u64::from(secs))),
        _ => None,
    }
}

/// A jitter in [0, 1] from the operating system's random source (0.5 if it cannot be read).
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// Failures in a row, per object; a success forgets the object.
#[derive(Default)]
pub struct Attempts(Mutex<BTreeMap<String, u32>>);

impl Attempts {
    /// Records a failure of `key` and returns the wait before its next try.
    pub fn failed(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let attempt = match self.0.lock() {
            Ok(mut m) => {
                let n = m.entry(key.to_string()).or_insert(0);
                let attempt = *n;
                *n = n.saturating_add(1);
                attempt
            }
            Err(_) => 0,
        };
        delay(attempt, retry_after, jitter())
    }

    /// Forgets `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.0.lock()
            && !m.is_empty()
        {
            m.remove(key);
        }
    }

    /// Failures in a row of `key`.
    pub fn of(&self, key: &str) -> u32 {
        self.0.lock().ok().and_then(|m| m.get(key).copied()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusDetails};
    use proptest::prelude::*;

    fn api(code: u16, retry_after_seconds: Option<u32>) -> kube::Error {
        let mut s = Status::failure("throttled", "TooManyRequests");
        s.code = code;
        s.details = retry_after_seconds.map(|r| StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: r,
        });
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn a_429_is_retried_no_sooner_than_the_server_asks() {
        assert_eq!(retry_after(&api(429, Some(7))), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&api(429, None)), Some(Duration::from_secs(1)), "a bare 429 still waits");
        assert_eq!(retry_after(&api(503, Some(3))), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&api(409, None)), None);
        assert_eq!(delay(0, Some(Duration::from_secs(30)), 0.0), Duration::from_secs(30));
        assert_eq!(delay(0, Some(Duration::from_secs(86_400)), 0.0), MAX_RETRY_AFTER, "capped");
    }

    #[test]
    fn failures_back_off_and_a_success_forgets() {
        let a = Attempts::default();
        let waits: Vec<Duration> = (0..10).map(|_| a.failed("x", None)).collect();
        assert!(waits[0] <= FIRST && waits[0] >= FIRST / 2, "{waits:?}");
        assert!(waits[9] >= MAX / 2 && waits[9] <= MAX, "{waits:?}");
        assert_eq!(a.of("x"), 10);
        a.succeeded("x");
        assert_eq!(a.of("x"), 0);
        assert!(a.failed("x", None) <= FIRST);
    }

    proptest! {
        #[test]
        fn the_backoff_is_bounded_monotone_in_its_base_and_spread(attempt in 0u32..1000, j in 0.0f64..=1.0) {
            let d = delay(attempt, None, j);
            let base = delay(attempt, None, 1.0);
            prop_assert!(d <= MAX && d >= base / 2 && d <= base);
            prop_assert!(delay(attempt.saturating_add(1), None, 1.0) >= base);
            prop_assert!(delay(attempt, None, 0.0) < delay(attempt, None, 1.0));
        }
    }
}
