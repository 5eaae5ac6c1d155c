//! Issue 13 §2: facts fail closed from the moment they went bad. Tolerations are anchored at the fact, a
//! contradicted `Reachable` condition is judged from the heartbeat's time, capacity has an age, future timestamps
//! never extend freshness, and the planner steps to the moments facts go stale.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use marshal::placement::{CurrentPlacement, History, decide};
use serde_json::{Value, json};

fn current(cluster: &str, tier: &str, replicas: u32) -> CurrentPlacement {
    CurrentPlacement {
        cluster: cluster.into(),
        tier: tier.into(),
        replicas,
        since: t(-86_400),
        reason: "Preferred".into(),
        ready: None,
    }
}

fn three() -> Vec<marshal::placement::ClusterFacts> {
    vec![
        cluster("pol-1", "POL", &["core", "edge"]),
        cluster("deu-1", "DEU", &["core"]),
        cluster("ltu-1", "LTU", &["edge"]),
    ]
}

#[test]
fn a_cluster_never_heard_from_has_nothing_to_tolerate() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]}}));
    let mut cs = three();
    cs[2].heartbeat = None;
    let hist = History { placements: vec![current("ltu-1", "edge", 2)], ..History::default() };
    let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
    let v = verdict(&d, "ltu-1", "edge");
    assert_eq!(v.reason.as_str(), "Unreachable");
    assert_eq!(v.tolerated_until, None, "nothing to tolerate: {v:?}");
    assert_eq!(placed(&d), ["pol-1/core=2"], "moved at once");
    assert_eq!(d.moves[0].reason, "Unreachable");
}

#[test]
fn an_unreachable_cluster_is_tolerated_from_its_last_heartbeat_plus_grace() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]},
        "failover": {"tolerationSeconds": 30}}));
    let hist = History { placements: vec![current("ltu-1", "edge", 2)], ..History::default() };
    // Unreachable from t=-85 (last heartbeat t=-100, grace 15 s); its toleration ended at t=-55, before the
    // first decision that sees it (no verdict in history): it does not start at that decision.
    let mut cs = three();
    cs[2].heartbeat = Some(t(-100));
    let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    // Heard 20 s ago: unreachable since 5 s, tolerated until t=25.
    let mut cs = three();
    cs[2].heartbeat = Some(t(-20));
    let d = decide(&w, &snapshot(cs, &[]), &hist, t(0));
    assert_eq!(placed(&d), ["ltu-1/edge=2"]);
    assert_eq!(verdict(&d, "ltu-1", "edge").tolerated_until, Some(t(25)));
}

#[test]
fn a_link_stale_for_a_day_is_not_tolerated_for_30_s_more() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL", "LTU"],
        "dataSource": {"cluster": "ltu-1", "maxRttMs": 50}}, "failover": {"tolerationSeconds": 30}}));
    let hist = History { placements: vec![current("pol-1", "core", 2)], ..History::default() };
    let stale = link("ltu-1", "pol-1", "Up", 10, 100, t(-86_400));
    let d = decide(&w, &snapshot(three(), &[stale]), &hist, t(0));
    let v = verdict(&d, "pol-1", "core");
    assert_eq!(v.reason.as_str(), "LinkInsufficient", "{}", v.message);
    assert_eq!(v.tolerated_until, None, "stale since t=-86340: its toleration is long over");
    assert_eq!(placed(&d), ["ltu-1/edge=2"]);
    // Stale for 10 s: tolerated for the 20 s left of its 30.
    let recent = link("ltu-1", "pol-1", "Up", 10, 100, t(-70));
    let d = decide(&w, &snapshot(three(), &[recent]), &hist, t(0));
    assert_eq!(placed(&d), ["pol-1/core=2"]);
    assert_eq!(verdict(&d, "pol-1", "core").tolerated_until, Some(t(20)));
}

