//! Issue 13 §3: the planner is exactly as strict as the API server (unknown fields, set and map lists, times the
//! API server accepts, scenario offsets), and arithmetic on input never wraps.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use marshal::api::SecurityPolicy;
use marshal::placement::{CurrentPlacement, History, Settings, Snapshot, decide};
use serde_json::{Value, json};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir = std::env::temp_dir().join(format!("marshal-strict-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/baltic");
        for f in ["00-security-policy.yaml", "10-member-clusters.yaml"] {
            std::fs::copy(root.join(f), dir.join(f)).expect("copy");
        }
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        Dir(dir)
    }

    fn plan(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_marshal"))
            .args(["plan", "-f", self.0.to_str().expect("path")])
            .args(extra)
            .output()
            .expect("run marshal")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn rejected(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "must be rejected: stdout {}", String::from_utf8_lossy(&out.stdout));
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "the error names {n:?}: {err}");
    }
    err
}

#[track_caller]
fn accepted(out: &Output) -> Value {
    assert!(out.status.success(), "must be accepted: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON plan")
}

const WORKLOAD: &str = "apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {name: w1, namespace: ops}
spec:
  owner: LTU
  confidentiality: {policy: NATO, classification: RESTRICTED, categories: [{tagName: Releasable To, values: [LTU, POL]}]}
  replicas: 1
  template: {spec: {containers: [{name: a, image: b}]}}
";

#[test]
fn unknown_fields_are_rejected_naming_the_field() {
    for (what, from, to, field) in [
        (
            "categoriez",
            "categories: [{tagName: Releasable To, values: [LTU, POL]}]}",
            "categoriez: [{tagName: Releasable To, values: [LTU, POL]}]}",
            "spec.confidentiality.categoriez",
        ),
        ("residancy", "  replicas: 1\n", "  replicas: 1\n  residancy: [LTU]\n", "spec.residancy"),
        (
            "in metadata",
            "metadata: {name: w1, namespace: ops}",
            "metadata: {name: w1, namespace: ops, lables: {a: b}}",
            "metadata.lables",
        ),
        ("top level", "kind: MissionWorkload\n", "kind: MissionWorkload\nsepc: {}\n", "sepc"),
    ] {
        let d =
            Dir::new(&format!("unknown-{}", what.replace(' ', "-")), &[("50-w.yaml", &WORKLOAD.replacen(from, to, 1))]);
        let err = rejected(&d.plan(&[]), &["MissionWorkload/w1", field]);
        assert!(err.contains("unknown field"), "{what}: {err}");
    }
    // Inside the pod template's light schema (preserve-unknown-fields), anything goes, as on the API server.
    let free = WORKLOAD.replacen("{name: a, image: b}", "{name: a, image: b, futureField: 1}", 1);
    let d = Dir::new("unknown-template", &[("50-w.yaml", &free)]);
    accepted(&d.plan(&["-o", "json"]));
}

#[test]
fn set_and_map_lists_are_unique() {
    let policy = "apiVersion: marshal.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: twice}
spec:
  policyIdentifier: TWICE
  classifications: [UNCLASSIFIED, SECRET, RESTRICTED, SECRET]
";
    let d = Dir::new("dup-policy", &[("05-p.yaml", policy)]);
    rejected(&d.plan(&[]), &["SecurityPolicy/twice", "spec.classifications[3]", "Duplicate value", "SECRET"]);

    let dup_tag = WORKLOAD.replacen(
        "categories: [{tagName: Releasable To, values: [LTU, POL]}]",
        "categories: [{tagName: Releasable To, values: [LTU]}, {tagName: Releasable To, values: [POL]}]",
        1,
    );
    let d = Dir::new("dup-map", &[("50-w.yaml", &dup_tag)]);
    rejected(&d.plan(&[]), &["spec.confidentiality.categories[1]", "Duplicate value", "tagName"]);

    let dup_value = WORKLOAD.replacen("values: [LTU, POL]", "values: [LTU, POL, LTU]", 1);
    let d = Dir::new("dup-set", &[("50-w.yaml", &dup_value)]);
    rejected(&d.plan(&[]), &["spec.confidentiality.categories[0].values[2]", "Duplicate value"]);
}

#[test]
fn the_engine_never_trusts_a_policy_the_api_server_would_refuse() {
    // SECRET listed twice, first below RESTRICTED: the first match would pass a host whose maximum is RESTRICTED.
    let twice: SecurityPolicy = serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "nato"},
        "spec": {"policyIdentifier": "NATO",
                 "classifications": ["UNCLASSIFIED", "SECRET", "RESTRICTED", "CONFIDENTIAL", "SECRET"],
                 "categories": [{"tagName": "Releasable To", "type": "Permissive"}]}
    }))
    .expect("policy");
    let mut c = cluster("pol-1", "POL", &["core"]);
    c.max_classification = Some("RESTRICTED".into());
    let snap = Snapshot::new(&[twice], vec![c], &[], Settings::default());
    let w = workload(json!({"confidentiality": {"classification": "SECRET"}, "replicas": 1}));
    let d = decide(&w, &snap, &History::default(), t(0));
    let v = verdict(&d, "pol-1", "core");
    assert!(!v.eligible, "{v:?}");
    assert_eq!(v.reason.as_str(), "PolicyUnknown", "{}", v.message);
    assert!(v.message.contains("SECRET") && v.message.contains("more than once"), "{}", v.message);
    assert!(d.placements.is_empty());
}

