//! The heartbeat: while the member API answers, renew the Lease `heartbeat` in the hub namespace
//! `marshal-<cluster>`. Health is this Lease's age, never a watch stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tracing::{debug, info, warn};

use super::SyncContext;
use super::error::{Error, is_conflict, is_not_found};
use crate::api::{
    HEARTBEAT_LABEL, HEARTBEAT_LEASE, LABEL_CLUSTER, MANAGED_BY, SYNCER_FIELD_MANAGER, cluster_namespace,
};

/// Time the member has to answer a probe: under the interval, so a dead member never delays the next beat.
pub fn probe_timeout(interval: Duration) -> Duration {
    (interval * 4 / 5).max(Duration::from_millis(500))
}

/// The Lease body: holder, duration = cluster grace, renewTime = now.
pub fn lease_body(cluster: &str, identity: &str, grace: Duration, now: jiff::Timestamp) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": HEARTBEAT_LEASE,
            "namespace": cluster_namespace(cluster),
            "labels": {HEARTBEAT_LABEL: "true", LABEL_CLUSTER: cluster, "app.kubernetes.io/managed-by": MANAGED_BY},
        },
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": i32::try_from(grace.as_secs()).unwrap_or(i32::MAX).max(1),
            "renewTime": MicroTime(now),
        }
    })
}

/// Probes the member; true when it answered in time.
pub async fn probe(member: &Client, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, member.apiserver_version()).await {
        Ok(Ok(_)) => true,
        // A throttled member answered: it is up, only busy (API Priority and Fairness).
        Ok(Err(e)) => is_throttled(&e),
        Err(_) => false,
    }
}

/// Whether the API server answered "too many requests".
fn is_throttled(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 429)
}

/// Creates the hub namespace of a cluster if it is missing.
pub async fn ensure_hub_namespace(ctx: &SyncContext, cluster: &str) -> Result<(), Error> {
    let ns = cluster_namespace(cluster);
    let api: Api<Namespace> = Api::all(ctx.hub.clone());
    if api.get_opt(&ns).await.map_err(Error::hub(format!("read Namespace {ns}")))?.is_some() {
        return Ok(());
    }
    let labels = [("app.kubernetes.io/managed-by", MANAGED_BY), (LABEL_CLUSTER, cluster)];
    let obj = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {
            ctx.metrics.write("hub", "create", "namespaces");
            info!(%cluster, namespace = %ns, "created hub namespace");
            Ok(())
        }
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(Error::hub(format!("create Namespace {ns}"))(e)),
    }
}

/// Renews the Lease once (creating its namespace if needed).
pub async fn renew(ctx: &SyncContext, cluster: &str, identity: &str) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(ctx.hub.clone(), &cluster_namespace(cluster));
    let pp = PatchParams::apply(SYNCER_FIELD_MANAGER).force();
    for attempt in 0..2 {
        let body = lease_body(cluster, identity, ctx.config.cluster_grace, jiff::Timestamp::now());
        match api.patch(HEARTBEAT_LEASE, &pp, &Patch::Apply(&body)).await {
            Ok(_) => {
                ctx.metrics.write("hub", "renew", "leases");
                return Ok(());
            }
            Err(e) if attempt == 0 && is_not_found(&e) => ensure_hub_namespace(ctx, cluster).await?,
            Err(e) => return Err(Error::hub("renew heartbeat Lease")(e)),
        }
    }
    Ok(())
}

/// Every `heartbeat_interval`: probe the member, renew the Lease only if it answered.
/// `up` is shared with the other loops: they wait while the member does not answer.
pub async fn run(
    ctx: Arc<SyncContext>,
    cluster: String,
    member: Client,
    identity: String,
    up_flag: Arc<AtomicBool>,
) -> Result<(), Error> {
    let interval = ctx.config.heartbeat_interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up: Option<bool> = None;
    loop {
        tick.tick().await;
        let up = probe(&member, probe_timeout(interval)).await;
        up_flag.store(up, Ordering::Relaxed);
        if was_up != Some(up) {
            if up {
                info!(%cluster, "member API answers; renewing heartbeat");
            } else {
                warn!(%cluster, "member API does not answer; heartbeat paused");
            }
            was_up = Some(up);
        }
        if !up {
            continue;
        }
        if let Err(e) = tokio::time::timeout(interval, renew(&ctx, &cluster, &identity))
            .await
            .unwrap_or_else(|_| Err(Error::Timeout("renew heartbeat Lease".into())))
        {
            debug!(%cluster, error = %e, "heartbeat not renewed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_holder_grace_and_labels() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let body = lease_body("pol-1", "syncer/pol-1", Duration::from_secs(15), now);
        assert_eq!(body["metadata"]["namespace"], "marshal-pol-1");
        assert_eq!(body["metadata"]["labels"][HEARTBEAT_LABEL], "true");
        assert_eq!(body["metadata"]["labels"][LABEL_CLUSTER], "pol-1");
        assert_eq!(body["spec"]["holderIdentity"], "syncer/pol-1");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        assert!(body["spec"]["renewTime"].as_str().unwrap().starts_with("2027-01-15T08:00:00.000000"));
        assert!(probe_timeout(Duration::from_secs(5)) < Duration::from_secs(5));
    }
}
