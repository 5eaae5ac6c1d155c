//! Cluster health from heartbeat Leases, and fleet-level metrics. kube watches notice a dead stream only after
//! minutes, so reachability is the age of the member's heartbeat, checked every second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use prometheus::core::{MetricVec, MetricVecBuilder};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use crate::api::conditions::{ConditionSpec, merge};
use crate::api::{FIELD_MANAGER, LinkState, MemberCluster, Phase};
use crate::placement::quantity::{parse_signed_milli, parse_signed_units};

/// The conditions the controller owns on a MemberCluster, from its heartbeat and accreditation.
pub fn cluster_conditions(
    mc: &MemberCluster,
    heartbeat: Option<Timestamp>,
    grace_s: u32,
    now: Timestamp,
) -> Vec<ConditionSpec> {
    let reachable = match heartbeat {
        None => ConditionSpec {
            type_: "Reachable",
            status: false,
            reason: "NoHeartbeat".into(),
            message: "no heartbeat Lease yet: check the member's syncer (push) or agent (pull) and its credentials"
                .into(),
        },
        Some(hb) if now.as_millisecond() - hb.as_millisecond() > i64::from(grace_s) * 1000 => ConditionSpec {
            type_: "Reachable",
            status: false,
            reason: "HeartbeatExpired".into(),
            message: format!("no heartbeat since {hb} (grace {grace_s}s): the member API or the link to it is down"),
        },
        Some(_) => ConditionSpec {
            type_: "Reachable",
            status: true,
            reason: "HeartbeatFresh".into(),
            message: format!("heartbeat within {grace_s}s"),
        },
    };
    let review_by = mc.spec.clearance.review_by.0;
    let accredited = ConditionSpec {
        type_: "Accredited",
        status: now < review_by,
        reason: if now < review_by { "ClearanceValid".into() } else { "AccreditationExpired".into() },
        message: format!("clearance reviewBy {review_by}"),
    };
    vec![accredited, reachable]
}

async fn update_cluster(ctx: &Context, mc: &MemberCluster, now: Timestamp, series: &mut Series) {
    let name = mc.name_any();
    let hb = ctx.heartbeat(&name);
    let wanted = cluster_conditions(mc, ctx.judged_heartbeat(&name), ctx.settings.cluster_grace_seconds, now);
    let old = mc.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let changed = wanted
        .iter()
        .any(|w| !old.iter().any(|o| o.type_ == w.type_ && (o.status == "True") == w.status && o.reason == w.reason));
    let reachable = wanted.iter().any(|w| w.type_ == "Reachable" && w.status);
    ctx.metrics.cluster_reachable.with_label_values(&[&name]).set(i64::from(reachable));
    series.reachable.insert(labels([&name]));
    if let Some(hb) = hb {
        let age = (now.as_millisecond() - hb.as_millisecond()) as f64 / 1000.0;
        ctx.metrics.cluster_heartbeat_age_seconds.with_label_values(&[&name]).set(age);
        series.heartbeat_age.insert(labels([&name]));
    }
    // A heartbeat that went stale before this process started is not judged until the grace has passed since
    // the start: leave the recorded condition alone until then (see `Context::judged_heartbeat`).
    let grace_ms = i64::from(ctx.settings.cluster_grace_seconds) * 1000;
    let undecided = hb.is_some_and(|h| now.as_millisecond() - h.as_millisecond() > grace_ms)
        && now.as_millisecond() - ctx.started().as_millisecond() <= grace_ms;
    if !changed || undecided || !ctx.is_leader() {
        return;
    }
    let conditions = merge(&old, wanted, mc.metadata.generation, Time(now));
    let body = json!({
        "apiVersion": MemberCluster::api_version(&()), "kind": MemberCluster::kind(&()),
        "metadata": {"name": name},
        "status": {"conditions": conditions, "lastHeartbeatTime": hb.map(Time)},
    });
    let api: Api<MemberCluster> = Api::all(ctx.client.clone());
    match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
        Ok(_) => {
            ctx.metrics.write("hub", "apply", "memberclusters/status");
            let (type_, reason, note) = if reachable {
                (EventType::Normal, "Reachable", format!("{name} is reachable again"))
            } else {
                (
                    EventType::Warning,
                    "Unreachable",
                    format!("{name}: no heartbeat within {}s", ctx.settings.cluster_grace_seconds),
                )
            };
            info!(cluster = %name, reachable, "cluster reachability changed");
            ctx.event(mc, type_, reason, note).await;
        }
        Err(e) => warn!(cluster = %name, error = %e, "cannot update MemberCluster status"),
    }
}

/// The label sets of the per-cluster and per-link series one round wrote. Series absent from the next round
/// (a deleted MemberCluster, tier or ClusterLink, a heartbeat Lease gone) are removed, so that no alert keeps
/// firing for a cluster that is no longer in the fleet.
#[derive(Default)]
struct Series {
    reachable: BTreeSet<Vec<String>>,
    heartbeat_age: BTreeSet<Vec<String>>,
    free: BTreeSet<Vec<String>>,
    link_state: BTreeSet<Vec<String>>,
    link_rtt: BTreeSet<Vec<String>>,
}

impl Series {
    /// Removes from the metrics every series `self` (the last round) has and `next` has not.
    fn prune(&self, next: &Series, m: &crate::metrics::Metrics) {
        prune(&m.cluster_reachable, &self.reachable, &next.reachable);
        prune(&m.cluster_heartbeat_age_seconds, &self.heartbeat_age, &next.heartbeat_age);
        prune(&m.cluster_free, &self.free, &next.free);
        prune(&m.link_state, &self.link_state, &next.link_state);
        prune(&m.link_rtt_seconds, &self.link_rtt, &next.link_rtt);
    }
}

