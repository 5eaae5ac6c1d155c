//! Full re-plan benchmark: every one of W workloads decided against C member clusters × 2 tiers (core, edge),
//! for (W, C) in {(1 000, 10), (10 000, 100)}, single-threaded.
//!
//! The fleet is synthetic but shaped like a coalition: ten nations under one NATO policy, clearances up to
//! CONFIDENTIAL or SECRET, a few hosts with restrictive admission, an expired accreditation, a tainted and an
//! unreachable cluster, capacity in both tiers, and measured links from every cluster to its two neighbours.
//! Workloads mix Divided (with spread) and Duplicated, releasability, residency, cluster selectors, tier
//! preferences and data sources.
//!
//! Besides criterion's figures, `cargo bench --bench placement` prints one plain line per size:
//! `placement: W=10000 C=100: N decisions/s (X µs/decision)`, for a cold re-plan (no current placements) and
//! a steady re-plan (the previous decision fed back as history, as the controller does).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use jiff::Timestamp;
use marshal::api::{ClusterLink, MemberCluster, MissionWorkload, SecurityPolicy};
use marshal::placement::{ClusterFacts, Decision, History, Settings, Snapshot, WorkloadModel, decide};
use serde_json::json;

const NATIONS: [&str; 10] = ["POL", "DEU", "LTU", "LVA", "EST", "FRA", "NLD", "NOR", "DNK", "CZE"];
const REGIONS: [&str; 3] = ["baltic", "central", "north"];
const CLASSIFICATIONS: [&str; 4] = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"];
const SIZES: [(usize, usize); 2] = [(1_000, 10), (10_000, 100)];

fn now() -> Timestamp {
    "2026-11-28T09:00:00Z".parse().expect("timestamp")
}

fn at(offset_s: i64) -> String {
    now().checked_add(jiff::SignedDuration::from_secs(offset_s)).expect("in range").to_string()
}

fn cluster_name(i: usize) -> String {
    format!("{}-{}", NATIONS[i % NATIONS.len()].to_lowercase(), i / NATIONS.len() + 1)
}

fn policy() -> SecurityPolicy {
    // The exercise's own NATO policy, so tests and examples cannot drift apart.
    serde_yaml::from_str(include_str!("../examples/baltic/00-security-policy.yaml")).expect("SecurityPolicy")
}

fn member_cluster(i: usize) -> MemberCluster {
    let nation = NATIONS[i % NATIONS.len()];
    let cleared: &[&str] = if i % 3 == 2 { &CLASSIFICATIONS[..3] } else { &CLASSIFICATIONS[..] };
    let mut categories = vec![json!({"tagName": "Releasable To", "values": [nation, "NATO"]})];
    if i.is_multiple_of(4) {
        categories.push(json!({"tagName": "Special Handling", "values": ["CRYPTO"]}));
    }
    // Every 7th host admits only its own and two neighbouring nations' work, up to RESTRICTED.
    let admission = if i % 7 == 3 {
        json!({
            "ownerNations": [nation, NATIONS[(i + 1) % 10], NATIONS[(i + 9) % 10]],
            "maxClassification": "RESTRICTED"
        })
    } else {
        json!({"ownerNations": ["*"], "maxClassification": cleared[cleared.len() - 1]})
    };
    // One cluster in 23 has an expired accreditation, one in 19 is in maintenance, one in 29 lost its heartbeat.
    let review_by = if i % 23 == 11 { "2026-10-01T00:00:00Z" } else { "2027-06-30T00:00:00Z" };
    let taints =
        if i % 19 == 5 { json!([{"key": "marshal.dev/maintenance", "effect": "NoSchedule"}]) } else { json!([]) };
    let heartbeat = if i % 29 == 13 { at(-600) } else { at(-2) };
    let big = i % 5 != 1;
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster",
        "metadata": {
            "name": cluster_name(i),
            "labels": {"marshal.dev/region": REGIONS[i % REGIONS.len()], "marshal.dev/site": format!("site-{}", i % 4)}
        },
        "spec": {
            "nation": nation,
            "connection": {"mode": "Pull"},
            "clearance": {
                "policy": "NATO", "classifications": cleared, "categories": categories, "reviewBy": review_by
            },
            "admission": admission,
            "tiers": ["core", "edge"],
            "taints": taints
        },
        "status": {
            "lastHeartbeatTime": heartbeat,
            "observedAt": at(-2),
            "capacity": {
                "core": {"nodes": 8, "readyNodes": 8,
                         "allocatable": {"cpu": "128", "memory": "512Gi", "pods": "880"},
                         "free": if big { json!({"cpu": "96", "memory": "384Gi", "pods": "700"}) }
                                 else { json!({"cpu": "3500m", "memory": "6Gi", "pods": "40"}) }},
                "edge": {"nodes": 2, "readyNodes": 2,
                         "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "60"},
                         "free": {"cpu": "6", "memory": "12Gi", "pods": "50"}}
            }
        }
    }))
    .expect("MemberCluster")
}

