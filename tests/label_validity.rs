//! Issue 13 §4: labels are valid under their policy (ADatP-4774): declared values, a single value where the policy
//! says so, excludedClass, excludedCategory, requiredCategory (oneOrMore, onlyOne, all) on values and on
//! classifications. The engine says `LabelInvalid`, naming the rule; `marshal plan` refuses the object as the
//! hub's admission policy does; a policy that is missing or contradictory holds what runs and places nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use marshal::api::SecurityPolicy;
use marshal::placement::{History, Settings, Snapshot, decide};
use serde_json::{Value, json};

/// A policy with every kind of rule (what a SPIF can say), under the identifier RULES.
fn rules_policy() -> SecurityPolicy {
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "rules"},
        "spec": {
            "policyIdentifier": "RULES",
            "classifications": ["LOW", "MID", "HIGH"],
            "classificationRules": {"HIGH": {"requiredCategories": [
                {"operation": "OneOrMore", "categories": [{"tagName": "Releasable To"}, {"tagName": "Only"}]}]}},
            "categories": [
                {"tagName": "Releasable To", "type": "EnumeratedPermissive", "values": ["POL", "DEU", "LTU", "NATO"],
                 "valueRules": {"NATO": {"excludedCategories": [{"tagName": "Only"}]}}},
                {"tagName": "Only", "type": "Permissive", "values": ["POL", "DEU"]},
                {"tagName": "Handling", "type": "Restrictive", "values": ["ATOMAL", "CRYPTO", "BOHEMIA"],
                 "valueRules": {
                    "ATOMAL": {"excludedClasses": ["LOW", "MID"]},
                    "BOHEMIA": {"requiredCategories": [{"operation": "OnlyOne", "categories": [
                        {"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Only", "values": ["POL"]}]}]},
                    "CRYPTO": {"requiredCategories": [{"operation": "All", "categories": [
                        {"tagName": "Releasable To", "values": ["NATO"]}, {"tagName": "Admin"}]}]}}},
                {"tagName": "Admin", "type": "Informative", "values": ["STAFF", "MEDICAL"], "singleValue": true}
            ]
        }
    }))
    .expect("policy")
}

fn rules_cluster() -> marshal::placement::ClusterFacts {
    let mut c = cluster("pol-1", "POL", &["core"]);
    c.clearance.policy = "RULES".into();
    c.clearance.classifications = ["LOW", "MID", "HIGH"].iter().map(|s| s.to_string()).collect();
    c.clearance.categories = [
        ("Releasable To".to_string(), ["NATO".to_string()].into()),
        ("Only".to_string(), ["POL".to_string()].into()),
        ("Handling".to_string(), ["ATOMAL", "CRYPTO", "BOHEMIA"].iter().map(|s| s.to_string()).collect()),
    ]
    .into();
    c
}

fn label(classification: &str, categories: Value) -> marshal::placement::WorkloadModel {
    workload(
        json!({"confidentiality": {"policy": "RULES", "classification": classification, "categories": categories}}),
    )
}