/// Removes the series in `old` but not in `new`.
pub fn prune<T: MetricVecBuilder>(v: &MetricVec<T>, old: &BTreeSet<Vec<String>>, new: &BTreeSet<Vec<String>>) {
    for gone in old.difference(new) {
        let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
        let _ = v.remove_label_values(&labels);
    }
}

fn labels<const N: usize>(values: [&str; N]) -> Vec<String> {
    values.iter().map(|v| (*v).to_string()).collect()
}

fn fleet_metrics(ctx: &Context, now: Timestamp, series: &mut Series) {
    let m = &ctx.metrics;
    for l in ctx.stores.links.state() {
        let s = l.status.clone().unwrap_or_default();
        let state = match s.state {
            LinkState::Unknown => 0,
            LinkState::Down => 1,
            LinkState::Degraded => 2,
            LinkState::Up => 3,
        };
        m.link_state.with_label_values(&[&l.spec.from, &l.spec.to]).set(state);
        series.link_state.insert(labels([&l.spec.from, &l.spec.to]));
        if let Some(rtt) = s.rtt_ms {
            m.link_rtt_seconds.with_label_values(&[&l.spec.from, &l.spec.to]).set(f64::from(rtt) / 1000.0);
            series.link_rtt.insert(labels([&l.spec.from, &l.spec.to]));
        }
    }
    for mc in ctx.stores.clusters.state() {
        for (tier, cap) in mc.status.as_ref().map(|s| s.capacity.clone()).unwrap_or_default() {
            let name = mc.name_any();
            let free = [
                ("cpu", cap.free.cpu.as_deref().and_then(parse_signed_milli).map(|v| v as f64 / 1000.0)),
                ("memory", cap.free.memory.as_deref().and_then(parse_signed_units).map(|v| v as f64)),
                ("pods", cap.free.pods.as_deref().and_then(parse_signed_units).map(|v| v as f64)),
            ];
            for (resource, value) in free {
                if let Some(v) = value {
                    m.cluster_free.with_label_values(&[&name, &tier, resource]).set(v);
                    series.free.insert(labels([&name, &tier, resource]));
                }
            }
        }
    }
    let mut phases: BTreeMap<&'static str, i64> =
        [("Pending", 0), ("Placed", 0), ("Degraded", 0), ("Unplaceable", 0), ("Frozen", 0)].into();
    let mut placed: BTreeMap<(String, String), i64> = BTreeMap::new();
    for w in ctx.stores.workloads.state() {
        let Ok(w) = &w.0 else { continue };
        let status = w.status.clone().unwrap_or_default();
        let phase = match status.phase {
            Phase::Pending => "Pending",
            Phase::Placed => "Placed",
            Phase::Degraded => "Degraded",
            Phase::Unplaceable => "Unplaceable",
            Phase::Frozen => "Frozen",
        };
        *phases.entry(phase).or_default() += 1;
        for p in status.placements {
            *placed.entry((p.cluster, p.tier)).or_default() += i64::from(p.replicas);
        }
    }
    for (phase, n) in phases {
        m.workloads.with_label_values(&[phase]).set(n);
    }
    m.placed_replicas.reset();
    for ((c, t), n) in placed {
        m.placed_replicas.with_label_values(&[&c, &t]).set(n);
    }
    // While the controller warms up (members' first heartbeats after a start), decisions wait anyway; judging
    // the freeze then would report a fleet that has not been heard yet as frozen.
    let frozen = ctx.warming_up(now).is_none() && crate::placement::fleet_frozen(&ctx.snapshot(), now);
    m.fleet_frozen.set(i64::from(frozen));
}

/// Runs forever: every second, reachability of every cluster and the fleet metrics.
pub async fn run(ctx: Arc<Context>) {
    ctx.wait_ready().await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut was_frozen = false;
    let mut series = Series::default();
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let mut next = Series::default();
        for mc in ctx.stores.clusters.state() {
            update_cluster(&ctx, &mc, now, &mut next).await;
        }
        fleet_metrics(&ctx, now, &mut next);
        series.prune(&next, &ctx.metrics);
        series = next;
        let frozen = ctx.metrics.fleet_frozen.get() == 1;
        if frozen != was_frozen {
            was_frozen = frozen;
            if frozen {
                warn!("fleet freeze: more than half of the clusters are unreachable; nothing moves");
            } else {
                info!("fleet freeze lifted");
            }
            if let Some(any) = ctx.stores.clusters.state().first() {
                let note = if frozen {
                    "fleet freeze: more than half of the member clusters are unreachable together; nothing moves until they return"
                } else {
                    "fleet freeze lifted"
                };
                ctx.event(
                    any.as_ref(),
                    EventType::Warning,
                    if frozen { "FleetFrozen" } else { "FleetThawed" },
                    note.into(),
                )
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_only_series_gone_from_the_round() {
        let m = crate::metrics::Metrics::new().unwrap();
        m.cluster_reachable.with_label_values(&["pol-1"]).set(1);
        m.cluster_reachable.with_label_values(&["fra-1"]).set(0);
        let old: BTreeSet<Vec<String>> = [labels(["pol-1"]), labels(["fra-1"])].into();
        let new: BTreeSet<Vec<String>> = [labels(["pol-1"])].into();
        prune(&m.cluster_reachable, &old, &new);
        let text = m.render();
        assert!(text.contains("marshal_cluster_reachable{cluster=\"pol-1\"} 1"), "{text}");
        assert!(!text.contains("fra-1"), "{text}");
    }
}
