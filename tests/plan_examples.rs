//! End-to-end tests of `marshal plan` on the Baltic example: the binary, its table and JSON output, and
//! its errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn marshal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run marshal")
}

fn plan_json() -> Value {
    let out = marshal(&[
        "plan",
        "-f",
        "examples/baltic",
        "--scenario",
        "examples/baltic/scenario-link-loss.yaml",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// `cluster/tier=replicas` of a workload at a step.
fn placements(step: &Value, key: &str) -> Vec<String> {
    step["workloads"][key]["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(|p| format!("{}/{}={}", p["cluster"].as_str().unwrap(), p["tier"].as_str().unwrap(), p["replicas"]))
        .collect()
}

fn step<'a>(plan: &'a Value, at: &str) -> &'a Value {
    plan["steps"].as_array().unwrap().iter().find(|s| s["at"] == at).unwrap_or_else(|| {
        panic!("no step at {at}: {:?}", plan["steps"].as_array().unwrap().iter().map(|s| &s["at"]).collect::<Vec<_>>())
    })
}

#[test]
fn link_loss_story_in_json() {
    let plan = plan_json();
    let triage = "baltic-shield/sigint-triage";
    let steps = plan["steps"].as_array().unwrap();
    let ats: Vec<&str> = steps.iter().map(|s| s["at"].as_str().unwrap()).collect();
    assert_eq!(
        ats,
        ["0s", "60s", "90s", "180s", "200s", "300s", "600s"],
        "events plus the toleration and failback reviews"
    );
    assert!(steps[0]["event"].is_null());

    // t=0: core in Poland while the link from the data is good.
    assert_eq!(placements(step(&plan, "0s"), triage), ["pol-1/core=2"]);
    // The link degrades: the placement rides it out for tolerationSeconds (30 s)...
    let s60 = step(&plan, "60s");
    assert_eq!(placements(s60, triage), ["pol-1/core=2"]);
    let v = s60["workloads"][triage]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["cluster"] == "pol-1" && v["tier"] == "core")
        .unwrap();
    assert_eq!((v["eligible"].as_bool(), v["reason"].as_str()), (Some(false), Some("LinkInsufficient")));
    // ...then moves to the edge, next to its data.
    let s90 = step(&plan, "90s");
    assert_eq!(placements(s90, triage), ["ltu-1/edge=2"]);
    let moves = s90["workloads"][triage]["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["from"], serde_json::json!({"cluster": "pol-1", "tier": "core"}));
    assert_eq!(moves[0]["to"], serde_json::json!({"cluster": "ltu-1", "tier": "edge"}));
    assert_eq!(moves[0]["reason"], "LinkInsufficient");
    // A brief recovery at 3m and a good link from 5m: no move until 300 s of continuously good link.
    for at in ["180s", "200s", "300s"] {
        assert_eq!(placements(step(&plan, at), triage), ["ltu-1/edge=2"], "at {at}");
        assert!(step(&plan, at)["workloads"][triage]["moves"].as_array().unwrap().is_empty(), "at {at}");
    }
    assert_eq!(
        step(&plan, "300s")["workloads"][triage]["failbackPending"]["targets"],
        serde_json::json!(["pol-1/core"])
    );
    let s600 = step(&plan, "600s");
    assert_eq!(placements(s600, triage), ["pol-1/core=2"]);
    assert_eq!(s600["workloads"][triage]["moves"][0]["reason"], "Failback");

    // Every verdict names its cluster and tier; eligible exactly when the reason is Eligible.
    for s in steps {
        for (_, w) in s["workloads"].as_object().unwrap() {
            for v in w["verdicts"].as_array().unwrap() {
                assert!(v["cluster"].is_string() && v["tier"].is_string());
                assert_eq!(v["eligible"].as_bool().unwrap(), v["reason"] == "Eligible");
            }
        }
    }
}

#[test]
fn the_other_workloads_tell_their_part() {
    let plan = plan_json();
    let s0 = step(&plan, "0s");
    let w = &s0["workloads"];
    // Spread across two nations' data centres, never to LVA (not releasable).
    assert_eq!(placements(s0, "baltic-shield/isr-fusion"), ["deu-1/core=1", "pol-1/core=3"]);
    // Residency: POL or DEU only.
    assert_eq!(placements(s0, "baltic-shield/logistics-ledger"), ["pol-1/core=3"]);
    let reasons = |key: &str, cluster: &str| -> Vec<String> {
        w[key]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["cluster"] == cluster)
            .map(|v| v["reason"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(reasons("baltic-shield/logistics-ledger", "ltu-1").iter().all(|r| r == "ResidencyViolation"));
    // Host refusal: Latvia does not host German-owned work; deu-1 is outside the selected region.
    assert_eq!(placements(s0, "baltic-shield/weather-feed"), ["ltu-1/edge=1", "pol-1/edge=1"]);
    assert!(reasons("baltic-shield/weather-feed", "lva-1").iter().all(|r| r == "HostRefused"));
    assert!(reasons("baltic-shield/weather-feed", "deu-1").iter().all(|r| r == "NotSelected"));
    // Fail closed: nobody holds ATOMAL.
    let np = &w["baltic-shield/nuclear-planning"];
    assert_eq!(np["phase"], "Unplaceable");
    assert!(np["placements"].as_array().unwrap().is_empty());
    assert!(
        np["message"].as_str().unwrap().contains("0/4 clusters eligible: 2 ClassificationNotCleared, 2 NotReleasable"),
        "{}",
        np["message"]
    );
}

#[test]
fn table_output_tells_the_same_story() {
    let out = marshal(&["plan", "-f", "examples/baltic", "--scenario", "examples/baltic/scenario-link-loss.yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("== t=90s"), "{text}");
    assert!(text.contains("moved    2 pol-1/core -> ltu-1/edge (LinkInsufficient)"), "{text}");
    assert!(text.contains("moved    2 ltu-1/edge -> pol-1/core (Failback)"), "{text}");
    assert!(text.contains("[tolerated 30s more]"), "{text}");
}

#[test]
fn same_inputs_same_plan_regardless_of_file_order() {
    let a = marshal(&["plan", "-f", "examples/baltic", "-o", "json"]);
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir("examples/baltic")
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.ends_with(".yaml") && !name.starts_with("scenario")
            })
            .collect();
        v.sort();
        v.reverse();
        v
    };
    let mut args = vec!["plan".to_string()];
    for f in &files {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    args.extend(["-o".into(), "json".into()]);
    let b = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    let plan: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(plan["now"], "2026-11-28T09:00:00Z", "time zero is the newest observation, not the wall clock");
}

fn bad_input(name: &str, yaml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("marshal-plan-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["00-security-policy.yaml", "10-member-clusters.yaml"] {
        std::fs::copy(Path::new("examples/baltic").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("50-bad.yaml"), yaml).unwrap();
    let out = marshal(&["plan", "-f", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "bad input exits 2");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_input_names_file_object_and_field() {
    let err = bad_input(
        "type",
        "apiVersion: marshal.dev/v1alpha1\nkind: MissionWorkload\nmetadata: {name: w1, namespace: x}\nspec:\n  owner: LTU\n  confidentiality: {policy: NATO, classification: RESTRICTED}\n  replicas: many\n  template: {spec: {containers: [{name: a, image: b}]}}\n",
    );
    assert!(
        err.contains("50-bad.yaml") && err.contains("MissionWorkload/w1") && err.contains("spec.replicas"),
        "{err}"
    );

    let err = bad_input(
        "enum",
        "apiVersion: marshal.dev/v1alpha1\nkind: ClusterLink\nmetadata: {name: a.b}\nspec: {from: a, to: b}\nstatus: {state: Sideways}\n",
    );
    assert!(err.contains("ClusterLink/a.b") && err.contains("status.state"), "{err}");

    let err = bad_input(
        "missing",
        "apiVersion: marshal.dev/v1alpha1\nkind: MemberCluster\nmetadata: {name: x-1}\nspec: {nation: FRA}\n",
    );
    assert!(err.contains("MemberCluster/x-1") && err.contains("spec"), "{err}");

    // The API server's own rules: schema patterns and CEL, naming the field.
    let err = bad_input(
        "pattern",
        "apiVersion: marshal.dev/v1alpha1\nkind: MemberCluster\nmetadata: {name: x-1}\nspec: {nation: Poland, connection: {mode: Push, kubeconfigSecretRef: {namespace: a, name: b, key: c}}, clearance: {policy: NATO, classifications: [SECRET], reviewBy: \"2027-01-01T00:00:00Z\"}, admission: {ownerNations: [\"*\"]}}\n",
    );
    assert!(
        err.contains("MemberCluster/x-1") && err.contains("field spec.nation") && err.contains("^[A-Z]{3}$"),
        "{err}"
    );
    let err = bad_input(
        "cel",
        "apiVersion: marshal.dev/v1alpha1\nkind: ClusterLink\nmetadata: {name: ltu-1.deu-1}\nspec: {from: ltu-1, to: pol-1}\n",
    );
    assert!(
        err.contains("ClusterLink/ltu-1.deu-1") && err.contains("metadata.name must be <spec.from>.<spec.to>"),
        "{err}"
    );
    let err = bad_input(
        "cel-push",
        "apiVersion: marshal.dev/v1alpha1\nkind: MemberCluster\nmetadata: {name: x-1}\nspec: {nation: FRA, connection: {mode: Push}, clearance: {policy: NATO, classifications: [SECRET], reviewBy: \"2027-01-01T00:00:00Z\"}, admission: {ownerNations: [\"*\"]}}\n",
    );
    assert!(err.contains("kubeconfigSecretRef is required when mode is Push"), "{err}");

    let err = bad_input("yaml", "kind: [unclosed\n");
    assert!(err.contains("50-bad.yaml") && err.contains("document 1"), "{err}");

    let err = bad_input("kind", "apiVersion: marshal.dev/v1alpha1\nkind: Mission\nmetadata: {name: m}\n");
    assert!(err.contains("kind") && err.contains("Mission"), "{err}");
}

#[test]
fn bad_scenario_names_the_event_and_field() {
    let dir = std::env::temp_dir().join(format!("marshal-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, "events:\n  - at: 30s\n    link: {name: ltu-1.pol-1, state: Down}\n  - at: soon\n    cluster: {name: pol-1, reachable: false}\n").unwrap();
    let out = marshal(&["plan", "-f", "examples/baltic", "--scenario", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("events[1]") && err.contains("field at"), "{err}");

    std::fs::write(&file, "events:\n  - at: 30s\n    link: {name: nowhere.pol-1, state: Down}\n").unwrap();
    let out = marshal(&["plan", "-f", "examples/baltic", "--scenario", file.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unknown ClusterLink nowhere.pol-1") && err.contains("30s"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
