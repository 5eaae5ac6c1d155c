//! The Baltic exercise on the federation, shared by the end-to-end tests: installing it, a network monitor
//! that reports link facts, reading workloads, checking the members, and the members' own request counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::*;

/// Namespace of the exercise's workloads.
pub const NS: &str = "baltic-shield";
/// The exercise, in apply order.
pub const EXAMPLES: [&str; 5] = [
    "examples/baltic/05-namespace.yaml",
    "examples/baltic/00-security-policy.yaml",
    "examples/baltic/10-member-clusters.yaml",
    "examples/baltic/20-cluster-links.yaml",
    "examples/baltic/30-workloads.yaml",
];

/// Prints a step header.
pub fn step(name: &str) {
    eprintln!("\n=== {name}");
}

/// A file of the repository.
pub fn file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("read file")
}

/// Restores every link, removes MemberClusters other tests left (clusters that never heartbeat would count
/// towards a fleet freeze) and members' own clearance ConfigMaps other tests left (10-sync leaves ltu-1 cleared
/// for RESTRICTED only, which refuses the exercise's CONFIDENTIAL work), installs the CRDs and the admission
/// policy.
pub fn prepare_hub() {
    for m in MEMBERS {
        federation(&["link", m, "up"]);
        kubectl(m, &["delete", "configmap", "-n", "marshal-system", "marshal-clearance", "--ignore-not-found"])
            .expect("remove a member clearance ConfigMap left by another test");
    }
    if let Ok(names) = kubectl("hub", &["get", "mc", "-o", "name"]) {
        for name in names
            .lines()
            .filter(|n| !["pol-1", "deu-1", "ltu-1", "lva-1"].iter().any(|k| n.ends_with(&format!("/{k}"))))
        {
            kubectl("hub", &["delete", name, "--wait=false"]).expect("remove a foreign MemberCluster");
        }
    }
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    kubectl("hub", &["apply", "--server-side", "--force-conflicts", "-f", crds]).expect("CRDs");
    for crd in ["securitypolicies", "memberclusters", "clusterlinks", "missionworkloads", "assignments"] {
        // On a fresh hub `kubectl wait` fails at once while the new CRD has no conditions yet: ask again.
        wait_for(&format!("CRD {crd} established"), Duration::from_secs(60), || {
            let crd = format!("crd/{crd}.marshal.dev");
            kubectl("hub", &["wait", "--for", "condition=established", "--timeout=10s", &crd]).ok()
        });
    }
    apply("hub", &file("deploy/admission-policy.yaml")).expect("admission policy");
}

/// Applies files of the exercise in order.
pub fn apply_examples(files: &[&str]) {
    for f in files {
        // The admission policy's binding takes a moment to be enforced for new params; retry briefly.
        wait_for(&format!("apply {f}"), Duration::from_secs(30), || apply("hub", &file(f)).ok());
    }
}

/// [`prepare_hub`], then the whole exercise.
pub fn install() {
    step("install CRDs, the admission policy and the Baltic example");
    prepare_hub();
    apply_examples(&EXAMPLES);
}

/// Facts a network monitor reports for one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    /// `Up`, `Degraded` or `Down`.
    pub state: &'static str,
    /// Round-trip time.
    pub rtt_ms: u32,
    /// Bandwidth.
    pub bandwidth_mbps: u32,
}

/// A network monitor: reports the exercise's links every 5 s, as an external monitor would. Tests change what
/// it reports with [`LinkMonitor::set`], or [`LinkMonitor::pause`] a link to let its facts go stale.
pub struct LinkMonitor {
    facts: Arc<Mutex<BTreeMap<String, Option<LinkFacts>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The exercise's links when all is well.
pub const GOOD_LINKS: [(&str, u32, u32); 4] =
    [("ltu-1.pol-1", 12, 100), ("ltu-1.deu-1", 38, 40), ("ltu-1.lva-1", 7, 200), ("pol-1.deu-1", 18, 1000)];

/// Writes one link's status now.
pub fn report_link(name: &str, f: LinkFacts, observed_at: jiff::Timestamp) {
    let patch = format!(
        r#"{{"status":{{"state":"{}","rttMs":{},"bandwidthMbps":{},"lossPercent":0,"observedAt":"{observed_at}","reporter":"monitor/e2e"}}}}"#,
        f.state, f.rtt_ms, f.bandwidth_mbps
    );
    let _ = kubectl("hub", &["patch", "clink", name, "--subresource=status", "--type=merge", "-p", &patch]);
}

impl LinkMonitor {
    /// Starts reporting [`GOOD_LINKS`].
    pub fn start() -> Self {
        let facts: BTreeMap<String, Option<LinkFacts>> = GOOD_LINKS
            .iter()
            .map(|(n, rtt, bw)| (n.to_string(), Some(LinkFacts { state: "Up", rtt_ms: *rtt, bandwidth_mbps: *bw })))
            .collect();
        let facts = Arc::new(Mutex::new(facts));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (facts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let names: Vec<String> = f.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                for name in names {
                    // Read and write under the lock: a test's `set` can never be overwritten by facts read before it.
                    if let Ok(m) = f.lock()
                        && let Some(Some(facts)) = m.get(&name)
                    {
                        report_link(&name, *facts, jiff::Timestamp::now());
                    }
                }
                for _ in 0..10 {
                    if s.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        });
        LinkMonitor { facts, stop, thread: Some(thread) }
    }

    /// Reports `facts` for `link` from now on, starting at once.
    pub fn set(&self, link: &str, facts: LinkFacts) {
        if let Ok(mut m) = self.facts.lock() {
            m.insert(link.to_string(), Some(facts));
            report_link(link, facts, jiff::Timestamp::now());
        }
    }

