//! Division and stability: fill order, spread, duplication, capacity, stickiness, toleration, failback,
//! fleet freeze, and the verdict summary.

mod common;

use common::*;
use marshal::api::{ClusterTaint, Phase, TaintEffect};
use marshal::placement::{History, Reason, decide};
use serde_json::json;

fn three() -> Vec<marshal::placement::ClusterFacts> {
    vec![
        cluster("pol-1", "POL", &["core", "edge"]),
        cluster("deu-1", "DEU", &["core"]),
        cluster("ltu-1", "LTU", &["edge"]),
    ]
}

#[test]
fn divided_fills_in_preference_order_within_max_per_cluster() {
    let w = workload(json!({"replicas": 5, "placement": {"preferredNations": ["POL", "DEU", "LTU"],
        "spread": {"minNations": 1, "maxReplicasPerCluster": 3}}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["deu-1/core=2", "pol-1/core=3"]);
    assert_eq!(d.phase, Phase::Placed);
    assert_eq!(d.placed(), 5);
}

#[test]
fn tier_order_comes_after_nation_order() {
    let w =
        workload(json!({"replicas": 2, "placement": {"tiers": ["core", "edge"], "preferredNations": ["LTU", "POL"]}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["ltu-1/edge=2"], "nation rank first: LTU's edge beats POL's core");
    let w = workload(json!({"replicas": 2, "placement": {"tiers": ["edge", "core"], "preferredNations": ["POL"]}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["pol-1/edge=2"], "within a nation, the workload's tier order");
}

#[test]
fn owner_nation_is_the_default_preference() {
    let w = workload(json!({"owner": "DEU", "replicas": 1}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["deu-1/core=1"]);
}

#[test]
fn spread_min_nations_is_satisfied_first() {
    let w = workload(json!({"replicas": 4, "placement": {"preferredNations": ["POL", "DEU", "LTU"],
        "spread": {"minNations": 3}}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["deu-1/core=1", "ltu-1/edge=1", "pol-1/core=2"]);
}

#[test]
fn spread_that_cannot_be_met_is_degraded_and_says_so() {
    let w = workload(json!({"replicas": 2, "placement": {"spread": {"minNations": 2}},
        "confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["POL"]}]}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    assert_eq!(d.phase, Phase::Degraded);
    assert!(d.message.contains("spread.minNations 2 not met"), "{}", d.message);
}

#[test]
fn duplicated_puts_replicas_in_every_eligible_cluster_in_its_best_tier() {
    let w = workload(json!({"replicas": 2, "placement": {"mode": "Duplicated", "tiers": ["edge", "core"]}}));
    let d = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["deu-1/core=2", "ltu-1/edge=2", "pol-1/edge=2"]);
    assert_eq!(d.phase, Phase::Placed);
}

#[test]
fn capacity_limits_replicas_and_the_rest_spills() {
    let mut cs = three();
    cs[0].free.insert("core".into(), free(1000, 32 << 30, 110)); // pol-1 core: 2 replicas of 500m
    let w = workload(json!({"replicas": 4, "placement": {"tiers": ["core"], "preferredNations": ["POL", "DEU"]}}));
    let d = decide(&w, &snapshot(cs, &[]), &History::default(), t(0));
    assert_eq!(placed(&d), ["deu-1/core=2", "pol-1/core=2"]);
}

#[test]
fn nothing_fits_anywhere_is_unplaceable_with_counted_reasons() {
    let mut cs = three();
    cs.push(cluster("fra-1", "FRA", &["core"]));
    cs[1].heartbeat = Some(t(-100));
    let w = workload(json!({"replicas": 3, "placement": {"tiers": ["core"]},
        "confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["LTU"]}]}}));
    let d = decide(&w, &snapshot(cs, &[]), &History::default(), t(0));
    assert_eq!(d.phase, Phase::Unplaceable);
    assert_eq!(d.summary, "0/4 clusters eligible: 2 NotReleasable, 1 TierNotAllowed, 1 Unreachable");
    assert!(d.message.starts_with("0/3 replicas placed"), "{}", d.message);
    assert_eq!(d.unplaced, 3);
}

#[test]
fn some_placed_some_not_is_degraded() {
    let mut cs = vec![cluster("pol-1", "POL", &["core"])];
    cs[0].free.insert("core".into(), free(1500, 32 << 30, 110));
    let w = workload(json!({"replicas": 4}));
    let d = decide(&w, &snapshot(cs, &[]), &History::default(), t(0));
    assert_eq!(d.phase, Phase::Degraded);
    assert_eq!(d.unplaced, 1);
}

#[test]
fn an_unchanged_decision_is_identical_and_moves_nothing() {
    let w = workload(json!({"replicas": 5, "placement": {"spread": {"minNations": 2}}}));
    let snap = snapshot(three(), &[]);
    let d1 = decide(&w, &snap, &History::default(), t(0));
    let d2 = decide(&w, &snap, &history(&d1), t(10));
    assert_eq!(d1.placements, d2.placements, "same placements, same since, same reasons");
    assert_eq!(d1.verdicts, d2.verdicts, "same verdicts, same since");
    assert!(d2.moves.is_empty());
}

#[test]
fn placements_are_sticky_when_capacity_ordering_changes() {
    let w = workload(json!({"replicas": 2, "placement": {"tiers": ["core"], "preferredNations": ["POL", "DEU"]},
        "confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["NATO"]}]}}));
    // Two equally ranked POL clusters: the one with more free capacity wins at first...
    let mut a = cluster("pol-1", "POL", &["core"]);
    let b = cluster("pol-2", "POL", &["core"]);
    a.free.insert("core".into(), free(16000, 64 << 30, 200));
    let d1 = decide(&w, &snapshot(vec![a.clone(), b.clone()], &[]), &History::default(), t(0));
    assert_eq!(placed(&d1), ["pol-1/core=2"]);
    // ...and stays there when pol-2 later has more: capacity ranks after stickiness.
    let mut b2 = b;
    b2.free.insert("core".into(), free(64000, 256 << 30, 500));
    let d2 = decide(&w, &snapshot(vec![a, b2], &[]), &history(&d1), t(10));
    assert_eq!(placed(&d2), ["pol-1/core=2"]);
    assert!(d2.moves.is_empty());
}

#[test]
fn unreachable_cluster_keeps_its_share_for_toleration_then_moves() {
    let w =
        workload(json!({"replicas": 2, "placement": {"tiers": ["core", "edge"], "preferredNations": ["LTU", "POL"]}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);
    // ltu-1's last heartbeat at t=100; unreachable from t=115 (grace 15 s); toleration 30 s until t=145.
    let at = |now: i64| {
        let mut cs = three();
        cs[2].heartbeat = Some(t(100));
        for c in cs.iter_mut().take(2) {
            c.heartbeat = Some(t(now));
        }
        snapshot(cs, &[])
    };
    let d1 = decide(&w, &at(120), &history(&d0), t(120));
    assert_eq!(placed(&d1), ["ltu-1/edge=2"], "within toleration");
    let v = verdict(&d1, "ltu-1", "edge");
    assert_eq!(v.reason, Reason::Unreachable);
    assert!(!v.eligible);
    assert_eq!(v.tolerated_until, Some(t(145)));
    assert_eq!(v.observed_at, Some(t(100)), "the deciding fact is the last heartbeat");
    assert_eq!(d1.next_review, Some(t(145)), "the engine asks to be woken when toleration ends");
    assert_eq!(d1.placements[0].reason, "Tolerated");

    let d2 = decide(&w, &at(145), &history(&d1), t(145));
    assert_eq!(placed(&d2), ["pol-1/core=2"], "toleration over: moved to the next eligible cluster");
    assert_eq!(d2.moves.len(), 1);
    assert_eq!(d2.moves[0].reason, "Unreachable");
    assert_eq!(d2.moves[0].replicas, 2);
}

#[test]
fn sovereignty_failures_move_at_once_without_toleration() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);
    let mut cs = three();
    cs[2].clearance.review_by = t(5);
    let d1 = decide(&w, &snapshot(cs, &[]), &history(&d0), t(10));
    assert_eq!(placed(&d1), ["pol-1/core=2"]);
    assert_eq!(d1.moves[0].reason, "AccreditationExpired");
}

#[test]
fn no_schedule_taint_keeps_current_and_no_execute_evicts() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    let taint = |effect| ClusterTaint { key: "marshal.dev/maintenance".into(), value: None, effect };
    let mut cs = three();
    cs[2].taints = vec![taint(TaintEffect::NoSchedule)];
    let d1 = decide(&w, &snapshot(cs.clone(), &[]), &history(&d0), t(10));
    assert_eq!(placed(&d1), ["ltu-1/edge=2"], "NoSchedule leaves existing placements");
    let fresh = decide(&w, &snapshot(cs, &[]), &History::default(), t(10));
    assert_eq!(placed(&fresh), ["pol-1/core=2"], "NoSchedule blocks new placements");
    let mut cs = three();
    cs[2].taints = vec![taint(TaintEffect::NoExecute)];
    let d2 = decide(&w, &snapshot(cs, &[]), &history(&d0), t(10));
    assert_eq!(placed(&d2), ["pol-1/core=2"], "NoExecute evicts");
    assert_eq!(d2.moves[0].reason, "Tainted");
}

/// A snapshot whose heartbeats are fresh at the time the (single) link was measured.
fn fresh_snapshot(
    cs: Vec<marshal::placement::ClusterFacts>,
    links: &[marshal::api::ClusterLink],
) -> marshal::placement::Snapshot {
    let now = links[0].status.as_ref().and_then(|s| s.observed_at.clone()).expect("observed").0;
    snapshot(
        cs.into_iter()
            .map(|mut c| {
                c.heartbeat = Some(now);
                c
            })
            .collect(),
        links,
    )
}

#[test]
fn failback_waits_for_a_continuously_better_option() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL", "LTU"],
        "dataSource": {"cluster": "ltu-1", "maxRttMs": 50}},
        "failover": {"tolerationSeconds": 0, "failbackAfterSeconds": 300}}));
    let clusters = || vec![cluster("pol-1", "POL", &["core"]), cluster("ltu-1", "LTU", &["edge"])];
    let snapshot = fresh_snapshot;
    let good = |s| link("ltu-1", "pol-1", "Up", 10, 100, t(s));
    let bad = |s| link("ltu-1", "pol-1", "Degraded", 200, 100, t(s));
    let d0 = decide(&w, &snapshot(clusters(), &[good(0)]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["pol-1/core=2"]);
    let d1 = decide(&w, &snapshot(clusters(), &[bad(10)]), &history(&d0), t(10));
    assert_eq!(placed(&d1), ["ltu-1/edge=2"], "tolerationSeconds 0: moves to the edge at once");
    // Link good again at t=100: failback pending, not done.
    let d2 = decide(&w, &snapshot(clusters(), &[good(100)]), &history(&d1), t(100));
    assert_eq!(placed(&d2), ["ltu-1/edge=2"], "{:#?}", d2);
    let pending = d2.failback.clone().expect("failback pending");
    assert_eq!((pending.since, pending.targets.clone()), (t(100), vec!["pol-1/core".to_string()]));
    assert_eq!(d2.next_review, Some(t(400)));
    // Bad again at t=200: the window resets.
    let d3 = decide(&w, &snapshot(clusters(), &[bad(200)]), &history(&d2), t(200));
    assert_eq!(placed(&d3), ["ltu-1/edge=2"]);
    assert!(d3.failback.is_none());
    let d4 = decide(&w, &snapshot(clusters(), &[good(250)]), &history(&d3), t(250));
    let d5 = decide(&w, &snapshot(clusters(), &[good(549)]), &history(&d4), t(549));
    assert_eq!(placed(&d5), ["ltu-1/edge=2"], "299 s of good link is not enough");
    let d6 = decide(&w, &snapshot(clusters(), &[good(550)]), &history(&d5), t(550));
    assert_eq!(placed(&d6), ["pol-1/core=2"], "300 s of good link: failback");
    assert_eq!(d6.moves[0].reason, "Failback");
    assert_eq!(d6.placements[0].reason, "Failback");
}

#[test]
fn failback_window_survives_second_precision_status() {
    // Status stores times to the second. A window opened at t=100.4 s must not end at 399.9 s once the stored
    // (truncated) value is read back: the engine opens it at the next whole second.
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL", "LTU"],
        "dataSource": {"cluster": "ltu-1", "maxRttMs": 50}},
        "failover": {"tolerationSeconds": 0, "failbackAfterSeconds": 300}}));
    let clusters = || vec![cluster("pol-1", "POL", &["core"]), cluster("ltu-1", "LTU", &["edge"])];
    let ms = |s: i64, ms: i64| t(s) + jiff::SignedDuration::from_millis(ms);
    let d0 = decide(
        &w,
        &fresh_snapshot(clusters(), &[link("ltu-1", "pol-1", "Degraded", 200, 100, t(0))]),
        &History::default(),
        t(0),
    );
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);
    let good = |s| link("ltu-1", "pol-1", "Up", 10, 100, s);
    let d1 = decide(&w, &fresh_snapshot(clusters(), &[good(ms(100, 400))]), &history(&d0), ms(100, 400));
    let pending = d1.failback.clone().expect("failback pending");
    assert_eq!(pending.since, t(101), "rounded up to the next second");
    let d2 = decide(&w, &fresh_snapshot(clusters(), &[good(ms(400, 900))]), &history(&d1), ms(400, 900));
    assert_eq!(placed(&d2), ["ltu-1/edge=2"], "300.5 s after the link came back but 299.9 s after the window");
    let d3 = decide(&w, &fresh_snapshot(clusters(), &[good(t(401))]), &history(&d2), t(401));
    assert_eq!(placed(&d3), ["pol-1/core=2"]);
}

#[test]
fn link_flapping_within_toleration_moves_nothing() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL", "LTU"],
        "dataSource": {"cluster": "ltu-1", "maxRttMs": 50}},
        "failover": {"tolerationSeconds": 30, "failbackAfterSeconds": 300}}));
    let clusters = || vec![cluster("pol-1", "POL", &["core"]), cluster("ltu-1", "LTU", &["edge"])];
    let snapshot = fresh_snapshot;
    let mut hist = History::default();
    let mut moves = 0;
    // Down and up every 10 s for 2 minutes.
    for step in 0..=12 {
        let now = step * 10;
        let state = if step % 2 == 1 { "Down" } else { "Up" };
        let d = decide(&w, &snapshot(clusters(), &[link("ltu-1", "pol-1", state, 10, 100, t(now))]), &hist, t(now));
        assert!(!d.frozen);
        if step > 0 {
            moves += d.moves.len();
        }
        assert_eq!(placed(&d), ["pol-1/core=2"], "t={now}");
        hist = history(&d);
    }
    assert_eq!(moves, 0);
}

#[test]
fn fleet_freeze_moves_nothing_when_most_clusters_vanish_together() {
    let mut cs = three();
    cs.push(cluster("fra-1", "FRA", &["core"]));
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]},
        "failover": {"tolerationSeconds": 0}}));
    let d0 = decide(&w, &snapshot(cs.clone(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);
    for c in cs.iter_mut().filter(|c| c.name != "fra-1") {
        c.heartbeat = Some(t(0));
    }
    cs[3].heartbeat = Some(t(100)); // only fra-1 is still heard
    let d1 = decide(&w, &snapshot(cs.clone(), &[]), &history(&d0), t(100));
    assert_eq!(d1.phase, Phase::Frozen);
    assert!(d1.frozen);
    assert_eq!(placed(&d1), ["ltu-1/edge=2"]);
    assert!(d1.moves.is_empty());
    assert!(d1.message.contains("3/4 clusters unreachable"), "{}", d1.message);
    // Half unreachable is not a freeze: the two reachable ones take the work.
    cs[0].heartbeat = Some(t(100));
    let d2 = decide(&w, &snapshot(cs, &[]), &history(&d1), t(100));
    assert!(!d2.frozen);
    assert_eq!(placed(&d2), ["pol-1/core=2"]);
}

#[test]
fn scale_down_trims_the_least_preferred_first() {
    let w = workload(json!({"replicas": 5, "placement": {"preferredNations": ["POL", "DEU"], "tiers": ["core"],
        "spread": {"maxReplicasPerCluster": 3}}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["deu-1/core=2", "pol-1/core=3"]);
    let w3 = workload(json!({"replicas": 3, "placement": {"preferredNations": ["POL", "DEU"], "tiers": ["core"],
        "spread": {"maxReplicasPerCluster": 3}}}));
    let d1 = decide(&w3, &snapshot(three(), &[]), &history(&d0), t(10));
    assert_eq!(placed(&d1), ["pol-1/core=3"]);
    assert_eq!(d1.moves.len(), 1);
    assert_eq!((d1.moves[0].replicas, d1.moves[0].reason.as_str(), d1.moves[0].to.is_none()), (2, "Spec", true));
}

#[test]
fn capacity_drop_moves_only_what_no_longer_fits() {
    let w = workload(json!({"replicas": 4, "placement": {"preferredNations": ["POL", "DEU"], "tiers": ["core"]}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["pol-1/core=4"]);
    // pol-1 core loses nodes: the member now reports 500m free beyond our own 4 × 500m... minus 1000m.
    let mut cs = three();
    cs[0].free.insert("core".into(), free(-1000, 30 << 30, 100));
    let d1 = decide(&w, &snapshot(cs, &[]), &history(&d0), t(10));
    assert_eq!(placed(&d1), ["deu-1/core=2", "pol-1/core=2"]);
    assert_eq!(d1.moves.len(), 1);
    assert_eq!((d1.moves[0].replicas, d1.moves[0].reason.as_str()), (2, "Capacity"));
}

#[test]
fn overcommitted_tier_moves_only_this_workloads_unready_replicas() {
    // Several workloads share a tier that lost a node: each gives up only its own replicas that are not
    // running, not the whole shortfall (which, done by every workload at once, would empty the tier).
    let w = workload(json!({"replicas": 4, "placement": {"preferredNations": ["POL", "DEU"], "tiers": ["core"]}}));
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["pol-1/core=4"]);
    let mut cs = three();
    cs[0].free.insert("core".into(), free(-3000, 30 << 30, 100));
    let with_ready = |ready: u32| {
        let mut h = history(&d0);
        h.placements[0].ready = Some(ready);
        h
    };
    // All four still report ready (their pods have not been replaced yet): nothing moves.
    let d1 = decide(&w, &snapshot(cs.clone(), &[]), &with_ready(4), t(5));
    assert_eq!(placed(&d1), ["pol-1/core=4"]);
    assert!(d1.moves.is_empty());
    // One replica is stranded (pending, no room): exactly that one moves.
    let d2 = decide(&w, &snapshot(cs.clone(), &[]), &with_ready(3), t(6));
    assert_eq!(placed(&d2), ["deu-1/core=1", "pol-1/core=3"], "{:#?}", d2.verdicts);
    assert_eq!((d2.moves[0].replicas, d2.moves[0].reason.as_str()), (1, "Capacity"));
    // None ready in an overcommitted tier: the candidate fails capacity and everything moves.
    let d3 = decide(&w, &snapshot(cs, &[]), &with_ready(0), t(7));
    assert_eq!(placed(&d3), ["deu-1/core=4"]);
    let v = d3.verdicts.iter().find(|v| v.cluster == "pol-1" && v.tier == "core").expect("verdict");
    assert_eq!(v.reason, Reason::InsufficientCpu);
    assert!(v.message.contains("short of cpu"), "{}", v.message);
}
