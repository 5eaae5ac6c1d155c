//! Capacity per tier: a pure summary of the member's Nodes and Pods, and the loop that reports it into
//! `MemberCluster.status.capacity` only when it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tracing::{debug, warn};

use super::SyncContext;
use super::error::Error;
use super::member_status;
use crate::api::{ResourceAmounts, TIER_LABEL, TierCapacity};
use crate::placement::quantity::{parse_milli, parse_units};

/// How long node changes may keep arriving before the capacity is observed.
const NODE_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// cpu (millicores), memory (bytes), pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Amounts {
    cpu: i64,
    memory: i64,
    pods: i64,
}

impl Amounts {
    fn add(&mut self, o: Amounts) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        self.pods += o.pods;
    }

    fn render(self) -> ResourceAmounts {
        ResourceAmounts {
            cpu: Some(format!("{}m", self.cpu)),
            memory: Some(self.memory.to_string()),
            pods: Some(self.pods.to_string()),
        }
    }
}

fn qty<'a>(map: Option<&'a BTreeMap<String, Quantity>>, name: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(name)).map(|q| q.0.as_str())
}

/// A container's request for `name`, with the limit standing in for a missing request.
fn container_amount(c: &Container, name: &str, parse: fn(&str) -> Option<i64>) -> i64 {
    let r = c.resources.as_ref();
    qty(r.and_then(|r| r.requests.as_ref()), name)
        .or_else(|| qty(r.and_then(|r| r.limits.as_ref()), name))
        .and_then(parse)
        .unwrap_or(0)
}

/// A pod's effective request: the sum over containers, or the largest init container if that is larger, plus
/// the pod overhead; one pod slot.
fn pod_request(pod: &Pod) -> Amounts {
    let Some(spec) = &pod.spec else { return Amounts { pods: 1, ..Amounts::default() } };
    let one = |name: &str, parse: fn(&str) -> Option<i64>| {
        let sum: i64 = spec.containers.iter().map(|c| container_amount(c, name, parse)).sum();
        let init = spec.init_containers.iter().flatten().map(|c| container_amount(c, name, parse)).max().unwrap_or(0);
        let overhead = qty(spec.overhead.as_ref(), name).and_then(parse).unwrap_or(0);
        sum.max(init) + overhead
    };
    Amounts { cpu: one("cpu", parse_milli), memory: one("memory", parse_units), pods: 1 }
}