fn cluster_link(from: usize, to: usize, c: usize) -> ClusterLink {
    let (state, rtt, bw) = match (from + to) % 6 {
        0 => ("Degraded", 120, 5),
        1 => ("Up", 45, 30),
        _ => ("Up", 8 + (from % 20) as u32, 100 + (to % 5) as u32 * 100),
    };
    let observed = if (from * 7 + to).is_multiple_of(31) { at(-600) } else { at(-5) }; // a few stale facts
    let (f, t) = (cluster_name(from % c), cluster_name(to % c));
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "ClusterLink",
        "metadata": {"name": format!("{f}.{t}")},
        "spec": {"from": f, "to": t, "staleAfterSeconds": 60},
        "status": {"state": state, "rttMs": rtt, "bandwidthMbps": bw, "lossPercent": 0, "observedAt": observed}
    }))
    .expect("ClusterLink")
}

fn mission_workload(i: usize, c: usize) -> MissionWorkload {
    let owner_ix = i % NATIONS.len();
    let owner = NATIONS[owner_ix];
    let classification = CLASSIFICATIONS[(i / 10) % CLASSIFICATIONS.len()];
    let mut categories = vec![match i % 4 {
        0 | 1 => json!({"tagName": "Releasable To", "values": ["NATO"]}),
        2 => {
            json!({
                "tagName": "Releasable To",
                "values": [owner, NATIONS[(owner_ix + 1) % 10], NATIONS[(owner_ix + 3) % 10]]
            })
        }
        _ => json!({"tagName": "Releasable To", "values": [owner, NATIONS[(owner_ix + 5) % 10]]}),
    }];
    if i % 50 == 7 {
        categories.push(json!({"tagName": "Special Handling", "values": ["CRYPTO"]}));
    }
    let duplicated = i % 5 == 4;
    let tiers = match i % 3 {
        0 => json!(["core", "edge"]),
        1 => json!(["core"]),
        _ => json!(["edge", "core"]),
    };
    let mut placement = json!({"mode": if duplicated { "Duplicated" } else { "Divided" }, "tiers": tiers});
    if duplicated || i % 4 == 1 {
        // Duplicated workloads are narrowed to a region (a site for the big fleet), as users are told to.
        let key = if duplicated && c > 20 { "marshal.dev/site" } else { "marshal.dev/region" };
        let value = if key == "marshal.dev/site" { format!("site-{}", i % 4) } else { REGIONS[i % 3].to_string() };
        placement["clusterSelector"] = json!({"matchLabels": {key: value}});
    }
    if !duplicated {
        placement["spread"] = json!({"minNations": 1 + i % 3, "maxReplicasPerCluster": 3});
    }
    if i.is_multiple_of(3) {
        placement["preferredNations"] = json!([owner, NATIONS[(owner_ix + 1) % 10]]);
    }
    if i % 6 == 2 {
        // The data comes from a cluster of the owner's nation; links run from each cluster to its two neighbours.
        placement["dataSource"] =
            json!({"cluster": cluster_name((owner_ix + 10 * (i / 10)) % c), "maxRttMs": 50, "minBandwidthMbps": 20});
    }
    let (cpu, memory) = [("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi"), ("1", "1Gi")][i % 4];
    let mut spec = json!({
        "owner": owner,
        "confidentiality": {"policy": "NATO", "classification": classification, "categories": categories},
        "replicas": if duplicated { 1 + i % 2 } else { 3 + i % 4 },
        "template": {
            "metadata": {"labels": {"app": format!("app-{i}")}},
            "spec": {"containers": [{
                "name": "main",
                "image": format!("registry.example.mil/mission/app-{}:1.0.{}", i % 97, i % 13),
                "resources": {"requests": {"cpu": cpu, "memory": memory}}
            }]}
        },
        "placement": placement,
        "failover": {"tolerationSeconds": 30, "failbackAfterSeconds": 300}
    });
    if i % 5 == 3 {
        spec["residency"] = json!([owner, NATIONS[(owner_ix + 1) % 10], NATIONS[(owner_ix + 2) % 10]]);
    }
    serde_json::from_value(json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "MissionWorkload",
        "metadata": {"name": format!("w{i:05}"), "namespace": format!("mission-{}", i % 8)},
        "spec": spec
    }))
    .expect("MissionWorkload")
}

