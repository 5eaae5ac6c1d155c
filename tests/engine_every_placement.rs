//! Issue 13 §1: every current placement gets a verdict, and sovereignty revokes it in every path (normal, fleet
//! freeze, invalid spec): two tiers on one cluster, a tier that is gone, a cluster that has no MemberCluster.

mod common;

use common::*;
use marshal::api::{ClusterTaint, Phase, TaintEffect};
use marshal::placement::{ClusterFacts, CurrentPlacement, Decision, History, Snapshot, WorkloadModel, decide};
use serde_json::json;

fn history_of(placements: Vec<CurrentPlacement>) -> History {
    History { placements, ..History::default() }
}

/// pol-1 (core, edge), deu-1, ltu-1, fra-1; with `frozen`, every cluster but pol-1 lost its heartbeat long ago.
fn fleet(frozen: bool) -> Vec<ClusterFacts> {
    let mut cs = vec![
        cluster("pol-1", "POL", &["core", "edge"]),
        cluster("deu-1", "DEU", &["core"]),
        cluster("ltu-1", "LTU", &["edge"]),
        cluster("fra-1", "FRA", &["core"]),
    ];
    if frozen {
        for c in cs.iter_mut().skip(1) {
            c.heartbeat = Some(t(-3600));
        }
    }
    cs
}

fn on(d: &Decision, cluster: &str) -> Vec<String> {
    placed(d).into_iter().filter(|p| p.starts_with(&format!("{cluster}/"))).collect()
}