fn node_ready(n: &Node) -> bool {
    let schedulable = !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

fn terminated(p: &Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Summarises nodes and pods per tier (node label `marshal.dev/tier`). `free` is allocatable of the ready
/// nodes minus the requests of every running pod bound to them and of pending unbound pods that select the
/// tier; a tier whose pods ask for more than it has reports `0` (and is logged), never a negative amount.
pub fn summarise(nodes: &[Node], pods: &[Pod]) -> BTreeMap<String, TierCapacity> {
    let mut alloc: BTreeMap<String, Amounts> = BTreeMap::new();
    let mut counts: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut ready_node_tier: BTreeMap<&str, &str> = BTreeMap::new();
    for n in nodes {
        let Some(tier) = n.metadata.labels.as_ref().and_then(|l| l.get(TIER_LABEL)) else { continue };
        let entry = counts.entry(tier.clone()).or_default();
        entry.0 += 1;
        let a = alloc.entry(tier.clone()).or_default();
        if !node_ready(n) {
            continue;
        }
        entry.1 += 1;
        if let Some(name) = n.metadata.name.as_deref() {
            ready_node_tier.insert(name, tier);
        }
        let allocatable = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
        a.add(Amounts {
            cpu: qty(allocatable, "cpu").and_then(parse_milli).unwrap_or(0),
            memory: qty(allocatable, "memory").and_then(parse_units).unwrap_or(0),
            pods: qty(allocatable, "pods").and_then(parse_units).unwrap_or(0),
        });
    }
    let mut used: BTreeMap<String, Amounts> = BTreeMap::new();
    for p in pods.iter().filter(|p| !terminated(p)) {
        let spec = p.spec.as_ref();
        // A pod on a ready node uses that node's tier. A pending pod, or one stranded on a node that is gone or
        // NotReady, still needs room in the tier it selects: counting it makes the shortfall visible at once,
        // before the pod garbage collector replaces it.
        let selected = || spec.and_then(|s| s.node_selector.as_ref()).and_then(|s| s.get(TIER_LABEL)).cloned();
        let tier = match spec.and_then(|s| s.node_name.as_deref()) {
            Some(node) => ready_node_tier.get(node).map(|t| t.to_string()).or_else(selected),
            None => selected(),
        };
        if let Some(tier) = tier.filter(|t| alloc.contains_key(t)) {
            used.entry(tier).or_default().add(pod_request(p));
        }
    }
    alloc
        .into_iter()
        .map(|(tier, a)| {
            let u = used.get(&tier).copied().unwrap_or_default();
            let free = Amounts { cpu: a.cpu - u.cpu, memory: a.memory - u.memory, pods: a.pods - u.pods };
            if free.cpu < 0 || free.memory < 0 || free.pods < 0 {
                debug!(%tier, ?a, used = ?u, "pods in the tier request more than its ready nodes offer: free is negative");
            }
            let (nodes, ready_nodes) = counts.get(&tier).copied().unwrap_or_default();
            (tier, TierCapacity { nodes, ready_nodes, allocatable: a.render(), free: free.render() })
        })
        .collect()
}

/// Reads the member's nodes and pods and summarises them.
pub async fn observe(member: &Client) -> Result<BTreeMap<String, TierCapacity>, Error> {
    let nodes =
        Api::<Node>::all(member.clone()).list(&ListParams::default()).await.map_err(Error::member("list nodes"))?;
    let lp = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let pods = Api::<Pod>::all(member.clone()).list(&lp).await.map_err(Error::member("list pods"))?;
    Ok(summarise(&nodes.items, &pods.items))
}

/// Observes every `capacity_interval`, and at once (after a short settling delay) when a Node changes, so a lost
/// or NotReady node moves work within seconds; reports when the summary changed, and renews an unchanged report's
/// `observedAt` every 1.5 intervals, so that the hub can tell a current report from a stale one (capacity older than
/// the hub's `--capacity-stale`, three intervals by default, is unknown there).
pub async fn run(ctx: Arc<SyncContext>, cluster: String, member: Client) -> Result<(), Error> {
    let mut last: Option<BTreeMap<String, TierCapacity>> = None;
    let mut reported: Option<tokio::time::Instant> = None;
    let renew_after = ctx.config.capacity_interval * 3 / 2;
    let mut tick = tokio::time::interval(ctx.config.capacity_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let nodes = watcher(Api::<Node>::all(member.clone()), watcher::Config::default().any_semantic()).default_backoff();
    let mut nodes = std::pin::pin!(nodes);
    let mut watching = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = nodes.next(), if watching => match event {
                Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)) => {
                    // Let a burst of node changes (a rack going away) settle into one observation.
                    tokio::time::sleep(NODE_SETTLE).await;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    debug!(%cluster, error = %e, "node watch failed; retrying with backoff");
                    continue;
                }
                None => {
                    watching = false;
                    continue;
                }
            },
        }
        let summary = match observe(&member).await {
            Ok(s) => s,
            Err(e) => {
                debug!(%cluster, error = %e, "capacity not observed");
                continue;
            }
        };
        if last.as_ref() == Some(&summary) && reported.is_some_and(|t| t.elapsed() < renew_after) {
            continue;
        }
        let result = member_status::update(&ctx, &cluster, |s, _| {
            s.capacity = summary.clone();
            s.observed_at = Some(member_status::now());
        })
        .await;
        match result {
            Ok(_) => {
                last = Some(summary);
                reported = Some(tokio::time::Instant::now());
            }
            Err(e) => warn!(%cluster, error = %e, "capacity not reported"),
        }
    }
}