#[test]
fn every_time_the_api_server_accepts_is_read() {
    let d = Dir::new("never", &[("50-w.yaml", WORKLOAD)]);
    let path = d.0.join("10-member-clusters.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replacen("reviewBy: \"2027-06-30T00:00:00Z\"", "reviewBy: \"9999-12-31T23:59:59Z\"", 1))
        .expect("write");
    let plan = accepted(&d.plan(&["-o", "json"]));
    let v = plan["steps"][0]["workloads"]["ops/w1"]["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .find(|v| v["cluster"] == "pol-1" && v["tier"] == "core")
        .cloned()
        .expect("pol-1/core");
    assert_eq!(v["eligible"], true, "a reviewBy of 9999-12-31T23:59:59Z never expires: {v}");

    let bad = Dir::new("bad-time", &[("50-w.yaml", WORKLOAD)]);
    let path = bad.0.join("10-member-clusters.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replacen("reviewBy: \"2027-06-30T00:00:00Z\"", "reviewBy: \"soon\"", 1)).expect("write");
    rejected(&bad.plan(&[]), &["MemberCluster/pol-1", "spec.clearance.reviewBy"]);
}

#[test]
fn a_scenario_offset_beyond_time_is_an_error_naming_the_event() {
    let d = Dir::new("offset", &[("50-w.yaml", WORKLOAD)]);
    let scenario = d.0.join("scenario.yaml");
    std::fs::write(
        &scenario,
        "events:\n  - {at: 30s, cluster: {name: pol-1, reachable: false}}\n  - {at: 300000000000s, cluster: {name: pol-1, reachable: true}}\n",
    )
    .expect("write");
    let err = rejected(&d.plan(&["--scenario", scenario.to_str().expect("path")]), &["300000000000s", "pol-1"]);
    assert!(err.contains("beyond"), "{err}");
}

#[test]
fn overflowing_requests_are_invalid_naming_the_field() {
    // Each request is a valid quantity; their sum is not a number of bytes anyone can count.
    let w = workload(json!({"template": {"spec": {"containers": [
        {"name": "a", "image": "x", "resources": {"requests": {"memory": "5E"}}},
        {"name": "b", "image": "x", "resources": {"requests": {"memory": "5E"}}}]}}}));
    let why = w.invalid.clone().expect("invalid");
    assert!(why.contains("spec.template.spec.containers[1].resources.requests.memory"), "{why}");
    let d = decide(&w, &snapshot(vec![cluster("pol-1", "POL", &["core"])], &[]), &History::default(), t(0));
    assert!(d.placements.is_empty(), "an overflowing request fits nowhere: {:?}", d.placements);
    assert!(d.message.starts_with("invalid:"), "{}", d.message);
}

#[test]
fn replica_totals_never_wrap() {
    let w = workload(json!({"replicas": 4}));
    let big = |cluster: &str| CurrentPlacement {
        cluster: cluster.into(),
        tier: "core".into(),
        replicas: u32::MAX / 2 + 1,
        since: t(-60),
        reason: "Preferred".into(),
        ready: None,
    };
    let mut cs = vec![
        cluster("pol-1", "POL", &["core"]),
        cluster("deu-1", "DEU", &["core"]),
        cluster("fra-1", "FRA", &["core"]),
    ];
    cs[1].heartbeat = Some(t(-3600));
    cs[2].heartbeat = Some(t(-3600));
    let hist = History { placements: vec![big("deu-1"), big("pol-1")], ..History::default() };
    let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
    assert!(d.frozen, "{}", d.message);
    assert_eq!(d.placed(), u32::MAX, "the total saturates instead of wrapping to 0");
}

#[test]
fn a_workload_added_by_a_scenario_is_admitted_as_the_hub_would() {
    let d = Dir::new("add-invalid", &[]);
    let scenario = d.0.join("scenario.yaml");
    std::fs::write(
        &scenario,
        "events:\n  - at: 30s\n    addWorkload: {apiVersion: marshal.dev/v1alpha1, kind: MissionWorkload, metadata: {name: late, namespace: ops}, spec: {owner: LTU, confidentiality: {policy: NATO, classification: RESTRICTED, categories: [{tagName: Releasable To, values: [XYZ]}]}, replicas: 1, template: {spec: {containers: [{name: a, image: b}]}}}}\n",
    )
    .expect("write");
    rejected(
        &d.plan(&["--scenario", scenario.to_str().expect("path")]),
        &["30s", "addWorkload", "Releasable To value XYZ is not declared"],
    );
}
