//! The write budget of one member cluster: a token bucket (GCRA, from `governor`) in front of every mutating
//! request the syncer sends to that member. Reads and watches are not counted. A storm of hundreds of
//! workloads created or moved at once reaches the member at no more than `per_second` writes per second, after
//! an initial burst of at most `burst`.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;

use crate::metrics::Metrics;

/// Writes per second and burst of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Sustained writes per second (default 20, the Kubernetes churn SLO envelope).
    pub per_second: NonZeroU32,
    /// Bucket size: writes allowed at once after a quiet period (default: one second's worth).
    pub burst: NonZeroU32,
}

impl Default for Budget {
    fn default() -> Self {
        let twenty = NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN);
        Budget { per_second: twenty, burst: twenty }
    }
}

impl Budget {
    /// A budget of `per_second` writes per second with a burst of `burst` (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        Budget { per_second: nz(per_second), burst: nz(burst) }
    }

    fn limiter(self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(Quota::per_second(self.per_second).allow_burst(self.burst))
    }
}

/// Whether a request changes the member's state.
pub fn is_write(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// The tower service behind a budgeted client: waits for a token before each write, then sends it with the
/// member client.
#[derive(Clone)]
struct Budgeted {
    inner: Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    metrics: Metrics,
    cluster: String,
}

impl tower::Service<Request<Body>> for Budgeted {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if is_write(req.method()) && this.limiter.check().is_err() {
                let waited = Instant::now();
                this.limiter.until_ready().await;
                this.metrics
                    .write_budget_wait_seconds_total
                    .with_label_values(&[&this.cluster])
                    .inc_by(waited.elapsed().as_secs_f64());
            }
            this.inner.send(req).await
        })
    }
}

/// `member` with `budget` in front of its writes. One bucket per call: call it once per member.
pub fn budgeted(member: Client, budget: Budget, metrics: Metrics, cluster: &str) -> Client {
    let ns = member.default_namespace().to_string();
    let svc = Budgeted { inner: member, limiter: Arc::new(budget.limiter()), metrics, cluster: cluster.to_string() };
    Client::new(svc, ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mutating_verbs_are_writes() {
        assert!(is_write(&Method::POST) && is_write(&Method::PUT) && is_write(&Method::PATCH));
        assert!(is_write(&Method::DELETE));
        assert!(!is_write(&Method::GET) && !is_write(&Method::HEAD) && !is_write(&Method::OPTIONS));
    }

    #[test]
    fn budget_never_zero() {
        let b = Budget::new(0, 0);
        assert_eq!((b.per_second.get(), b.burst.get()), (1, 1));
        assert_eq!(Budget::default(), Budget::new(20, 20));
    }

    /// A client whose "API server" answers every request at once and records its method.
    fn recording_client(seen: Arc<std::sync::Mutex<Vec<(Method, Instant)>>>) -> Client {
        let svc = tower::service_fn(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                if let Ok(mut s) = seen.lock() {
                    s.push((req.method().clone(), Instant::now()));
                }
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(b"{}".to_vec())))
            }
        });
        Client::new(svc, "default")
    }

    #[tokio::test]
    async fn writes_wait_for_tokens_and_reads_do_not() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let metrics = Metrics::new().expect("metrics");
        let client = budgeted(recording_client(seen.clone()), Budget::new(10, 5), metrics.clone(), "m");
        let start = Instant::now();
        for i in 0..20 {
            let method = if i % 2 == 0 { Method::PATCH } else { Method::GET };
            let req = Request::builder().method(method).uri("/api/v1/namespaces").body(Body::empty()).expect("req");
            client.send(req).await.expect("send");
        }
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 20);
        // 10 writes: 5 from the burst, 5 more at 10/s, so the last write goes out no sooner than ~0.5 s.
        let last_write = seen.iter().filter(|(m, _)| *m == Method::PATCH).map(|(_, t)| *t).max().expect("writes");
        assert!(last_write.duration_since(start).as_millis() >= 380, "{:?}", last_write.duration_since(start));
        let waited = metrics.write_budget_wait_seconds_total.with_label_values(&["m"]).get();
        assert!(waited > 0.3, "wait recorded: {waited}");
    }

    #[test]
    fn bucket_allows_the_burst_then_refuses() {
        let l = Budget::new(20, 5).limiter();
        let allowed = (0..50).filter(|_| l.check().is_ok()).count();
        // Five at once, and maybe one more if the test straddles a 50 ms token.
        assert!((5..=6).contains(&allowed), "{allowed}");
    }
}
