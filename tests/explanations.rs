//! Issue 13 §6: explanations say exactly what happened: what a label requires and what the clearance lacks, the
//! reason that really moved a replica, unmet spreads reported alike, event text, and `kubectl get` columns that
//! agree.

mod common;

use std::process::Command;

use common::*;
use marshal::api::Phase;
use marshal::placement::{History, decide};
use serde_json::json;

#[test]
fn a_releasability_verdict_says_what_the_label_requires_and_what_the_clearance_lacks() {
    let w =
        workload(json!({"confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["DEU", "LTU"]}]}}));
    let d = decide(&w, &snapshot(vec![cluster("pol-1", "POL", &["core"])], &[]), &History::default(), t(0));
    let m = &verdict(&d, "pol-1", "core").message;
    for part in [
        "Releasable To is permissive",
        "requires one of [DEU, LTU]",
        "pol-1",
        "holds none of them",
        "its own nation counts as held",
    ] {
        assert!(m.contains(part), "{part:?} missing from {m:?}");
    }
    assert!(!m.contains("holds none of POL's values"), "the old message read backwards: {m}");
    // A restrictive category names what is missing.
    let w = workload(json!({"confidentiality": {"classification": "CONFIDENTIAL", "categories": [
        {"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Special Handling", "values": ["ATOMAL", "CRYPTO"]}]}}));
    let mut c = cluster("pol-1", "POL", &["core"]);
    c.clearance.categories.insert("Special Handling".into(), ["CRYPTO".to_string()].into());
    let d = decide(&w, &snapshot(vec![c], &[]), &History::default(), t(0));
    let m = &verdict(&d, "pol-1", "core").message;
    for part in ["Special Handling", "requires every value of [ATOMAL, CRYPTO]", "lacks ATOMAL", "holds [CRYPTO]"] {
        assert!(m.contains(part), "{part:?} missing from {m:?}");
    }
}

#[test]
fn a_replica_removed_for_an_expired_accreditation_is_not_shown_as_unreachable() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]}}));
    let mut cs = vec![cluster("pol-1", "POL", &["core"]), cluster("ltu-1", "LTU", &["edge"])];
    cs[1].clearance.review_by = t(-1); // no longer accredited...
    cs[1].heartbeat = Some(t(-40)); // ...and unreachable (the first filter), within its toleration
    let hist = History { placements: vec![current("ltu-1", "edge", 2)], ..History::default() };
    let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.moves[0].reason, "AccreditationExpired", "{:?}", d.moves);
    let v = verdict(&d, "ltu-1", "edge");
    assert_eq!(v.reason.as_str(), "Unreachable", "the verdict is still the first failing filter");
    assert!(v.message.contains("revoked") && v.message.contains("AccreditationExpired"), "{}", v.message);
}

#[test]
fn removals_from_a_tier_that_no_longer_exists_name_the_tier() {
    let w = workload(json!({"replicas": 2, "placement": {"tiers": ["core"], "preferredNations": ["POL"]}}));
    let hist = History { placements: vec![current("pol-1", "gpu", 2)], ..History::default() };
    let d = decide(&w, &snapshot(vec![cluster("pol-1", "POL", &["core"])], &[]), &hist, t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.moves[0].reason, "TierNotAllowed", "not Spec or Rebalance: {:?}", d.moves);
}

#[test]
fn duplicated_and_divided_report_an_unmet_spread_alike() {
    // Only POL clusters are releasable: two nations cannot be reached.
    let cs = || {
        vec![cluster("pol-1", "POL", &["core"]), cluster("pol-2", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])]
    };
    let label = json!({"categories": [{"tagName": "Releasable To", "values": ["POL"]}]});
    for mode in ["Divided", "Duplicated"] {
        let w = workload(json!({"replicas": 2, "confidentiality": label,
            "placement": {"mode": mode, "tiers": ["core"], "spread": {"minNations": 2}}}));
        let d = decide(&w, &snapshot(cs(), &[]), &History::default(), t(0));
        assert!(d.placed() > 0, "{mode}");
        assert_eq!(d.phase, Phase::Degraded, "{mode}: {}", d.message);
        assert!(d.message.contains("spread.minNations 2 not met (1 nations)"), "{mode}: {}", d.message);
    }
}

#[test]
fn scenario_event_text_names_the_taint_effect() {
    let dir = std::env::temp_dir().join(format!("marshal-expl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let scenario = dir.join("scenario.yaml");
    std::fs::write(
        &scenario,
        "events:\n  - {at: 10s, taint: {cluster: pol-1, key: marshal.dev/maintenance, effect: NoSchedule}}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(["plan", "-f", "examples/baltic", "--scenario", scenario.to_str().expect("path")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("taint pol-1 marshal.dev/maintenance:NoSchedule"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

#[test]
fn kubectl_get_shows_the_desired_total_beside_the_ready_total() {
    let crd = marshal::api::crds().into_iter().find(|c| c.spec.names.kind == "MissionWorkload").expect("crd");
    let cols = crd.spec.versions[0].additional_printer_columns.clone().unwrap_or_default();
    let replicas = cols.iter().find(|c| c.name == "REPLICAS").expect("REPLICAS column");
    let ready = cols.iter().find(|c| c.name == "READY").expect("READY column");
    assert_eq!(replicas.json_path, ".status.desiredReplicas", "a total, like READY ({})", ready.json_path);
    assert_eq!(ready.json_path, ".status.readyReplicas");
}
