//! Issue 13 §1, as a property: for random fleets and random current placements (several tiers per cluster,
//! clusters that have no MemberCluster, tiers that are gone, fleet freeze on and off, an invalid template on and
//! off, a missing policy), no decision keeps a replica where the sovereignty verdict fails, every current placement
//! gets a verdict, and what a missing fact holds never grows. Sovereignty is checked against an independent
//! statement of the rules, not the engine's.

mod common;

use std::collections::BTreeMap;

use common::*;
use marshal::api::{ClusterTaint, TaintEffect};
use marshal::placement::{
    ClusterFacts, CurrentPlacement, Decision, History, Settings, Snapshot, WorkloadModel, decide,
};
use proptest::prelude::*;
use serde_json::json;

const NATIONS: [&str; 5] = ["POL", "DEU", "LTU", "LVA", "FRA"];
const LEVELS: [&str; 4] = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"];
const TIERS: [&str; 3] = ["core", "edge", "gpu"];

#[derive(Clone, Debug)]
struct Gen {
    nation: usize,
    tiers: (bool, bool),
    cleared: [bool; 4],
    held: Vec<usize>,
    nato: bool,
    owners: Option<usize>,
    max_class: Option<usize>,
    stale: bool,
    expired: bool,
    taint: u8,
    refused: bool,
    capacity_stale: bool,
}

fn cluster_gen() -> impl Strategy<Value = Gen> {
    (
        (0..NATIONS.len(), (any::<bool>(), any::<bool>()), proptest::array::uniform4(proptest::bool::weighted(0.8))),
        (proptest::collection::vec(0..NATIONS.len(), 0..3), proptest::bool::weighted(0.6)),
        (proptest::option::weighted(0.2, 0..NATIONS.len()), proptest::option::weighted(0.3, 0..4usize)),
        (
            proptest::bool::weighted(0.3),
            proptest::bool::weighted(0.15),
            0u8..8,
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.2),
        ),
    )
        .prop_map(
            |(
                (nation, tiers, cleared),
                (held, nato),
                (owners, max_class),
                (stale, expired, taint, refused, capacity_stale),
            )| Gen {
                nation,
                tiers,
                cleared,
                held,
                nato,
                owners,
                max_class,
                stale,
                expired,
                taint,
                refused,
                capacity_stale,
            },
        )
}

fn build(i: usize, g: &Gen) -> ClusterFacts {
    let mut tiers = vec![];
    if g.tiers.0 || !g.tiers.1 {
        tiers.push("core");
    }
    if g.tiers.1 {
        tiers.push("edge");
    }
    let mut c = cluster(&format!("c{i}"), NATIONS[g.nation], &tiers);
    c.clearance.classifications =
        LEVELS.iter().zip(g.cleared).filter(|(_, on)| *on).map(|(l, _)| l.to_string()).collect();
    let mut held: std::collections::BTreeSet<String> = g.held.iter().map(|&n| NATIONS[n].to_string()).collect();
    if g.nato {
        held.insert("NATO".into());
    }
    c.clearance.categories = [("Releasable To".to_string(), held)].into();
    if let Some(o) = g.owners {
        c.owner_nations = [NATIONS[o].to_string()].into();
    }
    c.max_classification = g.max_class.map(|m| LEVELS[m].to_string());
    if g.expired {
        c.clearance.review_by = t(-1);
    }
    if g.capacity_stale {
        c.capacity_observed_at = Some(t(-120)); // older than the 30 s bound: unknown
    }
    c.taints = match g.taint {
        0 => vec![ClusterTaint { key: "maint".into(), value: None, effect: TaintEffect::NoSchedule }],
        1 => vec![ClusterTaint { key: "drain".into(), value: None, effect: TaintEffect::NoExecute }],
        _ => vec![],
    };
    c
}