#[test]
fn a_link_never_measured_has_nothing_to_tolerate() {
    let w = workload(json!({"replicas": 2, "placement": {"preferredNations": ["POL", "LTU"],
        "dataSource": {"cluster": "ltu-1", "maxRttMs": 50}}}));
    let hist = History { placements: vec![current("pol-1", "core", 2)], ..History::default() };
    let mut l = link("ltu-1", "pol-1", "Up", 10, 100, t(0));
    l.status.as_mut().expect("status").observed_at = None;
    let d = decide(&w, &snapshot(three(), &[l]), &hist, t(0));
    assert_eq!(placed(&d), ["ltu-1/edge=2"]);
    assert_eq!(verdict(&d, "pol-1", "core").tolerated_until, None);
}

// ---------------------------------------------------------------------------------------------------------
// the planner: the same rules on the YAML users apply

struct Plan {
    dir: PathBuf,
}

impl Plan {
    fn new(name: &str) -> Plan {
        let dir = std::env::temp_dir().join(format!("marshal-facts-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/baltic");
        for f in ["00-security-policy.yaml", "10-member-clusters.yaml", "20-cluster-links.yaml"] {
            std::fs::copy(root.join(f), dir.join(f)).expect("copy example");
        }
        Plan { dir }
    }

    fn file(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.dir.join(name), text).expect("write");
        self
    }

    /// Edits one example file as text.
    fn edit(&self, name: &str, from: &str, to: &str) -> &Self {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{name} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        self
    }