struct Fleet {
    snapshot: Snapshot,
    workloads: Vec<WorkloadModel>,
}

fn fleet(w: usize, c: usize) -> Fleet {
    let clusters = (0..c)
        .map(|i| {
            let mc = member_cluster(i);
            let heartbeat = mc.status.as_ref().and_then(|s| s.last_heartbeat_time.as_ref()).map(|t| t.0);
            ClusterFacts::from_crd(&mc, heartbeat)
        })
        .collect();
    let links: Vec<ClusterLink> = (0..c).flat_map(|i| [cluster_link(i, i + 1, c), cluster_link(i, i + 2, c)]).collect();
    let snapshot = Snapshot::new(&[policy()], clusters, &links, Settings::default());
    let workloads = (0..w).map(|i| WorkloadModel::from_crd(&mission_workload(i, c))).collect();
    Fleet { snapshot, workloads }
}

/// The history the controller would feed back after `d`.
fn history_after(d: &Decision) -> History {
    d.history()
}

/// Decides every workload once; returns the number of placed replicas (kept so the work is not optimised away).
fn replan(f: &Fleet, histories: &[History], t: Timestamp) -> u64 {
    f.workloads
        .iter()
        .zip(histories)
        .map(|(w, h)| u64::from(black_box(decide(black_box(w), &f.snapshot, h, t)).placed()))
        .sum()
}

/// Counts heap allocations, to report allocations per decision next to the timings.
struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), so that the figure does not depend on
/// how many other processes share the machine. `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// Plain figures, printed before criterion runs: wall-clock and on-CPU decisions per second (best of a few
/// rounds) and heap allocations per decision.
fn print_throughput() {
    let t = now();
    for (w, c) in SIZES {
        let f = fleet(w, c);
        let cold = vec![History::default(); w];
        let first: Vec<Decision> =
            f.workloads.iter().map(|wl| decide(wl, &f.snapshot, &History::default(), t)).collect();
        let steady: Vec<History> = first.iter().map(history_after).collect();
        let placed: u32 = first.iter().map(Decision::placed).sum();
        let unplaced: u32 = first.iter().map(|d| d.unplaced).sum();
        let eligible: usize = first.iter().map(|d| d.verdicts.iter().filter(|v| v.eligible).count()).sum();
        let verdicts: usize = first.iter().map(|d| d.verdicts.len()).sum();
        println!(
            "placement: W={w} C={c}: fleet: {} candidates/workload, {:.1}% eligible, {placed} replicas placed, \
             {unplaced} unplaced",
            verdicts / w.max(1),
            100.0 * eligible as f64 / verdicts.max(1) as f64
        );
        for (label, hist) in [("cold", &cold), ("steady", &steady)] {
            black_box(replan(&f, hist, t)); // warm-up
            let rounds = if w >= 10_000 { 3 } else { 10 };
            let (mut wall, mut cpu, mut allocs) = (Duration::MAX, u64::MAX, 0);
            for _ in 0..rounds {
                let (cpu0, allocs0, start) = (thread_cpu_ns(), ALLOCS.load(Ordering::Relaxed), Instant::now());
                black_box(replan(&f, hist, t));
                wall = wall.min(start.elapsed());
                allocs = ALLOCS.load(Ordering::Relaxed) - allocs0;
                if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
                    cpu = cpu.min(b - a);
                }
            }
            let per_decision = wall.as_secs_f64() / w as f64;
            let on_cpu = if cpu == u64::MAX {
                String::new()
            } else {
                let per = cpu as f64 / 1e9 / w as f64;
                format!("; on-CPU {:.0} decisions/s ({:.1} µs/decision)", 1.0 / per, per * 1e6)
            };
            println!(
                "placement: W={w} C={c}: {:.0} decisions/s ({:.1} µs/decision) [{label} re-plan, best of {rounds}, \
                 1 thread{on_cpu}; {} allocations/decision]",
                1.0 / per_decision,
                per_decision * 1e6,
                allocs / w as u64
            );
        }
    }
}

fn bench_replan(crit: &mut Criterion) {
    let t = now();
    let mut group = crit.benchmark_group("full_replan");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    for (w, c) in SIZES {
        let f = fleet(w, c);
        let cold = vec![History::default(); w];
        group.throughput(Throughput::Elements(w as u64));
        group.measurement_time(Duration::from_secs(if w >= 10_000 { 30 } else { 10 }));
        group.bench_with_input(BenchmarkId::new("cold", format!("W{w}xC{c}")), &f, |b, f| {
            b.iter(|| replan(f, &cold, t));
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, bench_replan);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then only criterion's quick check runs.
    if std::env::args().any(|a| a == "--bench") {
        print_throughput();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