#[derive(Clone, Debug)]
struct Case {
    clusters: Vec<ClusterFacts>,
    refused: Vec<String>,
    w: WorkloadModel,
    current: Vec<CurrentPlacement>,
    policy: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(cluster_gen(), 1..7),
        (0..NATIONS.len(), 0..4usize, proptest::collection::vec(0..NATIONS.len(), 1..3), any::<bool>()),
        (0..8i32, any::<bool>(), 0..3usize, proptest::collection::vec(0..NATIONS.len(), 0..2), proptest::bool::weighted(0.2)),
        proptest::collection::vec((0..9usize, 0..TIERS.len(), 1..5u32), 0..7),
        (any::<bool>(), proptest::bool::weighted(0.9)),
    )
        .prop_map(|(gens, (owner, class, rel, nato), (replicas, duplicated, tiers, residency, invalid), placements, (freeze, policy))| {
            let mut clusters: Vec<ClusterFacts> = gens.iter().enumerate().map(|(i, g)| build(i, g)).collect();
            let refused = gens.iter().enumerate().filter(|(_, g)| g.refused).map(|(i, _)| format!("c{i}")).collect();
            // Freeze: more than half the clusters unreachable together; otherwise only the ones drawn stale.
            for (i, (c, g)) in clusters.iter_mut().zip(&gens).enumerate() {
                if (freeze && i > 0) || g.stale {
                    c.heartbeat = Some(t(if g.stale { -25 } else { -3600 }));
                }
            }
            let mut values: Vec<String> = rel.iter().map(|&n| NATIONS[n].to_string()).collect();
            if nato {
                values.push("NATO".into());
            }
            values.sort();
            values.dedup();
            let tiers = [json!([]), json!(["core"]), json!(["edge", "core"])][tiers].clone();
            let requests = if invalid { json!({"cpu": "lots"}) } else { json!({"cpu": "100m", "memory": "64Mi"}) };
            let w = workload(json!({
                "owner": NATIONS[owner],
                "confidentiality": {"classification": LEVELS[class], "categories": [{"tagName": "Releasable To", "values": values}]},
                "residency": residency.iter().map(|&n| NATIONS[n]).collect::<std::collections::BTreeSet<_>>(),
                "replicas": replicas,
                "placement": {"mode": if duplicated { "Duplicated" } else { "Divided" }, "tiers": tiers},
                "template": {"spec": {"containers": [{"name": "a", "image": "x", "resources": {"requests": requests}}]}},
            }));
            // Current placements: clusters of the fleet (indexes beyond it are clusters without a MemberCluster),
            // any tier, including one no cluster offers; several tiers on one cluster happen.
            let current = placements
                .into_iter()
                .map(|(ci, ti, replicas)| CurrentPlacement {
                    cluster: format!("c{ci}"),
                    tier: TIERS[ti].to_string(),
                    replicas,
                    since: t(-900),
                    reason: "Preferred".into(),
                    ready: None,
                })
                .collect();
            Case { clusters, refused, w, current, policy }
        })
}

/// The sovereignty filters, stated independently: NoExecute taints, accreditation, access control, residency,
/// host admission, the member's refusal. `None`: the cluster has no MemberCluster (fails closed).
fn sovereign(c: Option<&ClusterFacts>, w: &WorkloadModel, refused: &[String]) -> Result<(), String> {
    let Some(c) = c else { return Err("no MemberCluster".into()) };
    if c.taints.iter().any(|t| t.effect == TaintEffect::NoExecute) {
        return Err(format!("{} NoExecute", c.name));
    }
    if c.clearance.review_by <= t(0) {
        return Err(format!("{} expired", c.name));
    }
    let class = &w.label.classification;
    if !c.clearance.classifications.contains(class) {
        return Err(format!("{} not cleared for {class}", c.name));
    }
    let held = c.clearance.categories.get("Releasable To").cloned().unwrap_or_default();
    if !w.label.categories.iter().all(|cat| cat.values.iter().any(|v| held.contains(v) || *v == c.nation)) {
        return Err(format!("{} not releasable", c.name));
    }
    if !w.residency.is_empty() && !w.residency.contains(&c.nation) {
        return Err(format!("{} outside residency", c.name));
    }
    if !c.owner_nations.contains("*") && !c.owner_nations.contains(&w.owner) {
        return Err(format!("{} refuses owner", c.name));
    }
    if let Some(max) = &c.max_classification {
        let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
        if rank(class) > rank(max) {
            return Err(format!("{} caps at {max}", c.name));
        }
    }
    if refused.contains(&c.name) {
        return Err(format!("{} refused", c.name));
    }
    Ok(())
}

