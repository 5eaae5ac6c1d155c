//! Property tests of the engine's invariants over random federations and workloads.

mod common;

use std::collections::BTreeMap;

use common::*;
use marshal::api::{ClusterTaint, TaintEffect};
use marshal::placement::{ClusterFacts, Decision, History, Reason, Snapshot, WorkloadModel, decide};
use proptest::prelude::*;
use serde_json::json;

const NATIONS: [&str; 6] = ["POL", "DEU", "LTU", "LVA", "EST", "FRA"];
const LEVELS: [&str; 5] = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "COSMIC TOP SECRET"];

#[derive(Clone, Debug)]
struct ClusterGen {
    nation: usize,
    core: bool,
    edge: bool,
    cleared: [bool; 5],
    held: Vec<usize>,
    holds_nato: bool,
    owners: Option<Vec<usize>>,
    max_class: Option<usize>,
    stale: bool,
    expired: bool,
    taint: u8,
    cpu: [i64; 2],
    region: bool,
}

fn cluster_gen() -> impl Strategy<Value = ClusterGen> {
    (
        (0..NATIONS.len(), any::<bool>(), any::<bool>(), proptest::array::uniform5(proptest::bool::weighted(0.85))),
        (proptest::collection::vec(0..NATIONS.len(), 0..3), proptest::bool::weighted(0.75)),
        (
            proptest::option::weighted(0.3, proptest::collection::vec(0..NATIONS.len(), 1..3)),
            proptest::option::weighted(0.3, 0..5usize),
        ),
        (
            proptest::bool::weighted(0.15),
            proptest::bool::weighted(0.05),
            0u8..12,
            [0i64..12_000, 0i64..4_000],
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (nation, core, edge, cleared),
                (held, holds_nato),
                (owners, max_class),
                (stale, expired, taint, cpu, region),
            )| {
                ClusterGen {
                    nation,
                    core,
                    edge,
                    cleared,
                    held,
                    holds_nato,
                    owners,
                    max_class,
                    stale,
                    expired,
                    taint,
                    cpu,
                    region,
                }
            },
        )
}

fn build(i: usize, g: &ClusterGen) -> ClusterFacts {
    let mut tiers = vec![];
    if g.core || !g.edge {
        tiers.push("core");
    }
    if g.edge {
        tiers.push("edge");
    }
    let mut c = cluster(&format!("c{i}-{}", NATIONS[g.nation].to_lowercase()), NATIONS[g.nation], &tiers);
    c.clearance.classifications =
        LEVELS.iter().zip(g.cleared).filter(|(_, on)| *on).map(|(l, _)| l.to_string()).collect();
    let mut held: std::collections::BTreeSet<String> = g.held.iter().map(|&n| NATIONS[n].to_string()).collect();
    if g.holds_nato {
        held.insert("NATO".into());
    }
    c.clearance.categories = [("Releasable To".to_string(), held)].into();
    if let Some(o) = &g.owners {
        c.owner_nations = o.iter().map(|&n| NATIONS[n].to_string()).collect();
    }
    c.max_classification = g.max_class.map(|m| LEVELS[m].to_string());
    if g.stale {
        c.heartbeat = Some(t(-60));
    }
    if g.expired {
        c.clearance.review_by = t(-1);
    }
    c.taints = match g.taint {
        0 => vec![ClusterTaint { key: "maint".into(), value: None, effect: TaintEffect::NoSchedule }],
        1 => vec![ClusterTaint { key: "maint".into(), value: None, effect: TaintEffect::NoExecute }],
        _ => vec![],
    };
    for (k, tier) in ["core", "edge"].iter().enumerate() {
        if c.free.contains_key(*tier) {
            c.free.insert(tier.to_string(), free(g.cpu[k], 16 << 30, 50));
        }
    }
    if !g.region {
        c.labels.insert("marshal.dev/region".into(), "central".into());
    }
    c
}

fn workload_gen() -> impl Strategy<Value = WorkloadModel> {
    (
        (0..NATIONS.len(), 0..4usize, proptest::collection::vec(0..NATIONS.len(), 1..4), proptest::bool::weighted(0.6)),
        (proptest::collection::vec(0..NATIONS.len(), 0..3), 0..10i32, any::<bool>(), 0..4usize),
        (proptest::collection::vec(0..NATIONS.len(), 0..3), 1..4u32, proptest::option::of(1..5u32), 100..2000i64, any::<bool>()),
    )
        .prop_map(|((owner, class, rel, rel_nato), (residency, replicas, duplicated, tiers), (preferred, min_nations, max_per, cpu, selector))| {
            let mut values: Vec<String> = rel.iter().map(|&n| NATIONS[n].to_string()).collect();
            if rel_nato {
                values.push("NATO".into());
            }
            values.sort();
            values.dedup();
            let tiers = match tiers {
                0 => json!([]),
                1 => json!(["core"]),
                2 => json!(["edge"]),
                _ => json!(["edge", "core"]),
            };
            let mut placement = json!({
                "mode": if duplicated { "Duplicated" } else { "Divided" },
                "tiers": tiers,
                "preferredNations": preferred.iter().map(|&n| NATIONS[n]).collect::<std::collections::BTreeSet<_>>(),
                "spread": {"minNations": min_nations, "maxReplicasPerCluster": max_per},
            });
            if selector {
                placement["clusterSelector"] = json!({"matchLabels": {"marshal.dev/region": "baltic"}});
            }
            workload(json!({
                "owner": NATIONS[owner],
                "confidentiality": {"classification": LEVELS[class], "categories": [{"tagName": "Releasable To", "values": values}]},
                "residency": residency.iter().map(|&n| NATIONS[n]).collect::<std::collections::BTreeSet<_>>(),
                "replicas": replicas,
                "placement": placement,
                "template": {"spec": {"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": "256Mi"}}}]}},
            }))
        })
}