    fn run(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan".to_string(), "-f".into(), self.dir.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["-o".into(), "json".into()]);
        let out = Command::new(env!("CARGO_BIN_EXE_marshal")).args(&args).output().expect("run marshal");
        assert!(out.status.success(), "marshal {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TRIAGE: &str = "apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {name: triage, namespace: ops}
spec:
  owner: LTU
  confidentiality: {policy: NATO, classification: CONFIDENTIAL, categories: [{tagName: Releasable To, values: [LTU, POL]}]}
  replicas: 2
  template: {spec: {containers: [{name: t, image: x, resources: {requests: {cpu: '1', memory: 1Gi}}}]}}
  placement:
    tiers: [core, edge]
    preferredNations: [POL, LTU]
    dataSource: {cluster: ltu-1, maxRttMs: 50, minBandwidthMbps: 20}
  failover: {tolerationSeconds: 30, failbackAfterSeconds: 300}
";

fn verdict_of<'a>(step: &'a Value, key: &str, cluster: &str, tier: &str) -> &'a Value {
    step["workloads"][key]["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .find(|v| v["cluster"] == cluster && v["tier"] == tier)
        .unwrap_or_else(|| panic!("no verdict {cluster}/{tier} in {}", step["workloads"][key]))
}

fn placements(step: &Value, key: &str) -> Vec<String> {
    step["workloads"][key]["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(|p| {
            format!("{}/{}={}", p["cluster"].as_str().unwrap_or("?"), p["tier"].as_str().unwrap_or("?"), p["replicas"])
        })
        .collect()
}

#[test]
fn the_planner_judges_reachability_from_the_heartbeat_time() {
    // pol-1 says Reachable=True, but its last heartbeat is an hour older than the rest of the inputs.
    let p = Plan::new("contradiction");
    p.file("30-w.yaml", TRIAGE).edit(
        "10-member-clusters.yaml",
        "  lastHeartbeatTime: \"2026-11-28T09:00:00Z\"",
        "  lastHeartbeatTime: \"2026-11-28T08:00:00Z\"",
    );
    let plan = p.run(&[]);
    let s0 = &plan["steps"][0];
    for tier in ["core", "edge"] {
        let v = verdict_of(s0, "ops/triage", "pol-1", tier);
        assert_eq!(v["reason"], "Unreachable", "{v}");
    }
    assert_eq!(placements(s0, "ops/triage"), ["ltu-1/edge=2"]);
}

#[test]
fn the_planner_ages_capacity() {
    let p = Plan::new("capacity");
    p.file("30-w.yaml", TRIAGE);
    // Every capacity report in the example is from 09:00; an hour later it is unknown.
    let plan = p.run(&["--now", "2026-11-28T10:00:00Z"]);
    let s0 = &plan["steps"][0];
    let v = verdict_of(s0, "ops/triage", "ltu-1", "edge");
    assert!(v["reason"] == "Unreachable" || v["reason"] == "CapacityUnknown", "{v}");
    // With heartbeats at 10:00 but capacity still from 09:00, capacity is the reason.
    let p = Plan::new("capacity-fresh-hb");
    p.file("30-w.yaml", TRIAGE);
    for _ in 0..4 {
        p.edit(
            "10-member-clusters.yaml",
            "lastHeartbeatTime: \"2026-11-28T09:00:00Z\"",
            "lastHeartbeatTime: \"2026-11-28T10:00:00Z\"",
        );
    }
    let plan = p.run(&["--now", "2026-11-28T10:00:00Z"]);
    let s0 = &plan["steps"][0];
    let v = verdict_of(s0, "ops/triage", "ltu-1", "edge");
    assert_eq!(v["reason"], "CapacityUnknown", "{v}");
    assert!(placements(s0, "ops/triage").is_empty(), "nothing is placed on capacity of unknown age");
    // Within the bound (30 s by default, or --capacity-stale) it is fresh (pol-1 is out: its link is stale).
    let plan = p.run(&["--now", "2026-11-28T10:00:00Z", "--capacity-stale", "7200"]);
    assert_eq!(verdict_of(&plan["steps"][0], "ops/triage", "ltu-1", "edge")["reason"], "Eligible");
    assert_eq!(placements(&plan["steps"][0], "ops/triage"), ["ltu-1/edge=2"]);
}

#[test]
fn the_planner_steps_to_the_moment_a_link_goes_stale() {
    let p = Plan::new("stale-step");
    p.file("30-w.yaml", TRIAGE);
    let scenario = p.dir.join("scenario.yaml");
    std::fs::write(&scenario, "events:\n  - {at: 60s, link: {name: ltu-1.pol-1, reporting: false}}\n").expect("write");
    let plan = p.run(&["--scenario", scenario.to_str().expect("path")]);
    let steps = plan["steps"].as_array().expect("steps");
    let ats: Vec<&str> = steps.iter().filter_map(|s| s["at"].as_str()).collect();
    // Last report at 60 s, stale after 60 s: stale from 121 s, tolerated 30 s from 120 s, moved at 150 s.
    assert!(ats.contains(&"121s"), "the plan steps to the moment the link's facts go stale: {ats:?}");
    let last = steps.last().expect("a step");
    assert_eq!(placements(last, "ops/triage"), ["ltu-1/edge=2"], "the placement does not look kept for ever: {ats:?}");
    let stale_step = steps.iter().find(|s| s["at"] == "121s").expect("step");
    assert!(stale_step["event"].as_str().is_some_and(|e| e.contains("link ltu-1.pol-1")), "{}", stale_step["event"]);
}

#[test]
fn the_planner_never_lets_a_future_timestamp_extend_freshness() {
    // A link measured "an hour from now" is as old as one measured at time zero once its monitor stops.
    let p = Plan::new("future");
    p.file("30-w.yaml", TRIAGE).edit(
        "20-cluster-links.yaml",
        "status: {state: Up, rttMs: 12, bandwidthMbps: 100, lossPercent: 0, observedAt: \"2026-11-28T09:00:00Z\"",
        "status: {state: Unknown, rttMs: 12, bandwidthMbps: 100, lossPercent: 0, observedAt: \"2026-11-28T10:00:00Z\"",
    );
    let plan = p.run(&["--now", "2026-11-28T09:00:00Z"]);
    let steps = plan["steps"].as_array().expect("steps");
    let ats: Vec<&str> = steps.iter().filter_map(|s| s["at"].as_str()).collect();
    assert!(ats.contains(&"61s"), "stale 61 s after time zero, not after the future observedAt: {ats:?}");
    let s61 = steps.iter().find(|s| s["at"] == "61s").expect("step");
    let v = verdict_of(s61, "ops/triage", "pol-1", "core");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("stale")), "{v}");
}