/// The three paths a decision can take for the same facts.
fn paths(w_json: serde_json::Value) -> Vec<(&'static str, bool, WorkloadModel)> {
    let valid = workload(w_json.clone());
    let mut invalid_json = w_json;
    merge(
        &mut invalid_json,
        json!({"template": {"spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"requests": {"cpu": "lots"}}}]}}}),
    );
    let invalid = workload(invalid_json);
    assert!(invalid.invalid.is_some());
    vec![("normal", false, valid.clone()), ("fleet freeze", true, valid), ("invalid template", false, invalid)]
}

fn check_path(name: &str, frozen: bool, d: &Decision) {
    assert_eq!(d.frozen, frozen, "{name}: freeze as arranged: {}", d.message);
}

#[test]
fn both_tiers_on_one_cluster_are_judged_and_revoked_in_every_path() {
    // The label is no longer releasable to pol-1 (its clearance holds neither LTU nor DEU, nor is POL named).
    let w = json!({"replicas": 2, "confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["LTU", "DEU"]}]}});
    for (name, frozen, w) in paths(w) {
        let snap = snapshot(fleet(frozen), &[]);
        let hist = history_of(vec![current("pol-1", "core", 1), current("pol-1", "edge", 1)]);
        let d = decide(&w, &snap, &hist, t(0));
        check_path(name, frozen, &d);
        assert!(on(&d, "pol-1").is_empty(), "{name}: a NotReleasable placement is kept: {:?}", placed(&d));
        for tier in ["core", "edge"] {
            let v = verdict(&d, "pol-1", tier);
            assert_eq!(v.reason.as_str(), "NotReleasable", "{name}: {tier}: {}", v.message);
        }
        let removed: u32 =
            d.moves.iter().filter(|m| m.from.as_ref().is_some_and(|s| s.cluster == "pol-1")).map(|m| m.replicas).sum();
        assert_eq!(removed, 2, "{name}: both replicas leave pol-1: {:?}", d.moves);
    }
}

#[test]
fn a_no_execute_taint_revokes_every_tier_in_every_path() {
    for (name, frozen, w) in paths(json!({"replicas": 2})) {
        let mut cs = fleet(frozen);
        cs[0].taints =
            vec![ClusterTaint { key: "marshal.dev/drain".into(), value: None, effect: TaintEffect::NoExecute }];
        let hist = history_of(vec![current("pol-1", "core", 1), current("pol-1", "edge", 1)]);
        let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
        check_path(name, frozen, &d);
        assert!(on(&d, "pol-1").is_empty(), "{name}: {:?}", placed(&d));
        assert!(d.moves.iter().filter(|m| m.from.is_some()).all(|m| m.reason == "Tainted"), "{name}: {:?}", d.moves);
    }
}

#[test]
fn a_tier_that_is_gone_gets_a_verdict_and_is_revoked_when_sovereignty_fails() {
    for (name, frozen, w) in paths(json!({"replicas": 2, "placement": {"tiers": ["core", "edge"]}})) {
        let mut cs = fleet(frozen);
        cs[0].clearance.review_by = t(-1); // pol-1's accreditation has expired
        // The placement is on a tier pol-1 no longer offers and the workload no longer names.
        let hist = history_of(vec![current("pol-1", "gpu", 2)]);
        let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
        check_path(name, frozen, &d);
        let v = verdict(&d, "pol-1", "gpu");
        assert!(!v.eligible, "{name}");
        assert_eq!(v.reason.as_str(), "AccreditationExpired", "{name}: {}", v.message);
        assert!(on(&d, "pol-1").is_empty(), "{name}: kept on an expired cluster: {:?}", placed(&d));
        assert_eq!(d.moves[0].reason, "AccreditationExpired", "{name}: {:?}", d.moves);
    }
}

#[test]
fn a_tier_that_is_gone_is_judged_even_when_sovereignty_holds() {
    let w = workload(json!({"replicas": 2, "placement": {"tiers": ["core", "edge"]}}));
    let hist = history_of(vec![current("pol-1", "gpu", 2)]);
    let d = decide(&w, &snapshot(fleet(false), &[]), &hist, t(0));
    let v = verdict(&d, "pol-1", "gpu");
    assert_eq!(v.reason.as_str(), "TierNotAllowed", "{}", v.message);
    assert!(on(&d, "pol-1").iter().all(|p| !p.contains("/gpu=")), "{:?}", placed(&d));
    assert_eq!(d.placed(), 2, "the replicas are placed on tiers that exist");
    // Frozen, the gone tier stays (nothing moves but what sovereignty revokes), and says why it is out.
    let d = decide(&w, &snapshot(fleet(true), &[]), &hist, t(0));
    assert!(d.frozen);
    assert_eq!(placed(&d), ["pol-1/gpu=2"]);
    assert_eq!(verdict(&d, "pol-1", "gpu").reason.as_str(), "TierNotAllowed");
}

#[test]
fn a_placement_on_an_unknown_cluster_is_revoked_in_every_path() {
    for (name, frozen, w) in paths(json!({"replicas": 2})) {
        let hist = history_of(vec![current("ghost-1", "core", 2)]);
        let d = decide(&w, &snapshot(fleet(frozen), &[]), &hist, t(0));
        check_path(name, frozen, &d);
        assert!(on(&d, "ghost-1").is_empty(), "{name}: kept on a cluster without MemberCluster: {:?}", placed(&d));
        let v = verdict(&d, "ghost-1", "core");
        assert!(!v.eligible);
        assert_eq!(v.reason.as_str(), "ClusterUnknown", "{name}: {}", v.message);
        assert!(v.message.contains("ghost-1") && v.message.contains("no MemberCluster"), "{}", v.message);
        assert_eq!(d.moves[0].reason, "ClusterUnknown", "{name}: {:?}", d.moves);
        assert!(d.summary.contains("ClusterUnknown"), "{name}: {}", d.summary);
        if frozen || name == "invalid template" {
            assert_eq!(d.placed(), 0, "{name}: nothing else moves, nothing is counted as placed");
        }
    }
}

#[test]
fn verdicts_stay_sorted_and_cover_every_placement() {
    let w = workload(json!({"replicas": 3}));
    let hist = history_of(vec![
        current("aaa-0", "core", 1),
        current("pol-1", "gpu", 1),
        current("pol-1", "core", 1),
        current("zzz-9", "edge", 1),
    ]);
    let d = decide(&w, &snapshot(fleet(false), &[]), &hist, t(0));
    let keys: Vec<(String, String)> = d.verdicts.iter().map(|v| (v.cluster.clone(), v.tier.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "verdicts sorted by (cluster, tier)");
    for p in &hist.placements {
        assert!(keys.contains(&(p.cluster.clone(), p.tier.clone())), "no verdict for {p:?}");
    }
    assert_eq!(d.placed(), 3);
    assert_eq!(d.phase, Phase::Placed);
}

#[test]
fn duplicate_placements_of_one_slot_are_one_placement() {
    // A status listing one slot twice (as hand-written planner input can) is one placement of both counts.
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL"]}}));
    let hist = history_of(vec![current("pol-1", "core", 1), current("pol-1", "core", 1)]);
    let snap: Snapshot = snapshot(fleet(false), &[]);
    let d = decide(&w, &snap, &hist, t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    assert!(d.moves.is_empty(), "{:?}", d.moves);
}
