//! Leader election with kube-lease-manager. With `--leader-elect`, a replica starts writing only once it holds
//! the Lease, and exits when it loses it (the kubelet restarts it as a follower).
//!
//! **Fencing.** kube-lease-manager logs renewal errors but never reports that renewals stopped: a leader cut off
//! from the hub API would keep leading, and its push syncers would keep writing to members from stale caches
//! while a new leader takes over. So the leader also reads the Lease itself, and once the last renewal it can see
//! is older than the Lease duration less a margin ([`deadline_passed`]), it stops: the flag every writer checks
//! goes false and the process exits, before any other replica can take the Lease (which it can only once the
//! whole duration has passed since that renewal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info};

use crate::metrics::Metrics;

/// Name of the leader Lease.
pub const LEASE_NAME: &str = "marshal-leader";
/// Lease duration: a follower may take over this long after the last renewal.
pub const LEASE_DURATION_S: u64 = 15;
/// The leader renews this long before the Lease expires (every 7 s), so that a renewal it can see is at most
/// about 7 s old while the hub answers, well inside the fence.
const LEASE_GRACE_S: u64 = 8;
/// The leader fences itself this long before the Lease could expire on its own clock.
pub const FENCE_MARGIN_S: i64 = 3;
/// How often the leader reads its Lease back.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Whether a leader whose last renewal it saw at `last_renewal` must stop at `now` (pure).
pub fn deadline_passed(last_renewal: Timestamp, now: Timestamp) -> bool {
    let budget_ms = (i64::try_from(LEASE_DURATION_S).unwrap_or(15) - FENCE_MARGIN_S).saturating_mul(1000);
    now.as_millisecond().saturating_sub(last_renewal.as_millisecond()) > budget_ms
}

/// This process's identity in the Lease: the pod (or host) name and the process id.
fn identity() -> String {
    let host = std::env::var("POD_NAME").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_else(|_| "marshal".into());
    format!("{host}-{}", std::process::id())
}

/// Blocks until this replica leads, then watches the Lease in the background; on loss, or when renewals stop
/// for longer than the fence allows, clears the flag and exits the process.
pub async fn acquire(client: Client, namespace: &str, metrics: Metrics) -> Result<Arc<AtomicBool>, String> {
    let me = identity();
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(me.clone())
        .with_duration(LEASE_DURATION_S)
        .with_grace(LEASE_GRACE_S)
        .build()
        .await
        .map_err(|e| format!("cannot create the leader Lease manager in {namespace}: {e}"))?;
    let (mut rx, _task) = manager.watch().await;
    info!(namespace, identity = %me, "waiting for leadership");
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return Err("leader election stopped".into());
        }
    }
    info!(identity = %me, "leading");
    metrics.leader.set(1);
    let flag = Arc::new(AtomicBool::new(true));
    let stop = {
        let flag = flag.clone();
        let metrics = metrics.clone();
        move |why: String| {
            flag.store(false, Ordering::SeqCst);
            metrics.leader.set(0);
            error!(%why, "no longer leading: exiting so that a fresh replica takes over");
            std::process::exit(1);
        }
    };
    let on_loss = stop.clone();
    tokio::spawn(async move {
        let _keep = _task;
        loop {
            if rx.changed().await.is_err() || !*rx.borrow() {
                on_loss("lost the Lease".into());
            }
        }
    });
    let api: Api<Lease> = Api::namespaced(client, namespace);
    tokio::spawn(async move {
        let mut last = Timestamp::now();
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if let Ok(Ok(Some(lease))) = tokio::time::timeout(CHECK_EVERY, api.get_opt(LEASE_NAME)).await {
                let spec = lease.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() != Some(me.as_str()) {
                    stop(format!("the Lease is held by {:?}", spec.holder_identity));
                }
                if let Some(t) = spec.renew_time {
                    // Renewals are stamped with this process's own clock: compare them with it, never later than now.
                    last = last.max(t.0.min(Timestamp::now()));
                }
            }
            if deadline_passed(last, Timestamp::now()) {
                stop(format!("fenced: the Lease was last renewed at {last} and renewals are failing"));
            }
        }
    });
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_stops_before_a_follower_may_take_over() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        assert!(!deadline_passed(t0, at(5)), "renewed 5 s ago");
        assert!(!deadline_passed(t0, at(12)));
        assert!(deadline_passed(t0, at(13)), "past duration less margin");
        let follower_may_take_over = at(i64::try_from(LEASE_DURATION_S).unwrap());
        assert!(deadline_passed(t0, follower_may_take_over), "fenced before the Lease can expire");
        assert!(!deadline_passed(at(20), at(10)), "a renewal dated after now never fences");
    }
}