fn fed() -> impl Strategy<Value = (Vec<ClusterFacts>, WorkloadModel)> {
    (proptest::collection::vec(cluster_gen(), 1..7), workload_gen())
        .prop_map(|(gs, w)| (gs.iter().enumerate().map(|(i, g)| build(i, g)).collect(), w))
}

/// An independent statement of the access rules, checked against every placement.
fn allowed(c: &ClusterFacts, w: &WorkloadModel) -> Result<(), String> {
    let class = &w.label.classification;
    if !c.clearance.classifications.contains(class) {
        return Err(format!("{} not cleared for {class}", c.name));
    }
    let held = c.clearance.categories.get("Releasable To").cloned().unwrap_or_default();
    for cat in &w.label.categories {
        if !cat.values.iter().any(|v| held.contains(v) || *v == c.nation) {
            return Err(format!("{} not releasable ({:?})", c.name, cat.values));
        }
    }
    if !w.residency.is_empty() && !w.residency.contains(&c.nation) {
        return Err(format!("{} outside residency", c.name));
    }
    if !c.owner_nations.contains("*") && !c.owner_nations.contains(&w.owner) {
        return Err(format!("{} refuses owner {}", c.name, w.owner));
    }
    if let Some(max) = &c.max_classification {
        let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
        if rank(class) > rank(max) {
            return Err(format!("{} caps at {max}", c.name));
        }
    }
    if c.clearance.review_by <= t(0) {
        return Err(format!("{} accreditation expired", c.name));
    }
    Ok(())
}

fn check_invariant_a(d: &Decision, snap: &Snapshot, w: &WorkloadModel) -> Result<(), TestCaseError> {
    for p in &d.placements {
        let c = &snap.clusters[snap.cluster_index(&p.cluster).expect("cluster")];
        if let Err(why) = allowed(c, w) {
            return Err(TestCaseError::fail(format!("placement violates sovereignty: {why}")));
        }
        if d.frozen {
            continue; // a fleet freeze keeps what runs (minus what sovereignty revokes), as checked above
        }
        let v = d.verdicts.iter().find(|v| v.cluster == p.cluster && v.tier == p.tier);
        let v = v.ok_or_else(|| TestCaseError::fail(format!("no verdict for placement {p:?}")))?;
        let tolerated = v.tolerated_until.is_some() && v.reason.is_transient();
        prop_assert!(v.eligible || tolerated, "placed on a non-eligible candidate: {v:?}");
    }
    Ok(())
}

/// What the members report once the placements of `d` run: free capacity minus what they use.
fn running(snap: &Snapshot, d: &Decision, w: &WorkloadModel) -> Snapshot {
    let mut out = snap.clone();
    for p in &d.placements {
        let c = out.cluster_index(&p.cluster).expect("cluster");
        let f = out.clusters[c].free.get_mut(&p.tier).expect("tier");
        let n = i64::from(p.replicas);
        f.cpu_milli = f.cpu_milli.map(|x| x - w.request.cpu_milli * n);
        f.memory_bytes = f.memory_bytes.map(|x| x - w.request.memory_bytes * n);
        f.pods = f.pods.map(|x| x - n);
    }
    out
}