#[test]
fn validity_rules_table() {
    let snap = Snapshot::new(&[rules_policy()], vec![rules_cluster()], &[], Settings::default());
    let cases: Vec<(&str, &str, Value, Option<&str>)> = vec![
        ("a valid label", "MID", json!([{"tagName": "Releasable To", "values": ["POL"]}]), None),
        (
            "an undeclared value",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["POL", "FRA"]}]),
            Some("Releasable To value FRA is not declared by policy RULES"),
        ),
        (
            "an undefined category",
            "MID",
            json!([{"tagName": "Caveat", "values": ["X"]}]),
            Some("category \"Caveat\" is not defined by policy RULES"),
        ),
        ("an undefined classification", "TOP", json!([]), Some("classification TOP is not defined by policy RULES")),
        (
            "excludedClass",
            "MID",
            json!([{"tagName": "Handling", "values": ["ATOMAL"]}]),
            Some("Handling value ATOMAL may not be used with classification MID (excludedClass of policy RULES)"),
        ),
        (
            "excludedClass passes at another class",
            "HIGH",
            json!([{"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Handling", "values": ["ATOMAL"]}]),
            None,
        ),
        (
            "excludedCategory (every value of a tag)",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["NATO"]}, {"tagName": "Only", "values": ["DEU"]}]),
            Some(
                "Releasable To value NATO may not be used together with Only (any value) (excludedCategory of policy RULES)",
            ),
        ),
        (
            "requiredCategory onlyOne: none",
            "MID",
            json!([{"tagName": "Handling", "values": ["BOHEMIA"]}]),
            Some(
                "Handling value BOHEMIA requires exactly one of Releasable To [POL]; Only [POL] (requiredCategory onlyOne); the label matches 0",
            ),
        ),
        (
            "requiredCategory onlyOne: one",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Handling", "values": ["BOHEMIA"]}]),
            None,
        ),
        (
            "requiredCategory onlyOne: two",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Only", "values": ["POL"]},
                   {"tagName": "Handling", "values": ["BOHEMIA"]}]),
            Some("(requiredCategory onlyOne); the label matches 2"),
        ),
        (
            "requiredCategory all: missing one",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["NATO"]}, {"tagName": "Handling", "values": ["CRYPTO"]}]),
            Some(
                "Handling value CRYPTO requires all of Releasable To [NATO]; Admin (any value) (requiredCategory all); the label matches 1",
            ),
        ),
        (
            "requiredCategory all: met",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["NATO"]}, {"tagName": "Handling", "values": ["CRYPTO"]},
                   {"tagName": "Admin", "values": ["STAFF"]}]),
            None,
        ),
        (
            "a classification's requiredCategory oneOrMore: none",
            "HIGH",
            json!([{"tagName": "Handling", "values": ["ATOMAL"]}]),
            Some(
                "classification HIGH requires one or more of Releasable To (any value); Only (any value) (requiredCategory oneOrMore)",
            ),
        ),
        (
            "a single-value category with two",
            "MID",
            json!([{"tagName": "Releasable To", "values": ["POL"]}, {"tagName": "Admin", "values": ["STAFF", "MEDICAL"]}]),
            Some("Admin takes a single value under policy RULES (singleSelection)"),
        ),
    ];
    for (name, class, cats, want) in cases {
        let d = decide(&label(class, cats), &snap, &History::default(), t(0));
        let v = verdict(&d, "pol-1", "core");
        match want {
            None => assert!(v.reason.as_str() != "LabelInvalid", "{name}: {}", v.message),
            Some(msg) => {
                assert_eq!(v.reason.as_str(), "LabelInvalid", "{name}: {}", v.message);
                assert!(v.message.contains(msg), "{name}: the rule is named: {:?} lacks {msg:?}", v.message);
                assert!(d.placements.is_empty(), "{name}");
            }
        }
    }
}

#[test]
fn an_invalid_label_revokes_what_runs_in_every_path() {
    let w = label("MID", json!([{"tagName": "Handling", "values": ["ATOMAL"]}]));
    let hist = History { placements: vec![current("pol-1", "core", 1)], ..History::default() };
    let mut frozen = vec![rules_cluster(), cluster("deu-1", "DEU", &["core"]), cluster("ltu-1", "LTU", &["edge"])];
    frozen[1].heartbeat = Some(t(-3600));
    frozen[2].heartbeat = Some(t(-3600));
    for cs in [vec![rules_cluster()], frozen] {
        let snap = Snapshot::new(&[rules_policy()], cs, &[], Settings::default());
        let d = decide(&w, &snap, &hist, t(0));
        assert!(d.placements.is_empty(), "frozen={}: {:?}", d.frozen, d.placements);
        assert_eq!(d.moves[0].reason, "LabelInvalid");
    }
}

#[test]
fn a_missing_or_contradictory_policy_holds_what_runs_and_places_nothing_new() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL"]}}));
    let hist = History { placements: vec![current("pol-1", "core", 1)], ..History::default() };
    let clusters = || vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])];
    let mut other = nato();
    other.metadata.name = Some("nato-copy".into());
    other.spec.classifications.reverse();
    for (what, policies) in [("missing", vec![]), ("contradictory", vec![nato(), other])] {
        let snap = Snapshot::new(&policies, clusters(), &[], Settings::default());
        let d = decide(&w, &snap, &hist, t(0));
        assert_eq!(placed(&d), ["pol-1/core=1"], "{what}: kept, not grown, nothing new: {:?}", d.moves);
        assert!(d.moves.is_empty(), "{what}: {:?}", d.moves);
        let v = verdict(&d, "pol-1", "core");
        assert_eq!(v.reason.as_str(), "PolicyUnknown", "{what}: {}", v.message);
        assert!(v.held, "{what}: the verdict says the placement is held");
        assert_eq!(d.placements[0].reason, "Unverified");
        // A fact that says no is not hidden by the missing policy: residency still revokes.
        let mut resident = w.clone();
        resident.residency = ["DEU".to_string()].into();
        let d = decide(&resident, &snap, &hist, t(0));
        assert!(d.placements.is_empty(), "{what}: {:?}", d.placements);
        assert_eq!(d.moves[0].reason, "ResidencyViolation", "{what}");
    }
}

