//! A member's refusal on the federation: the member (ltu-1) holds its own `marshal-clearance` ConfigMap that
//! clears it for RESTRICTED only, while the hub's MemberCluster still says CONFIDENTIAL. The hub learns the
//! truth only from the refusal, and must act on it: place elsewhere, never give up the running copy for a
//! replacement the member refused, and come back once the member accepts.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::*;
use super::*;

const NAME: &str = "e2e-refusal";

const RESTRICTED_ONLY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: marshal-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: marshal-clearance, namespace: marshal-system}
data:
  clearance.yaml: |
    nation: LTU
    clearance:
      policy: NATO
      classifications: [UNCLASSIFIED, RESTRICTED]
      categories: [{tagName: Releasable To, values: [LTU, NATO]}]
      reviewBy: "2099-01-01T00:00:00Z"
    policies:
    - {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, COSMIC TOP SECRET], categories: [{tagName: Releasable To, type: Permissive}, {tagName: Special Handling, type: Restrictive, values: [ATOMAL, CRYPTO]}]}
"#;

fn ltu_assignment() -> Option<Value> {
    get("hub", &["assignments", "-n", "marshal-ltu-1", &format!("{NS}.{NAME}")])
}

fn verdict_reason(w: &Value, cluster: &str) -> Option<String> {
    w["status"]["verdicts"].as_array()?.iter().find(|v| v["cluster"] == cluster)?["reason"].as_str().map(String::from)
}

fn set_ltu_taint(on: bool) {
    let patch = if on {
        r#"{"spec":{"taints":[{"key":"marshal.dev/maintenance","effect":"NoSchedule"}]}}"#
    } else {
        r#"{"spec":{"taints":[]}}"#
    };
    kubectl("hub", &["patch", "mc", "ltu-1", "--type", "merge", "-p", patch]).expect("patch ltu-1 taints");
}

/// The pol-1 copy: (uid, spec.replicas, ready replicas).
fn pol_copy() -> Option<(String, i64, i64)> {
    let d = member_deployment("pol-1", NS, NAME)?;
    Some((
        d["metadata"]["uid"].as_str()?.to_string(),
        d["spec"]["replicas"].as_i64()?,
        d["status"]["readyReplicas"].as_i64().unwrap_or(0),
    ))
}

/// Waits for the engine to have moved the work off ltu-1 because of the refusal, and checks what stays behind:
/// the refused Assignment, parked with no replicas, and nothing of the workload in ltu-1.
fn wait_refusal_obeyed(what: &str) -> Vec<String> {
    let placed = wait_for(what, Duration::from_secs(120), || {
        let w = workload(NAME);
        let refused = ltu_assignment().is_some_and(|a| a["status"]["phase"] == "Refused" && a["spec"]["replicas"] == 0);
        (refused
            && verdict_reason(&w, "ltu-1").as_deref() == Some("RefusedByMember")
            && condition(&w, "Ready").as_deref() == Some("True"))
        .then(|| placements(&w))
    });
    let w = workload(NAME);
    let compliant =
        w["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Compliant").cloned());
    let compliant = compliant.expect("Compliant condition");
    assert_eq!(compliant["status"], "False", "{compliant}");
    assert!(compliant["message"].as_str().is_some_and(|m| m.contains("ClassificationNotCleared")), "{compliant}");
    assert!(member_deployment("ltu-1", NS, NAME).is_none(), "nothing of {NAME} may stay in ltu-1");
    check_members(NAME);
    placed
}