/// Tiers present in a summary (for logs and tests).
pub fn tiers(summary: &BTreeMap<String, TierCapacity>) -> BTreeSet<&str> {
    summary.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, tier: &str, cpu: &str, ready: bool, unschedulable: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {TIER_LABEL: tier}},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .unwrap()
    }

    fn pod(node: Option<&str>, selector: Option<&str>, phase: &str, containers: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": containers});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        if let Some(t) = selector {
            spec["nodeSelector"] = json!({TIER_LABEL: t});
        }
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase}})).unwrap()
    }

    fn c(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    #[test]
    fn groups_by_tier_and_counts_ready_nodes() {
        let nodes = [
            node("core-0", "core", "8", true, false),
            node("core-1", "core", "8", true, false),
            node("core-2", "core", "8", true, true),
            node("edge-0", "edge", "2", false, false),
        ];
        let s = summarise(&nodes, &[]);
        assert_eq!(tiers(&s), BTreeSet::from(["core", "edge"]));
        let core = &s["core"];
        assert_eq!((core.nodes, core.ready_nodes), (3, 2));
        assert_eq!(core.allocatable.cpu.as_deref(), Some("16000m"));
        assert_eq!(core.allocatable.memory.as_deref(), Some(&*(64i64 << 30).to_string()));
        assert_eq!(core.allocatable.pods.as_deref(), Some("220"));
        assert_eq!(core.free, core.allocatable);
        assert_eq!((s["edge"].nodes, s["edge"].ready_nodes), (1, 0));
        assert_eq!(s["edge"].allocatable.cpu.as_deref(), Some("0m"));
    }

    #[test]
    fn free_subtracts_bound_and_pending_pods() {
        let nodes = [node("core-0", "core", "8", true, false), node("core-1", "core", "8", false, false)];
        let init = json!([{"name": "i", "image": "i", "resources": {"requests": {"cpu": "3"}}}]);
        let mut with_init = pod(Some("core-0"), None, "Running", json!([c("500m", "1Gi"), c("500m", "1Gi")]));
        if let Some(spec) = with_init.spec.as_mut() {
            spec.init_containers = serde_json::from_value(init).unwrap();
        }
        let limits_only =
            json!([{"name": "c", "image": "i", "resources": {"limits": {"cpu": "250m", "memory": "1Gi"}}}]);
        let pods = [
            with_init,                                                      // cpu max(1000, 3000) = 3000m
            pod(Some("core-0"), None, "Running", limits_only),              // 250m
            pod(None, Some("core"), "Pending", json!([c("1", "2Gi")])),     // pending, selects core
            pod(Some("core-0"), None, "Succeeded", json!([c("4", "1Gi")])), // terminated: ignored
            pod(Some("core-1"), None, "Running", json!([c("4", "1Gi")])),   // on a not-ready node
            pod(None, Some("edge"), "Pending", json!([c("1", "1Gi")])),     // tier not present
        ];
        let s = summarise(&nodes, &pods);
        let free = &s["core"].free;
        assert_eq!(free.cpu.as_deref(), Some("3750m"));
        assert_eq!(free.memory.as_deref(), Some(&*((32i64 - 5) << 30).to_string()));
        assert_eq!(free.pods.as_deref(), Some("107"));
    }

    #[test]
    fn overcommitted_tier_reports_the_shortfall() {
        let nodes = [node("core-0", "core", "1", true, false)];
        let pods = [pod(Some("core-0"), None, "Running", json!([c("2", "1Gi")]))];
        let s = summarise(&nodes, &pods);
        assert_eq!(s["core"].free.cpu.as_deref(), Some("-1000m"));
        assert_eq!(s["core"].free.pods.as_deref(), Some("109"));
    }

    #[test]
    fn pods_stranded_on_a_lost_node_count_against_their_tier() {
        // Four 1-cpu replicas on 2-cpu edge nodes: edge-1 was deleted, edge-2 is NotReady, edge-0 keeps its two.
        let nodes = [node("edge-0", "edge", "2", true, false), node("edge-2", "edge", "2", false, false)];
        let pods = [
            pod(Some("edge-0"), Some("edge"), "Running", json!([c("1", "1Gi")])),
            pod(Some("edge-0"), Some("edge"), "Running", json!([c("1", "1Gi")])),
            pod(Some("edge-1"), Some("edge"), "Running", json!([c("1", "1Gi")])), // node deleted
            pod(Some("edge-2"), Some("edge"), "Running", json!([c("1", "1Gi")])), // node NotReady
            pod(Some("gone"), None, "Running", json!([c("1", "1Gi")])),           // no tier: not counted
        ];
        let s = summarise(&nodes, &pods);
        assert_eq!(s["edge"].free.cpu.as_deref(), Some("-2000m"), "{:?}", s["edge"]);
        assert_eq!(s["edge"].ready_nodes, 1);
    }
}