fn run(case: &Case) -> (Snapshot, Decision, History) {
    let policies = if case.policy { vec![nato()] } else { vec![] };
    let settings = Settings { capacity_stale_seconds: 30, ..Settings::default() };
    let snap = Snapshot::new(&policies, case.clusters.clone(), &[], settings);
    let mut hist = History { placements: case.current.clone(), ..History::default() };
    hist.refused = case.refused.iter().map(|c| (c.clone(), "member clearance: refused".to_string())).collect();
    let d = decide(&case.w, &snap, &hist, t(0));
    (snap, d, hist)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn no_decision_keeps_a_replica_where_sovereignty_fails(case in case()) {
        let (snap, d, hist) = run(&case);
        let down = case.clusters.iter().filter(|c| c.heartbeat.is_none_or(|h| h < t(-15))).count();
        prop_assert_eq!(d.frozen, down * 2 > case.clusters.len(), "freeze when most clusters are unreachable: {}", d.message);
        let current: BTreeMap<(String, String), u32> = marshal::placement::normalize(&hist.placements)
            .iter()
            .map(|p| ((p.cluster.clone(), p.tier.clone()), p.replicas))
            .collect();
        for p in &d.placements {
            let c = snap.cluster_index(&p.cluster).map(|i| &snap.clusters[i]);
            prop_assert!(c.is_some(), "placed on a cluster without MemberCluster: {:?}", p);
            if case.policy {
                if let Err(why) = sovereign(c, &case.w, &case.refused) {
                    return Err(TestCaseError::fail(format!("kept a replica where sovereignty fails: {why}: {p:?}\n{}", d.message)));
                }
            } else {
                // No policy: sovereignty cannot be evaluated. What runs is held, never grown; nothing new is placed.
                let had = current.get(&(p.cluster.clone(), p.tier.clone())).copied().unwrap_or(0);
                prop_assert!(p.replicas <= had, "placed without a policy: {:?} (had {})", p, had);
                let outright = c.and_then(|c| sovereign(Some(c), &case.w, &case.refused).err().filter(|_| {
                    c.taints.iter().any(|t| t.effect == TaintEffect::NoExecute) || c.clearance.review_by <= t(0)
                        || case.refused.contains(&c.name)
                        || (!case.w.residency.is_empty() && !case.w.residency.contains(&c.nation))
                        || (!c.owner_nations.contains("*") && !c.owner_nations.contains(&case.w.owner))
                }));
                prop_assert!(outright.is_none(), "held although a fact says no: {:?}: {:?}", outright, p);
            }
        }
        // A capacity report of unknown age holds what runs there and places nothing new.
        for p in &d.placements {
            let stale = snap.cluster_index(&p.cluster).is_some_and(|i| snap.clusters[i].capacity_observed_at == Some(t(-120)));
            if stale {
                let had = current.get(&(p.cluster.clone(), p.tier.clone())).copied().unwrap_or(0);
                prop_assert!(p.replicas <= had, "placed on capacity of unknown age: {:?} (had {})", p, had);
            }
        }
        // Every current placement has a verdict, and every slot whose sovereignty fails lost its replicas.
        for (cluster, tier) in current.keys() {
            prop_assert!(d.verdicts.iter().any(|v| &v.cluster == cluster && &v.tier == tier), "no verdict for {}/{}", cluster, tier);
            let c = snap.cluster_index(cluster).map(|i| &snap.clusters[i]);
            if case.policy && sovereign(c, &case.w, &case.refused).is_err() {
                prop_assert!(!d.placements.iter().any(|p| &p.cluster == cluster && &p.tier == tier), "{}/{} kept", cluster, tier);
            }
        }
        // Verdicts are sorted and unique by (cluster, tier).
        prop_assert!(d.verdicts.windows(2).all(|w| (&w[0].cluster, &w[0].tier) < (&w[1].cluster, &w[1].tier)));
        // A frozen or invalid decision moves nothing but revocations: every other replica stays where it was.
        if d.frozen || case.w.invalid.is_some() {
            for p in &d.placements {
                prop_assert_eq!(Some(&p.replicas), current.get(&(p.cluster.clone(), p.tier.clone())), "moved while frozen or invalid: {:?}", p);
            }
            prop_assert!(d.moves.iter().all(|m| m.to.is_none()), "nothing is placed while frozen or invalid: {:?}", d.moves);
        }
    }

    #[test]
    fn deciding_again_on_the_same_facts_revokes_nothing_more(case in case()) {
        let (snap, d, _) = run(&case);
        let mut hist = d.history();
        hist.refused = case.refused.iter().map(|c| (c.clone(), "member clearance: refused".to_string())).collect();
        let d2 = decide(&case.w, &snap, &hist, t(0));
        prop_assert!(d2.moves.iter().all(|m| m.reason != "ClusterUnknown"), "an unknown cluster survived: {:?}", d2.moves);
        for p in &d2.placements {
            let c = snap.cluster_index(&p.cluster).map(|i| &snap.clusters[i]);
            if case.policy {
                prop_assert!(sovereign(c, &case.w, &case.refused).is_ok(), "{:?}", p);
            }
        }
    }
}
