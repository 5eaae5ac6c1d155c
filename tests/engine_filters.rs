//! Table-driven tests of each filter: one candidate, one change, the expected verdict.

mod common;

use common::*;
use marshal::api::{ClusterTaint, TaintEffect};
use marshal::placement::{ClusterFacts, History, Reason, WorkloadModel, decide};
use serde_json::json;

type ClusterChange = fn(&mut ClusterFacts);

/// A national policy beside NATO's, with no mapping between the two.
fn pol_national() -> marshal::api::SecurityPolicy {
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "pol-national"},
        "spec": {"policyIdentifier": "POL-NATIONAL", "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"],
                 "categories": [{"tagName": "Releasable To", "type": "Permissive"}]}
    }))
    .expect("policy")
}

/// Decides with one cluster `pol-1` (POL, core + edge) and returns the verdict of `pol-1/core`.
fn verdict_for(w: &WorkloadModel, change: ClusterChange) -> (bool, Reason, String) {
    let mut c = cluster("pol-1", "POL", &["core", "edge"]);
    change(&mut c);
    let settings = marshal::placement::Settings { capacity_stale_seconds: 30, ..Default::default() };
    let snap = marshal::placement::Snapshot::new(&[nato(), pol_national()], vec![c], &[], settings);
    let d = decide(w, &snap, &History::default(), t(0));
    let v = verdict(&d, "pol-1", "core");
    (v.eligible, v.reason, v.message.clone())
}

fn nothing(_: &mut ClusterFacts) {}

#[test]
fn cluster_filters_table() {
    let base = workload(json!({}));
    let cases: Vec<(&str, ClusterChange, Reason)> = vec![
        ("healthy cluster", nothing, Reason::Eligible),
        ("heartbeat older than grace", |c| c.heartbeat = Some(t(-16)), Reason::Unreachable),
        ("heartbeat exactly at grace is still fresh", |c| c.heartbeat = Some(t(-15)), Reason::Eligible),
        ("never heard from", |c| c.heartbeat = None, Reason::Unreachable),
        (
            "NoSchedule taint, new placement",
            |c| c.taints = vec![ClusterTaint { key: "maint".into(), value: None, effect: TaintEffect::NoSchedule }],
            Reason::Tainted,
        ),
        ("accreditation expired", |c| c.clearance.review_by = t(-1), Reason::AccreditationExpired),
        ("accreditation expires exactly now", |c| c.clearance.review_by = t(0), Reason::AccreditationExpired),
        ("clearance under another policy", |c| c.clearance.policy = "POL-NATIONAL".into(), Reason::PolicyMismatch),
        (
            "clearance under a policy the hub does not know (it might have mapped the label: held, not a no)",
            |c| c.clearance.policy = "ESP-NATIONAL".into(),
            Reason::PolicyUnknown,
        ),
        (
            "a clearance listing a category twice is contradictory",
            |c| c.clearance.defect = Some("spec.clearance.categories lists \"Releasable To\" more than once".into()),
            Reason::PolicyUnknown,
        ),
        (
            "classification not cleared",
            |c| {
                c.clearance.classifications.remove("RESTRICTED");
            },
            Reason::ClassificationNotCleared,
        ),
        (
            "releasable-to not held (own nation not in label)",
            |c| {
                c.nation = "FRA".into();
                c.clearance.categories.clear();
            },
            Reason::NotReleasable,
        ),
        ("host refuses owner", |c| c.owner_nations = ["POL".to_string()].into(), Reason::HostRefused),
        (
            "host caps classification below the label",
            |c| c.max_classification = Some("UNCLASSIFIED".into()),
            Reason::HostRefused,
        ),
        (
            "host cap names no classification of the policy (fail closed)",
            |c| c.max_classification = Some("TOP-ISH".into()),
            Reason::HostRefused,
        ),
        ("host accepts at its cap", |c| c.max_classification = Some("RESTRICTED".into()), Reason::Eligible),
        ("tier not offered", |c| c.tiers = vec!["edge".into()], Reason::TierNotAllowed),
        (
            "capacity never reported",
            |c| {
                c.free.clear();
                c.capacity_observed_at = None;
            },
            Reason::CapacityUnknown,
        ),
        ("capacity reported without a time (age unknown)", |c| c.capacity_observed_at = None, Reason::CapacityUnknown),
        ("capacity older than the bound", |c| c.capacity_observed_at = Some(t(-31)), Reason::CapacityUnknown),
        ("capacity exactly at the bound", |c| c.capacity_observed_at = Some(t(-30)), Reason::Eligible),
        ("capacity dated in the future counts as now", |c| c.capacity_observed_at = Some(t(3600)), Reason::Eligible),
        ("a fresh report without the tier: it has no nodes", |c| c.free.clear(), Reason::InsufficientPods),
        (
            "free cpu unknown",
            |c| {
                c.free
                    .insert("core".into(), marshal::placement::Resources { cpu_milli: None, ..free(0, 32 << 30, 110) });
            },
            Reason::CapacityUnknown,
        ),
        ("no cpu", |c| _ = c.free.insert("core".into(), free(499, 32 << 30, 110)), Reason::InsufficientCpu),
        ("no memory", |c| _ = c.free.insert("core".into(), free(8000, 100, 110)), Reason::InsufficientMemory),
        ("no pod slot", |c| _ = c.free.insert("core".into(), free(8000, 32 << 30, 0)), Reason::InsufficientPods),
    ];
    for (name, change, want) in cases {
        let (eligible, reason, message) = verdict_for(&base, change);
        assert_eq!(reason, want, "{name}: {message}");
        assert_eq!(eligible, want == Reason::Eligible, "{name}");
        assert!(!message.is_empty(), "{name}: every verdict explains itself");
    }
}

