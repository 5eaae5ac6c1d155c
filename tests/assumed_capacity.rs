//! Decisions made together share a tier's room: the controller's ledger of promised capacity, fed into the
//! engine, against the baseline of deciding every workload from the same (not yet updated) capacity summary.

mod common;

use common::*;
use marshal::controller::assumed::{Ledger, Promise, Seen};
use marshal::placement::{ClusterFacts, History, decide};
use serde_json::json;

/// pol-1 with a 30-pod edge tier (as in the test federation) and a large core tier.
fn pol() -> Vec<ClusterFacts> {
    let mut c = cluster("pol-1", "POL", &["core", "edge"]);
    c.free.insert("edge".into(), free(8000, 32 << 30, 30));
    c.free.insert("core".into(), free(64000, 256 << 30, 440));
    vec![c]
}

/// Places `n` one-replica workloads (edge preferred) one after the other, all before the member reports again.
fn burst(n: usize, ledger: Option<&mut Ledger>) -> (usize, usize) {
    let w = workload(json!({"replicas": 1, "placement": {"tiers": ["edge", "core"], "preferredNations": ["POL"]},
        "template": {"spec": {"containers": [{"name": "app", "image": "x",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}));
    let mut ledger = ledger;
    let (mut edge, mut core) = (0, 0);
    for i in 0..n {
        let mut snap = snapshot(pol(), &[]);
        if let Some(l) = ledger.as_deref() {
            l.apply_to(&mut snap);
        }
        let d = decide(&w, &snap, &History::default(), t(1));
        let p = d.placements.first().expect("placed");
        match p.tier.as_str() {
            "edge" => edge += 1,
            _ => core += 1,
        }
        if let Some(l) = ledger.as_deref_mut() {
            let promise = Promise {
                cluster: p.cluster.clone(),
                tier: p.tier.clone(),
                replicas: p.replicas,
                request: w.request,
                digest: format!("sha256:{i}"),
                at: t(1),
                ready_seen: None,
            };
            l.promise(&format!("marshal-pol-1/ns.w{i}"), promise);
        }
    }
    (edge, core)
}

#[test]
fn a_burst_fills_the_edge_once_and_spills_the_rest_to_core() {
    let mut ledger = Ledger::default();
    assert_eq!(burst(40, Some(&mut ledger)), (30, 10));
    assert_eq!(ledger.outstanding(), 40);
    // Baseline, same facts without the ledger: every decision sees 30 free pods and picks the edge.
    assert_eq!(burst(40, None), (40, 0));
}

#[test]
fn an_earlier_placement_keeps_fitting_while_its_own_promise_is_outstanding() {
    let w = workload(json!({"replicas": 2, "placement": {"tiers": ["edge"], "preferredNations": ["POL"]}}));
    let mut ledger = Ledger::default();
    let d0 = decide(&w, &snapshot(pol(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["pol-1/edge=2"]);
    // Others fill the tier's whole room with promises; the member has not reported anything new.
    for i in 0..40 {
        let p = Promise {
            cluster: "pol-1".into(),
            tier: "edge".into(),
            replicas: 1,
            request: w.request,
            digest: format!("sha256:{i}"),
            at: t(0),
            ready_seen: None,
        };
        ledger.promise(&format!("k{i}"), p);
    }
    let mut snap = snapshot(pol(), &[]);
    ledger.apply_to(&mut snap);
    assert_eq!(snap.clusters[0].free["edge"].pods, Some(0), "lowered to zero, not below");
    let d1 = decide(&w, &snap, &history(&d0), t(5));
    assert_eq!(placed(&d1), ["pol-1/edge=2"], "promises never move existing work");
    assert!(d1.moves.is_empty());
    // Once the member's summary counts them, the promises go.
    ledger.refresh(t(6), |_, _| Seen::Written { ready: true }, |_| Some(t(0)));
    ledger.refresh(t(8), |_, _| Seen::Written { ready: true }, |_| Some(t(7)));
    assert_eq!(ledger.outstanding(), 0);
}
