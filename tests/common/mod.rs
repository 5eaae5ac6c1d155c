//! Builders shared by the engine tests: a NATO policy, fully described clusters and workloads.
#![allow(dead_code)]

use jiff::Timestamp;
use marshal::api::{ClusterLink, MissionWorkload, SecurityPolicy};
use marshal::placement::{
    ClusterFacts, CurrentPlacement, Decision, History, Resources, Settings, Snapshot, WorkloadModel,
    model::ClearanceFacts,
};
use serde_json::{Value, json};

/// A fixed time zero plus `s` seconds.
pub fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("valid time")
}

pub fn nato() -> SecurityPolicy {
    // The exercise's own NATO policy, so tests and examples cannot drift apart.
    serde_yaml::from_str(include_str!("../../examples/baltic/00-security-policy.yaml")).expect("SecurityPolicy")
}

/// A reachable cluster cleared up to SECRET, releasable to its nation and NATO, admitting every owner,
/// with 8 cpu / 32 GiB / 110 pods free in each tier.
pub fn cluster(name: &str, nation: &str, tiers: &[&str]) -> ClusterFacts {
    ClusterFacts {
        name: name.into(),
        nation: nation.into(),
        labels: [("marshal.dev/region".to_string(), "baltic".to_string())].into(),
        clearance: ClearanceFacts {
            policy: "NATO".into(),
            classifications: ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            categories: [("Releasable To".to_string(), [nation.to_string(), "NATO".to_string()].into())].into(),
            review_by: t(365 * 86400),
            defect: None,
        },
        owner_nations: ["*".to_string()].into(),
        max_classification: None,
        tiers: tiers.iter().map(|s| s.to_string()).collect(),
        taints: vec![],
        heartbeat: Some(t(0)),
        free: tiers.iter().map(|tier| (tier.to_string(), free(8000, 32 << 30, 110))).collect(),
        capacity_observed_at: Some(t(0)),
    }
}

pub fn free(cpu_milli: i64, memory: i64, pods: i64) -> Resources {
    Resources { cpu_milli: Some(cpu_milli), memory_bytes: Some(memory), pods: Some(pods) }
}

/// A MissionWorkload owned by LTU, RESTRICTED, releasable to LTU/POL/DEU, 4 replicas of 500m/512Mi, with
/// `overrides` merged into its spec (JSON merge: objects merge, other values replace).
pub fn workload_crd(name: &str, overrides: Value) -> MissionWorkload {
    let mut spec = json!({
        "owner": "LTU",
        "confidentiality": {"policy": "NATO", "classification": "RESTRICTED",
            "categories": [{"tagName": "Releasable To", "values": ["LTU", "POL", "DEU"]}]},
        "replicas": 4,
        "template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}},
        "placement": {"mode": "Divided", "tiers": ["core", "edge"]},
        "failover": {"tolerationSeconds": 30, "failbackAfterSeconds": 300}
    });
    merge(&mut spec, overrides);
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "MissionWorkload",
        "metadata": {"name": name, "namespace": "test"}, "spec": spec
    }))
    .expect("workload")
}

pub fn workload(overrides: Value) -> WorkloadModel {
    WorkloadModel::from_crd(&workload_crd("w", overrides))
}

pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

pub fn link(from: &str, to: &str, state: &str, rtt: u32, bw: u32, observed: Timestamp) -> ClusterLink {
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "ClusterLink", "metadata": {"name": format!("{from}.{to}")},
        "spec": {"from": from, "to": to, "staleAfterSeconds": 60},
        "status": {"state": state, "rttMs": rtt, "bandwidthMbps": bw, "observedAt": observed.to_string()}
    }))
    .expect("link")
}

/// A snapshot under the NATO policy. Capacity reports never age here (`cluster()` reports at `t(0)` and tests decide
/// later): the capacity bound has tests of its own, which use [`snapshot_with`].
pub fn snapshot(clusters: Vec<ClusterFacts>, links: &[ClusterLink]) -> Snapshot {
    snapshot_with(clusters, links, Settings { capacity_stale_seconds: u32::MAX, ..Settings::default() })
}

/// A snapshot under the NATO policy with these settings.
pub fn snapshot_with(clusters: Vec<ClusterFacts>, links: &[ClusterLink], settings: Settings) -> Snapshot {
    Snapshot::new(&[nato()], clusters, links, settings)
}

/// The history a decision leaves behind (what the controller stores in status).
pub fn history(d: &Decision) -> History {
    d.history()
}

/// `cluster/tier=replicas`, sorted, for compact assertions.
pub fn placed(d: &Decision) -> Vec<String> {
    d.placements.iter().map(|p| format!("{}/{}={}", p.cluster, p.tier, p.replicas)).collect()
}

pub fn verdict<'a>(d: &'a Decision, cluster: &str, tier: &str) -> &'a marshal::placement::Verdict {
    d.verdicts
        .iter()
        .find(|v| v.cluster == cluster && v.tier == tier)
        .unwrap_or_else(|| panic!("no verdict for {cluster}/{tier}: {:#?}", d.verdicts))
}

/// A current placement of `replicas` on `cluster`/`tier`, placed as `Preferred` ten minutes before time zero.
pub fn current(cluster: &str, tier: &str, replicas: u32) -> CurrentPlacement {
    CurrentPlacement {
        cluster: cluster.into(),
        tier: tier.into(),
        replicas,
        since: t(-600),
        reason: "Preferred".into(),
        ready: None,
    }
}
