//! Leader election with kube-lease-manager. With `--leader-elect`, a replica starts writing only once it holds
//! the Lease, and exits when it loses it (the kubelet restarts it as a follower).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info};

use crate::metrics::Metrics;

/// Blocks until this replica leads, then watches the Lease in the background; on loss, exits the process.
pub async fn acquire(client: Client, namespace: &str, metrics: Metrics) -> Result<Arc<AtomicBool>, String> {
    let manager = LeaseManagerBuilder::new(client, "marshal-leader")
        .with_namespace(namespace)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .map_err(|e| format!("cannot create the leader Lease manager in {namespace}: {e}"))?;
    let (mut rx, _task) = manager.watch().await;
    info!(namespace, "waiting for leadership");
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return Err("leader election stopped".into());
        }
    }
    info!("leading");
    metrics.leader.set(1);
    let flag = Arc::new(AtomicBool::new(true));
    let watch_flag = flag.clone();
    tokio::spawn(async move {
        let _keep = _task;
        loop {
            if rx.changed().await.is_err() || !*rx.borrow() {
                watch_flag.store(false, Ordering::Relaxed);
                metrics.leader.set(0);
                error!("lost leadership: exiting so that a fresh replica takes over");
                std::process::exit(1);
            }
        }
    });
    Ok(flag)
}