#[test]
fn workload_filters_table() {
    let cases = vec![
        ("eligible baseline", json!({}), Reason::Eligible),
        // Unknown, not a mismatch: the policy is missing, and a missing fact holds what runs (DESIGN.md §4).
        ("label under an unknown policy", json!({"confidentiality": {"policy": "XX"}}), Reason::PolicyUnknown),
        (
            "alternative label under the clearance's policy is used",
            json!({"confidentiality": {"policy": "POL-NATIONAL", "alternatives": [
                {"policy": "NATO", "classification": "RESTRICTED", "categories": [{"tagName": "Releasable To", "values": ["POL"]}]}]}}),
            Reason::Eligible,
        ),
        (
            "alternative label that is not releasable",
            json!({"confidentiality": {"policy": "POL-NATIONAL", "alternatives": [
                {"policy": "NATO", "classification": "RESTRICTED", "categories": [{"tagName": "Releasable To", "values": ["DEU"]}]}]}}),
            Reason::NotReleasable,
        ),
        (
            "classification the policy does not define",
            json!({"confidentiality": {"classification": "TOPSECRET"}}),
            Reason::LabelInvalid,
        ),
        (
            "classification above clearance",
            json!({"confidentiality": {"classification": "COSMIC TOP SECRET"}}),
            Reason::ClassificationNotCleared,
        ),
        (
            "category the policy does not define",
            json!({"confidentiality": {"categories": [{"tagName": "Caveat", "values": ["X"]}]}}),
            Reason::LabelInvalid,
        ),
        (
            "releasable to a group the cluster holds",
            json!({"confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["NATO"]}]}}),
            Reason::Eligible,
        ),
        (
            "releasable only to another nation",
            json!({"confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["DEU"]}]}}),
            Reason::NotReleasable,
        ),
        (
            "restrictive value not held",
            json!({"confidentiality": {"classification": "CONFIDENTIAL", "categories": [
                {"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Special Handling", "values": ["ATOMAL"]}]}}),
            Reason::NotReleasable,
        ),
        (
            "restrictive value at a classification it excludes",
            json!({"confidentiality": {"categories": [
                {"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Special Handling", "values": ["ATOMAL"]}]}}),
            Reason::LabelInvalid,
        ),
        (
            "value the policy does not declare",
            json!({"confidentiality": {"categories": [{"tagName": "Releasable To", "values": ["POL", "XYZ"]}]}}),
            Reason::LabelInvalid,
        ),
        ("residency excludes the nation", json!({"residency": ["LTU", "DEU"]}), Reason::ResidencyViolation),
        ("residency includes the nation", json!({"residency": ["POL"]}), Reason::Eligible),
        (
            "selector does not match",
            json!({"placement": {"clusterSelector": {"matchLabels": {"marshal.dev/region": "central"}}}}),
            Reason::NotSelected,
        ),
        (
            "selector expression matches",
            json!({"placement": {"clusterSelector": {"matchExpressions": [{"key": "marshal.dev/region", "operator": "In", "values": ["baltic"]}]}}}),
            Reason::Eligible,
        ),
        (
            "selector with an unknown operator fails closed",
            json!({"placement": {"clusterSelector": {"matchExpressions": [{"key": "marshal.dev/region", "operator": "Near"}]}}}),
            Reason::NotSelected,
        ),
        ("tier not allowed", json!({"placement": {"tiers": ["edge"]}}), Reason::TierNotAllowed),
        (
            "tolerated taint",
            json!({"placement": {"tolerations": [{"key": "maint", "operator": "Exists"}]}}),
            Reason::Eligible,
        ),
        (
            "data source without any link fails closed",
            json!({"placement": {"dataSource": {"cluster": "ltu-1", "maxRttMs": 50}}}),
            Reason::LinkInsufficient,
        ),
        (
            "data source is the candidate itself",
            json!({"placement": {"dataSource": {"cluster": "pol-1", "maxRttMs": 50}}}),
            Reason::Eligible,
        ),
    ];
    for (name, over, want) in cases {
        let w = workload(over);
        let (eligible, reason, message) = verdict_for(&w, |c| {
            c.taints = vec![ClusterTaint { key: "maint".into(), value: None, effect: TaintEffect::NoSchedule }];
        });
        // The taint is only tolerated by the case that says so; every other case must fail on Taints first.
        if name == "tolerated taint" {
            assert_eq!(reason, want, "{name}: {message}");
            continue;
        }
        assert_eq!(reason, Reason::Tainted, "{name}: taints come before the other filters");
        let (eligible2, reason2, message2) = verdict_for(&w, nothing);
        assert_eq!(reason2, want, "{name}: {message2}");
        assert_eq!(eligible2, want == Reason::Eligible, "{name}");
        assert!(!eligible, "{name}");
    }
}

#[test]
fn link_filter_table() {
    let w =
        workload(json!({"placement": {"dataSource": {"cluster": "ltu-1", "maxRttMs": 50, "minBandwidthMbps": 20}}}));
    let cases = vec![
        ("good link", link("ltu-1", "pol-1", "Up", 12, 100, t(-5)), Reason::Eligible),
        ("reverse direction is used as a fallback", link("pol-1", "ltu-1", "Up", 12, 100, t(-5)), Reason::Eligible),
        ("rtt above max", link("ltu-1", "pol-1", "Up", 51, 100, t(-5)), Reason::LinkInsufficient),
        ("rtt at max", link("ltu-1", "pol-1", "Up", 50, 100, t(-5)), Reason::Eligible),
        ("bandwidth below min", link("ltu-1", "pol-1", "Up", 12, 19, t(-5)), Reason::LinkInsufficient),
        ("degraded", link("ltu-1", "pol-1", "Degraded", 12, 100, t(-5)), Reason::LinkInsufficient),
        ("down", link("ltu-1", "pol-1", "Down", 12, 100, t(-5)), Reason::LinkInsufficient),
        ("unknown", link("ltu-1", "pol-1", "Unknown", 12, 100, t(-5)), Reason::LinkInsufficient),
        (
            "stale facts (older than staleAfterSeconds)",
            link("ltu-1", "pol-1", "Up", 12, 100, t(-61)),
            Reason::LinkInsufficient,
        ),
        ("facts exactly at staleAfterSeconds", link("ltu-1", "pol-1", "Up", 12, 100, t(-60)), Reason::Eligible),
    ];
    for (name, l, want) in cases {
        let snap = snapshot(vec![cluster("pol-1", "POL", &["core"]), cluster("ltu-1", "LTU", &["edge"])], &[l]);
        let d = decide(&w, &snap, &History::default(), t(0));
        let v = verdict(&d, "pol-1", "core");
        assert_eq!(v.reason, want, "{name}: {}", v.message);
        if name.starts_with("stale") {
            assert_eq!(v.observed_at, Some(t(-61)), "a stale link verdict carries the frozen fact's time");
        }
    }
}

#[test]
fn contradictory_policies_fail_closed() {
    let mut other = nato();
    other.metadata.name = Some("nato-copy".into());
    other.spec.classifications.reverse();
    let snap = marshal::placement::Snapshot::new(
        &[nato(), other],
        vec![cluster("pol-1", "POL", &["core"])],
        &[],
        Default::default(),
    );
    let d = decide(&workload(json!({})), &snap, &History::default(), t(0));
    let v = verdict(&d, "pol-1", "core");
    assert_eq!(v.reason, Reason::PolicyUnknown, "{}", v.message);
    assert!(v.message.contains("nato-copy") && v.message.contains("nato,"), "both policies named: {}", v.message);
    assert!(d.placements.is_empty());
}

#[test]
fn missing_policy_fails_closed() {
    let snap =
        marshal::placement::Snapshot::new(&[], vec![cluster("pol-1", "POL", &["core"])], &[], Default::default());
    let d = decide(&workload(json!({})), &snap, &History::default(), t(0));
    assert_eq!(verdict(&d, "pol-1", "core").reason, Reason::PolicyUnknown);
    assert!(d.placements.is_empty());
}

#[test]
fn invalid_template_names_the_field() {
    let w = workload(json!({"template": {"spec": {"containers": [{"name": "a", "image": "x",
        "resources": {"requests": {"cpu": "lots"}}}]}}}));
    let msg = w.invalid.clone().expect("invalid");
    assert!(msg.contains("spec.template.spec.containers[0].resources.requests.cpu"), "{msg}");
    let snap = snapshot(vec![cluster("pol-1", "POL", &["core"])], &[]);
    let d = decide(&w, &snap, &History::default(), t(0));
    assert!(d.placements.is_empty(), "an invalid workload is not placed");
    assert!(d.message.starts_with("invalid:"), "{}", d.message);
}

#[test]
fn requests_sum_containers_and_respect_init_containers() {
    let w = workload(json!({"template": {"spec": {
    "initContainers": [{"name": "init", "image": "x", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}],
    "containers": [
        {"name": "a", "image": "x", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}},
        {"name": "b", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    ]}}}));
    assert_eq!(w.request.cpu_milli, 3000, "the largest init container wins over the 1500m sum");
    assert_eq!(w.request.memory_bytes, (512 + 1024) << 20, "a limit stands in for a missing request");
}