    /// Stops reporting `link` (its facts age from their last `observedAt`).
    pub fn pause(&self, link: &str) {
        if let Ok(mut m) = self.facts.lock() {
            m.insert(link.to_string(), None);
        }
    }

    /// Reports every link as in [`GOOD_LINKS`] again.
    pub fn all_good(&self) {
        for (name, rtt, bw) in GOOD_LINKS {
            self.set(name, LinkFacts { state: "Up", rtt_ms: rtt, bandwidth_mbps: bw });
        }
    }
}

impl Drop for LinkMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A test MissionWorkload owned by LTU and releasable to LTU and POL, preferring them in that order, edge tier
/// first: `name`, its classification, replicas, cpu request and `failover` (YAML flow mapping).
pub fn ltu_pol_workload(name: &str, classification: &str, replicas: u32, cpu: &str, failover: &str) -> String {
    format!(
        r#"
apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {{name: {name}, namespace: {NS}}}
spec:
  owner: LTU
  confidentiality: {{policy: NATO, classification: {classification}, categories: [{{tagName: Releasable To, values: [LTU, POL]}}]}}
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{automountServiceAccountToken: false, securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}, containers: [{{name: app, image: "registry.example.mil/ltu/{name}:1", securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}, resources: {{requests: {{cpu: {cpu}, memory: 64Mi}}}}}}]}}
  placement: {{tiers: [edge, core], preferredNations: [LTU, POL]}}
  failover: {failover}
"#
    )
}

/// A MissionWorkload of the exercise's namespace.
pub fn workload(name: &str) -> Value {
    get("hub", &["mw", "-n", NS, name]).unwrap_or_else(|| panic!("MissionWorkload {name} not found"))
}

/// Waits until a workload's placements all run Ready in their members, and returns them.
pub fn wait_ready(name: &str, timeout: Duration) -> Vec<String> {
    wait_for(&format!("{name} Ready"), timeout, || {
        let w = workload(name);
        (condition(&w, "Ready").as_deref() == Some("True")
            && w["status"]["observedGeneration"] == w["metadata"]["generation"])
            .then(|| placements(&w))
    })
}

/// Checks that a workload's Deployments exist in exactly the clusters of its status, as placed.
pub fn check_members(name: &str) {
    check_members_except(name, &[]);
}

/// The same, leaving out members the hub cannot reach (their copies keep running: edge autonomy).
pub fn check_members_except(name: &str, unreachable: &[&str]) {
    let w = workload(name);
    let placed = placements(&w);
    for member in MEMBERS.iter().filter(|m| !unreachable.contains(m)) {
        let d = member_deployment(member, NS, name);
        let here: Vec<&String> = placed.iter().filter(|p| p.starts_with(&format!("{member}/"))).collect();
        match (here.first(), d) {
            (None, None) => {}
            (None, Some(_)) => panic!("{name}: Deployment in {member}, which is not among its placements {placed:?}"),
            (Some(p), None) => panic!("{name}: placed {p} but no Deployment in {member}"),
            (Some(p), Some(d)) => {
                let (slot, replicas) = p.split_once('=').expect("slot=replicas");
                let tier = slot.split_once('/').expect("cluster/tier").1;
                assert_eq!(d["spec"]["replicas"].to_string(), replicas, "{name} in {member}: replicas");
                assert_eq!(
                    d["spec"]["template"]["spec"]["nodeSelector"]["marshal.dev/tier"], tier,
                    "{name} in {member}: nodeSelector"
                );
                assert_eq!(d["status"]["readyReplicas"].to_string(), replicas, "{name} in {member}: ready");
                let ann = &d["metadata"]["annotations"];
                assert!(
                    ann["marshal.dev/digest"].as_str().is_some_and(|s| s.starts_with("sha256:")),
                    "{name}: digest annotation"
                );
                assert_eq!(
                    ann["marshal.dev/classification"], w["spec"]["confidentiality"]["classification"],
                    "{name}: classification"
                );
                assert_eq!(d["metadata"]["labels"]["marshal.dev/owner"], w["spec"]["owner"], "{name}: owner label");
            }
        }
    }
    eprintln!("  {name}: {placed:?} match the members");
}

/// A counter of the controller's `/metrics`, summed over the series whose labels contain `labels`.
pub fn metric(c: &ControllerProcess, name: &str, labels: &str) -> f64 {
    let text = c.http("/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Mutating requests a member's API server has served for the objects Marshal writes there (Deployments and
/// Namespaces, not their status), from its own `apiserver_request_total`. PUT is left out: Marshal never
/// sends one, and the deployment controller PUTs each new Deployment's revision annotation.
pub fn member_marshal_writes(member: &str) -> Option<f64> {
    let text = kubectl(member, &["get", "--raw", "/metrics"]).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| ["POST", "PATCH", "APPLY", "DELETE"].iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
            .filter(|l| l.contains("resource=\"deployments\"") || l.contains("resource=\"namespaces\""))
            .filter(|l| l.contains("subresource=\"\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Events about the current workload `name` (by uid: not an earlier one of the same name) with `reason`,
/// oldest first, as their messages (the core/v1 view of the events.k8s.io Events the controller records).
pub fn workload_events(name: &str, reason: &str) -> Vec<String> {
    let uid = workload(name)["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let sel = format!("involvedObject.uid={uid},reason={reason}");
    let out = kubectl("hub", &["get", "events", "-n", NS, "--field-selector", &sel, "-o", "json"]).unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut items: Vec<(String, String)> = v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let t = e["eventTime"].as_str().or(e["metadata"]["creationTimestamp"].as_str()).unwrap_or("");
                    (t.to_string(), e["message"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items.into_iter().map(|(_, n)| n).collect()
}
