//! `marshal explain`: the rendering of a fixture status (the Baltic exercise's clusters and links, a workload
//! status as the controller writes it), and the kubectl-plugin detection.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use jiff::Timestamp;
use marshal::api::{ClusterLink, MemberCluster, MissionWorkload};
use marshal::explain_cli::{Facts, age, is_kubectl_plugin, render};

fn docs<T: serde::de::DeserializeOwned>(path: &str) -> Vec<T> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path);
    serde_yaml::Deserializer::from_str(&text).map(|d| T::deserialize(d).expect(path)).collect()
}

/// The examples' clusters and links observed at 09:00:00; "now" is 09:00:45.
fn now() -> Timestamp {
    "2026-11-28T09:00:45Z".parse().expect("time")
}

const WORKLOAD: &str = r#"
apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {name: sigint-triage, namespace: baltic-shield, generation: 3}
spec:
  owner: LTU
  confidentiality: {policy: NATO, classification: CONFIDENTIAL, categories: [{tagName: Releasable To, values: [LTU, POL]}]}
  replicas: 2
  template: {spec: {containers: [{name: triage, image: registry.example.mil/baltic/sigint-triage:1.9.0}]}}
  placement:
    tiers: [core, edge]
    preferredNations: [POL, LTU]
    dataSource: {cluster: ltu-1, maxRttMs: 50, minBandwidthMbps: 20}
status:
  observedGeneration: 3
  phase: Degraded
  replicas: 1
  readyReplicas: 1
  clusters: ltu-1
  lastDecisionTime: "2026-11-28T08:57:45Z"
  placements:
    - {cluster: ltu-1, tier: edge, replicas: 1, readyReplicas: 1, since: "2026-11-28T08:30:00Z", reason: Preferred}
  verdicts:
    - {cluster: deu-1, tier: core, eligible: false, reason: NotReleasable, message: "Releasable To: DEU holds none of LTU, POL"}
    - {cluster: ltu-1, tier: edge, eligible: true, reason: Eligible, message: ""}
    - {cluster: lva-1, tier: core, eligible: false, reason: HostRefused, message: "owner LTU admitted, but CONFIDENTIAL is above the host's maxClassification RESTRICTED"}
    - {cluster: pol-1, tier: core, eligible: false, reason: LinkInsufficient, message: "link ltu-1.pol-1 is Degraded with rtt 80 ms and 100 Mbps: the workload needs Up within 50 ms and at least 20 Mbps from its data source ltu-1, which this path does not offer at the moment", observedAt: "2026-11-28T09:00:05Z"}
    - {cluster: pol-1, tier: edge, eligible: false, reason: InsufficientCpu, message: "edge has 1500m cpu free, a replica needs 2"}
  conditions:
    - {type: Placed, status: "False", reason: Degraded, message: "1/2 replicas placed; 2/4 clusters eligible: 1 NotReleasable, 1 HostRefused", lastTransitionTime: "2026-11-28T08:57:45Z"}
    - {type: Ready, status: "True", reason: Ready, message: "1/1 placed replicas ready", lastTransitionTime: "2026-11-28T08:31:00Z"}
"#;

fn explain(width: usize) -> String {
    let mw: MissionWorkload = serde_yaml::from_str(WORKLOAD).expect("workload");
    let clusters: Vec<MemberCluster> = docs("examples/baltic/10-member-clusters.yaml");
    let links: Vec<ClusterLink> = docs("examples/baltic/20-cluster-links.yaml");
    // ltu-1's Lease was renewed at 09:00:40, later than its MemberCluster status says: the Lease wins.
    let heartbeats: BTreeMap<String, Timestamp> =
        [("ltu-1".to_string(), "2026-11-28T09:00:40Z".parse().expect("t"))].into();
    render(
        &Facts { workload: &mw, clusters: &clusters, links: &links, heartbeats: &heartbeats, now: now(), notes: &[] },
        width,
    )
}

fn row<'a>(out: &'a str, starts: &str) -> &'a str {
    out.lines().find(|l| l.trim_start().starts_with(starts)).unwrap_or_else(|| panic!("no row {starts:?} in\n{out}"))
}

#[test]
fn fits_the_terminal_width() {
    for width in [100, 80] {
        let out = explain(width);
        for l in out.lines() {
            assert!(l.chars().count() <= width, "line longer than {width}: {l:?}\n{out}");
        }
    }
    println!("{}", explain(100));
}

#[test]
fn header_and_placements() {
    let out = explain(100);
    let first = out.lines().next().expect("header");
    assert!(first.contains("baltic-shield/sigint-triage: Degraded, 1/1 ready (2 wanted), decided 3m ago"), "{first}");
    assert!(out.contains("label NATO CONFIDENTIAL (Releasable To: LTU, POL)"), "{out}");
    assert!(out.contains("data source ltu-1"), "{out}");
    let p = row(&out, "ltu-1  ");
    let cells: Vec<&str> = p.split_whitespace().collect();
    assert_eq!(cells, ["ltu-1", "edge", "1", "1", "30m", "Preferred"], "{p}");
    // Free capacity in cores and binary units, as a person reads it.
    let clusters = &out[out.find("CLUSTERS").expect("clusters")..];
    assert!(row(clusters, "deu-1").ends_with("core 2/2 nodes, 14 cpu 56.0Gi free"), "{clusters}");
    assert!(clusters.contains("1.5 cpu 3.0Gi free"), "{clusters}");
}