/// The whole scenario. Leaves the federation as it found it (no ConfigMap, no taint, no workload).
pub fn member_refusal(c: &ControllerProcess) {
    step("member refusal: ltu-1's own clearance (RESTRICTED only) overrides the hub's view (CONFIDENTIAL)");
    set_ltu_taint(true);
    apply("ltu-1", RESTRICTED_ONLY).expect("ltu-1 clearance ConfigMap");
    let yaml = ltu_pol_workload(NAME, "CONFIDENTIAL", 2, "100m", "{tolerationSeconds: 10, failbackAfterSeconds: 5}");
    apply("hub", &yaml).expect(NAME);
    assert_eq!(wait_ready(NAME, Duration::from_secs(120)), ["pol-1/edge=2"], "ltu-1 is tainted: pol-1 first");
    let (uid, _, _) = pol_copy().expect("pol-1 copy");

    step("make-before-break toward a refusing member keeps the running copy");
    let t = Instant::now();
    set_ltu_taint(false);
    // Failback (5 s) sends the replicas to ltu-1, which refuses; the engine reads the refusal and keeps pol-1.
    // Throughout, the pol-1 copy is the same Deployment, never scaled down.
    let mut samples = 0;
    wait_for("the move to ltu-1 refused and taken back", Duration::from_secs(120), || {
        let (u, replicas, ready) = pol_copy().expect("pol-1 copy must never go");
        assert_eq!((u.as_str(), replicas, ready), (uid.as_str(), 2, 2), "pol-1 copy changed");
        samples += 1;
        let w = workload(NAME);
        (ltu_assignment().is_some_and(|a| a["status"]["phase"] == "Refused")
            && verdict_reason(&w, "ltu-1").as_deref() == Some("RefusedByMember"))
        .then_some(())
    });
    eprintln!(
        "  refused and taken back {:.1}s after ltu-1 became eligible ({samples} samples of the pol-1 copy)",
        t.elapsed().as_secs_f64()
    );
    let moved = workload_events(NAME, "Moved");
    assert!(moved.iter().any(|m| m.contains("-> ltu-1/edge") && m.contains("(Failback)")), "{moved:?}");
    assert!(
        moved.iter().any(|m| m.contains("ltu-1/edge -> pol-1/edge") && m.contains("(RefusedByMember)")),
        "{moved:?}"
    );
    assert_eq!(wait_refusal_obeyed("refusal obeyed"), ["pol-1/edge=2"]);
    assert_eq!(pol_copy().map(|p| p.0), Some(uid.clone()), "the same pol-1 copy");

    step("a standing refusal writes nothing");
    std::thread::sleep(Duration::from_secs(3));
    let hub_writes = |c: &ControllerProcess| {
        c.writes(|l| l.contains("target=\"hub\"") && (l.contains("assignments") || l.contains("missionworkloads")))
    };
    let before = hub_writes(c);
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(hub_writes(c), before, "writes to Assignments or workloads while nothing changed");

    step("the member accepts again: the cluster returns");
    let t = Instant::now();
    kubectl("ltu-1", &["delete", "configmap", "-n", "marshal-system", "marshal-clearance"]).expect("delete ConfigMap");
    // Still Ready on pol-1 meanwhile: wait for the failback (5 s after ltu-1 is eligible again).
    wait_for("Ready on ltu-1", Duration::from_secs(120), || {
        let w = workload(NAME);
        (condition(&w, "Ready").as_deref() == Some("True") && placements(&w) == ["ltu-1/edge=2"]).then_some(())
    });
    wait_for("pol-1 copy removed", Duration::from_secs(60), || pol_copy().is_none().then_some(()));
    check_members(NAME);
    let w = workload(NAME);
    assert_eq!(condition(&w, "Compliant").as_deref(), Some("True"));
    eprintln!("  back on ltu-1 and Ready {:.1}s after the member's clearance changed", t.elapsed().as_secs_f64());

    step("the member revokes a running placement: the work moves, the refusal stays on record");
    let t = Instant::now();
    apply("ltu-1", RESTRICTED_ONLY).expect("ltu-1 clearance ConfigMap");
    assert_eq!(wait_refusal_obeyed("moved off ltu-1"), ["pol-1/edge=2"]);
    eprintln!("  Ready on pol-1 {:.1}s after ltu-1 revoked its clearance", t.elapsed().as_secs_f64());

    kubectl("ltu-1", &["delete", "configmap", "-n", "marshal-system", "marshal-clearance"]).expect("delete ConfigMap");
    kubectl("hub", &["delete", "mw", "-n", NS, NAME, "--wait=false"]).expect("delete");
    wait_for("e2e-refusal gone everywhere", Duration::from_secs(90), || {
        (get("hub", &["mw", "-n", NS, NAME]).is_none()
            && ltu_assignment().is_none()
            && MEMBERS.iter().all(|m| member_deployment(m, NS, NAME).is_none()))
        .then_some(())
    });
}