#[test]
fn an_alternative_must_be_valid_under_its_own_policy() {
    let snap = Snapshot::new(&[nato(), rules_policy()], vec![rules_cluster()], &[], Settings::default());
    let w = workload(json!({"confidentiality": {"alternatives": [
        {"policy": "RULES", "classification": "MID", "categories": [{"tagName": "Handling", "values": ["ATOMAL"]}]}]}}));
    let v =
        decide(&w, &snap, &History::default(), t(0)).verdicts.into_iter().find(|v| v.cluster == "pol-1").expect("v");
    assert_eq!(v.reason.as_str(), "LabelInvalid", "{}", v.message);
    assert!(v.message.contains("alternative under RULES") && v.message.contains("excludedClass"), "{}", v.message);
}

fn plan_dir(name: &str, extra: &str) -> (PathBuf, std::process::Output) {
    let dir = std::env::temp_dir().join(format!("marshal-validity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/baltic");
    for f in ["00-security-policy.yaml", "10-member-clusters.yaml"] {
        std::fs::copy(root.join(f), dir.join(f)).expect("copy");
    }
    std::fs::write(dir.join("50-x.yaml"), extra).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(["plan", "-f", dir.to_str().expect("p")])
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    (dir, out)
}

#[test]
fn the_planner_refuses_an_invalid_label_as_the_admission_policy_does() {
    let w = |cats: &str, class: &str| {
        format!(
            "apiVersion: marshal.dev/v1alpha1\nkind: MissionWorkload\nmetadata: {{name: w1, namespace: ops}}\nspec:\n  owner: LTU\n  confidentiality: {{policy: NATO, classification: {class}, categories: [{cats}]}}\n  replicas: 1\n  template: {{spec: {{containers: [{{name: a, image: b}}]}}}}\n"
        )
    };
    for (name, yaml, needle) in [
        (
            "undeclared",
            w("{tagName: Releasable To, values: [LTU, XYZ]}", "RESTRICTED"),
            "Releasable To value XYZ is not declared",
        ),
        (
            "excluded class",
            w("{tagName: Releasable To, values: [LTU]}, {tagName: Special Handling, values: [ATOMAL]}", "RESTRICTED"),
            "excludedClass",
        ),
        ("undefined category", w("{tagName: Caveat, values: [X]}", "RESTRICTED"), "category \"Caveat\" is not defined"),
    ] {
        let (_, out) = plan_dir(name, &yaml);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        for n in ["MissionWorkload/w1", "field spec.confidentiality", needle, "marshal-labels.marshal.dev"] {
            assert!(err.contains(n), "{name}: {n:?} in {err}");
        }
    }
    // A clearance with a classification its policy does not define is refused too.
    let mc = "apiVersion: marshal.dev/v1alpha1\nkind: MemberCluster\nmetadata: {name: x-1}\nspec: {nation: FRA, connection: {mode: Pull}, clearance: {policy: NATO, classifications: [SECRETISH], reviewBy: \"2027-01-01T00:00:00Z\"}, admission: {ownerNations: [\"*\"]}}\n";
    let (_, out) = plan_dir("clearance", mc);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MemberCluster/x-1") && err.contains("spec.clearance.classifications[0]"), "{err}");
}

#[test]
fn the_admission_policy_and_its_chart_copy_are_identical() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let a = std::fs::read(root.join("deploy/admission-policy.yaml")).expect("read");
    let b = std::fs::read(root.join("charts/marshal/files/admission-policy.yaml")).expect("read");
    assert!(a == b, "charts/marshal/files/admission-policy.yaml must be a byte-identical copy");
    let text = String::from_utf8(a).expect("utf8");
    for rule in [
        "excludedClasses",
        "excludedCategories",
        "requiredCategories",
        "classificationRules",
        "singleValue",
        "d.values",
    ] {
        assert!(text.contains(rule), "the admission policy checks {rule}");
    }
}