#[test]
fn every_verdict_says_in_or_out_why_from_which_fact_and_its_age() {
    let out = explain(100);
    let verdicts = &out[out.find("VERDICTS").expect("verdicts")..out.find("CONDITIONS").expect("conditions")];
    let cells = |start: &str| -> Vec<String> {
        row(verdicts, start).split_whitespace().take(7).map(String::from).collect::<Vec<_>>()
    };
    // Configuration facts do not age: the age column says "-".
    assert_eq!(cells("deu-1")[..6], ["deu-1", "core", "out", "NotReleasable", "cluster", "clearance"]);
    assert_eq!(cells("deu-1")[6], "-");
    assert_eq!(cells("lva-1")[..5], ["lva-1", "core", "out", "HostRefused", "host"]);
    // The placed candidate rests on heartbeat (Lease, 09:00:40) and capacity (09:00:00): the older, 45 s.
    assert_eq!(cells("ltu-1")[..4], ["ltu-1", "edge", "placed", "Eligible"]);
    assert!(row(verdicts, "ltu-1").contains("capacity           45s  passes every filter"), "{verdicts}");
    // The link verdict names the link and the age of its measurement (observedAt 09:00:05 → 40 s).
    let link = row(verdicts, "pol-1    core");
    assert!(link.contains("LinkInsufficient") && link.contains("link ltu-1.pol-1") && link.contains("40s"), "{link}");
    // Capacity verdicts take the age of the capacity report.
    let cap = row(verdicts, "pol-1    edge");
    assert!(cap.contains("InsufficientCpu") && cap.contains("capacity") && cap.contains("45s"), "{cap}");
    // The long message wraps onto continuation lines, every word kept.
    let msg = "which this path does not offer at the moment";
    let flat: String = verdicts.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(msg), "{verdicts}");
}

#[test]
fn clusters_links_and_conditions() {
    let out = explain(100);
    assert!(out.contains("CONDITIONS"), "{out}");
    assert!(row(&out, "Placed").contains("1/2 replicas placed"), "{out}");
    let clusters = &out[out.find("\nCLUSTERS").expect("clusters")..];
    assert!(row(clusters, "pol-1").contains("POL") && row(clusters, "pol-1").contains("core 2/2 nodes"), "{out}");
    let ltu: Vec<&str> = row(clusters, "ltu-1").split_whitespace().collect();
    assert_eq!(ltu[..5], ["ltu-1", "LTU", "True", "5s", "45s"], "heartbeat from the Lease, capacity from status");
    let links = &out[out.find("LINKS FROM THE DATA SOURCE ltu-1").expect("links")..];
    assert!(row(links, "ltu-1.pol-1").contains("12ms") && row(links, "ltu-1.pol-1").contains("100Mbps"), "{links}");
    assert!(!links.contains("pol-1.deu-1"), "only links at the data source: {links}");
}

#[test]
fn a_workload_without_status_says_so() {
    let mut mw: MissionWorkload = serde_yaml::from_str(WORKLOAD).expect("workload");
    mw.status = None;
    let none = BTreeMap::new();
    let facts = Facts { workload: &mw, clusters: &[], links: &[], heartbeats: &none, now: now(), notes: &["n".into()] };
    let out = render(&facts, 100);
    assert!(out.contains("Pending"), "{out}");
    assert!(out.contains("none yet: the controller has not decided"), "{out}");
    assert!(out.contains("not yet reconciled"), "{out}");
    assert!(out.contains("note: n"), "{out}");
}

#[test]
fn ages_and_plugin_name() {
    let t = |s: &str| Some(s.parse::<Timestamp>().expect("time"));
    assert_eq!(age(now(), t("2026-11-28T09:00:45Z")), "0s");
    assert_eq!(age(now(), t("2026-11-28T08:58:46Z")), "119s");
    assert_eq!(age(now(), t("2026-11-28T08:00:45Z")), "60m");
    assert_eq!(age(now(), t("2026-11-27T09:00:45Z")), "24h");
    assert_eq!(age(now(), t("2026-11-20T09:00:45Z")), "8d");
    assert_eq!(age(now(), None), "-");
    assert!(is_kubectl_plugin(OsStr::new("/usr/local/bin/kubectl-marshal")));
    assert!(is_kubectl_plugin(OsStr::new("kubectl-marshal.exe")));
    assert!(!is_kubectl_plugin(OsStr::new("/usr/bin/marshal")));
    assert!(!is_kubectl_plugin(OsStr::new("kubectl")));
}