fn slots(d: &Decision) -> BTreeMap<(String, String), u32> {
    d.placements.iter().map(|p| ((p.cluster.clone(), p.tier.clone()), p.replicas)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 20_000, .. ProptestConfig::default() })]

    /// a. Nothing is placed on a candidate that is not eligible, nor outside releasability, residency or
    /// host admission; e. Divided never places more than requested.
    #[test]
    fn placements_are_eligible_and_bounded((clusters, w) in fed()) {
        let snap = snapshot(clusters, &[]);
        let d = decide(&w, &snap, &History::default(), t(0));
        check_invariant_a(&d, &snap, &w)?;
        if w.placement.mode == marshal::api::PlacementMode::Divided {
            prop_assert!(d.placed() <= w.replicas);
        }
        for v in &d.verdicts {
            prop_assert_eq!(v.eligible, v.reason == Reason::Eligible);
        }
        // After a change of facts (some clusters lose their heartbeat), the invariant still holds,
        // with toleration as the only exception.
        let mut changed = running(&snap, &d, &w);
        for c in changed.clusters.iter_mut().step_by(2) {
            c.heartbeat = Some(t(-100));
        }
        let d2 = decide(&w, &changed, &history(&d), t(20));
        check_invariant_a(&d2, &changed, &w)?;
    }

    /// b. The same inputs give the same decision, whatever their order.
    #[test]
    fn order_of_inputs_does_not_matter((clusters, w) in fed(), seed in any::<u64>()) {
        let a = decide(&w, &snapshot(clusters.clone(), &[]), &History::default(), t(0));
        let mut shuffled = clusters;
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
            shuffled.swap(i, j);
        }
        let b = decide(&w, &snapshot(shuffled, &[]), &History::default(), t(0));
        prop_assert_eq!(a, b);
    }

    /// Re-deciding on unchanged inputs changes nothing (zero writes).
    #[test]
    fn unchanged_inputs_change_nothing((clusters, w) in fed()) {
        let snap = snapshot(clusters, &[]);
        let d0 = decide(&w, &snap, &History::default(), t(0));
        let d1 = decide(&w, &running(&snap, &d0, &w), &history(&d0), t(0));
        prop_assert_eq!(&d0.placements, &d1.placements);
        prop_assert_eq!(&d0.verdicts, &d1.verdicts);
        prop_assert!(d1.moves.is_empty(), "moves on unchanged inputs: {:?}", d1.moves);
    }

    /// c. Adding an unrelated cluster, or removing one that hosts nothing, moves nothing that was placed.
    /// "Unrelated": not eligible for the workload, or the workload was already fully placed with its spread
    /// met (a better new cluster waits for the failback window). A Degraded workload may use a new cluster to
    /// restore its spread; that is the one sanctioned exception.
    #[test]
    fn unrelated_clusters_move_nothing((clusters, w) in fed(), extra in cluster_gen()) {
        let snap = snapshot(clusters.clone(), &[]);
        let d0 = decide(&w, &snap, &History::default(), t(0));
        let run = running(&snap, &d0, &w);
        let mut more = run.clusters.clone();
        more.push(build(99, &extra));
        let d1 = decide(&w, &snapshot(more, &[]), &history(&d0), t(0));
        let before = slots(&d0);
        let after = slots(&d1);
        let extra_eligible = d1.verdicts.iter().any(|v| v.cluster.starts_with("c99-") && v.eligible);
        if d0.phase == marshal::api::Phase::Placed || !extra_eligible {
            for (slot, n) in &before {
                prop_assert!(after.get(slot).copied().unwrap_or(0) >= *n, "adding a cluster moved {:?}: {:?} -> {:?}", slot, before, after);
            }
        }
        let hosting: Vec<&String> = d0.placements.iter().map(|p| &p.cluster).collect();
        let fewer: Vec<ClusterFacts> = run.clusters.iter().filter(|c| hosting.contains(&&c.name)).cloned().collect();
        if fewer.len() < clusters.len() {
            let d2 = decide(&w, &snapshot(fewer, &[]), &history(&d0), t(0));
            prop_assert_eq!(slots(&d2), before, "removing idle clusters moved work");
        }
    }

    /// d. A capacity drop on one placement moves at most the replicas that no longer fit there.
    #[test]
    fn capacity_drop_moves_only_what_no_longer_fits((clusters, mut w) in fed(), which in any::<prop::sample::Index>(), drop in 0i64..8000) {
        w.placement.mode = marshal::api::PlacementMode::Divided;
        let snap = snapshot(clusters, &[]);
        let d0 = decide(&w, &snap, &History::default(), t(0));
        prop_assume!(!d0.placements.is_empty());
        let mut running = running(&snap, &d0, &w);
        let target = &d0.placements[which.index(d0.placements.len())];
        let c = running.cluster_index(&target.cluster).expect("cluster");
        let f = running.clusters[c].free.get_mut(&target.tier).expect("tier");
        f.cpu_milli = f.cpu_milli.map(|x| x - drop);
        let still_fit = ((f.cpu_milli.unwrap_or(0) + w.request.cpu_milli * i64::from(target.replicas)).max(0) / w.request.cpu_milli) as u32;
        let d1 = decide(&w, &running, &history(&d0), t(0));
        let before = slots(&d0);
        let after = slots(&d1);
        for (slot, n) in &before {
            let now = after.get(slot).copied().unwrap_or(0);
            if slot.0 == target.cluster && slot.1 == target.tier {
                prop_assert_eq!(now, (*n).min(still_fit), "target keeps what still fits");
            } else {
                prop_assert!(now >= *n, "capacity drop elsewhere moved {:?}: {:?} -> {:?}", slot, before, after);
            }
        }
    }
}
