//! Failover benchmark on the local federation (`e2e/bench/failover`): place N workloads on ltu-1, cut its
//! link, and measure the time until every one is Ready elsewhere, the member writes per moved workload and
//! the controller's RSS. Prints JSON. Needs the federation: run it through `e2e/bench/failover`.
//!
//! Arguments (after `--`): `--sizes 50,200` `--trials 5` `--concurrency 8` (the controller's, its default).

#[path = "../tests/e2e/mod.rs"]
mod e2e;

use std::time::{Duration, Instant};

use e2e::fleet::{LinkMonitor, NS, install, member_marshal_writes, metric};
use e2e::*;
use serde_json::{Value, json};

const GRACE: f64 = 15.0;
const TOLERATION: f64 = 20.0;
const BENCH_NODE: &str = "ltu-1-bench-0";

fn workloads_yaml(n: usize) -> String {
    (0..n)
        .map(|i| {
            // Half are Polish-led, half German-led: where they fail over to differs, as in a real coalition.
            let second = if i % 2 == 0 { "POL" } else { "DEU" };
            format!(
                r#"apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {{name: bench-{i:03}, namespace: {NS}, labels: {{marshal-bench: failover}}}}
spec:
  owner: LTU
  confidentiality: {{policy: NATO, classification: RESTRICTED, categories: [{{tagName: Releasable To, values: [LTU, POL, DEU]}}]}}
  replicas: 1
  template:
    metadata: {{labels: {{app: bench}}}}
    spec: {{automountServiceAccountToken: false, securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}, containers: [{{name: app, image: "registry.example.mil/ltu/sensor:1", securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}, resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]}}
  placement: {{tiers: [edge, core], preferredNations: [LTU, {second}]}}
  failover: {{tolerationSeconds: {TOLERATION}, failbackAfterSeconds: 3600}}
"#
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn bench_workloads() -> Vec<Value> {
    get("hub", &["mw", "-n", NS, "-l", "marshal-bench=failover"])
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn ready_off_ltu(w: &Value) -> bool {
    let p = placements(w);
    !p.is_empty() && p.iter().all(|s| !s.starts_with("ltu-1/")) && condition(w, "Ready").as_deref() == Some("True")
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Hub writes other than heartbeat renewals.
fn hub_writes(c: &ControllerProcess) -> f64 {
    c.writes(|l| l.contains("target=\"hub\"") && not_heartbeat(l))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn wait_all(what: &str, n: usize, f: impl Fn(&Value) -> bool) {
    wait_for(what, Duration::from_secs(600), || {
        let ws = bench_workloads();
        (ws.len() == n && ws.iter().all(&f)).then_some(())
    });
}

/// What one trial measured.
struct Trial {
    /// Per workload: seconds from the cut until Ready off ltu-1.
    times: Vec<f64>,
    /// Member writes during the move, and cleaning ltu-1 after the link returns.
    moved: f64,
    cleanup: f64,
    /// Hub writes (heartbeats aside), in total and by verb.
    hub: f64,
    hub_by_verb: Vec<(String, f64)>,
    /// MissionWorkload reconciles during the move, and their mean duration.
    reconciles: f64,
    reconcile_mean_s: f64,
    /// Peak controller RSS.
    rss: f64,
}

/// Hub writes (heartbeat renewals aside) by `verb resource`, from the controller's `marshal_api_writes_total`.
fn hub_by_kind(c: &ControllerProcess) -> std::collections::BTreeMap<String, f64> {
    let label = |l: &str, name: &str| -> String {
        l.split_once(&format!("{name}=\""))
            .and_then(|(_, r)| r.split_once('"'))
            .map_or(String::new(), |(v, _)| v.into())
    };
    let mut out = std::collections::BTreeMap::new();
    for l in c.http("/metrics").unwrap_or_default().lines() {
        if l.starts_with("marshal_api_writes_total{") && l.contains("target=\"hub\"") && not_heartbeat(l) {
            let n = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            *out.entry(format!("{} {}", label(l, "verb"), label(l, "resource"))).or_default() += n;
        }
    }
    out
}

fn reconciles(c: &ControllerProcess) -> (f64, f64) {
    let kind = "controller=\"missionworkload\"";
    (
        metric(c, "marshal_reconcile_duration_seconds_count", kind),
        metric(c, "marshal_reconcile_duration_seconds_sum", kind),
    )
}

fn trial(c: &ControllerProcess, n: usize) -> Trial {
    // Every trial starts from the same fleet: after the previous trial's link came back, the hub must judge
    // ltu-1 Reachable again before the workloads are applied, or some are placed elsewhere and wait for failback.
    wait_for("every member Reachable", Duration::from_secs(120), || {
        ["pol-1", "deu-1", "ltu-1"]
            .iter()
            .all(|m| {
                get("hub", &["memberclusters", m])
                    .is_some_and(|mc| condition(&mc, "Reachable").as_deref() == Some("True"))
            })
            .then_some(())
    });
    // ... and until ltu-1 reports room for all N again: the previous trial's pods leave the member some seconds
    // after their workloads are gone, and a summary that still counts them sends the overflow elsewhere.
    wait_for("ltu-1 reports room for every bench workload", Duration::from_secs(300), || {
        let mc = get("hub", &["memberclusters", "ltu-1"])?;
        let free: usize = mc["status"]["capacity"]["edge"]["free"]["pods"].as_str()?.parse().ok()?;
        (free >= n).then_some(())
    });
    kubectl_stdin("hub", &["apply", "-f", "-"], Some(&workloads_yaml(n))).expect("bench workloads");
    wait_all("bench workloads Ready on ltu-1", n, |w| {
        placements(w).iter().all(|p| p.starts_with("ltu-1/"))
            && !placements(w).is_empty()
            && condition(w, "Ready").as_deref() == Some("True")
    });
    std::thread::sleep(Duration::from_secs(3));
    let receivers = ["pol-1", "deu-1"];
    // ltu-1 receives nothing from Marshal while it is cut off: its counter before the cut is the baseline.
    let ltu_before = member_marshal_writes("ltu-1").unwrap_or(0.0);
    let before: Vec<f64> = receivers.iter().map(|m| member_marshal_writes(m).unwrap_or(0.0)).collect();
    let hub_before = hub_writes(c);
    let kinds_before = hub_by_kind(c);
    let (count_before, sum_before) = reconciles(c);
    let cut = Instant::now();
    federation(&["link", "ltu-1", "down"]);
    let mut done: Vec<Option<f64>> = vec![None; n];
    let mut rss: f64 = 0.0;
    while done.iter().any(Option::is_none) {
        assert!(cut.elapsed() < Duration::from_secs(600), "failover did not finish");
        let t = cut.elapsed().as_secs_f64();
        for w in bench_workloads() {
            let i: usize =
                w["metadata"]["name"].as_str().and_then(|s| s.strip_prefix("bench-")?.parse().ok()).unwrap_or(n);
            if i < n && done[i].is_none() && ready_off_ltu(&w) {
                done[i] = Some(t);
            }
        }
        rss = rss.max(rss_mib(c.pid()));
        // Once a second: listing 200 workloads with their verdicts costs the hub (and these two cores) enough
        // that polling faster slows down what it measures.
        std::thread::sleep(Duration::from_secs(1));
    }
    let moved: f64 = receivers.iter().zip(&before).map(|(m, b)| member_marshal_writes(m).unwrap_or(0.0) - b).sum();
    let hub = hub_writes(c) - hub_before;
    let hub_by_verb: Vec<(String, f64)> = hub_by_kind(c)
        .into_iter()
        .map(|(k, v)| {
            let b = kinds_before.get(&k).copied().unwrap_or(0.0);
            (k, v - b)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let (count_after, sum_after) = reconciles(c);
    let reconciles = count_after - count_before;
    let reconcile_mean_s = if reconciles > 0.0 { (sum_after - sum_before) / reconciles } else { 0.0 };
    federation(&["link", "ltu-1", "up"]);
    wait_for("stale copies removed from ltu-1", Duration::from_secs(300), || {
        let l = get("ltu-1", &["deploy", "-n", NS, "-l", "app=bench"])?;
        l["items"].as_array().is_some_and(|a| a.is_empty()).then_some(())
    });
    let cleanup = wait_for("ltu-1 readable", Duration::from_secs(60), || member_marshal_writes("ltu-1")) - ltu_before;
    kubectl("hub", &["delete", "mw", "-n", NS, "-l", "marshal-bench=failover", "--wait=false"]).expect("delete");
    wait_for("bench workloads gone", Duration::from_secs(600), || bench_workloads().is_empty().then_some(()));
    Trial {
        times: done.into_iter().map(|d| d.unwrap_or(f64::NAN)).collect(),
        moved,
        cleanup,
        hub,
        hub_by_verb,
        reconciles,
        reconcile_mean_s,
        rss,
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> =
        arg(&args, "--sizes").unwrap_or_else(|| "50,200".into()).split(',').filter_map(|s| s.parse().ok()).collect();
    let trials: usize = arg(&args, "--trials").and_then(|s| s.parse().ok()).unwrap_or(5);
    install();
    let node = format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{BENCH_NODE}","annotations":{{"kwok.x-k8s.io/node":"fake"}},
        "labels":{{"type":"kwok","marshal.dev/tier":"edge","kubernetes.io/hostname":"{BENCH_NODE}","topology.kubernetes.io/zone":"ltu-1-edge"}}}},
        "status":{{"capacity":{{"cpu":"16","memory":"64Gi","pods":"300"}},"allocatable":{{"cpu":"16","memory":"64Gi","pods":"300"}}}}}}"#
    );
    let _ = kubectl("ltu-1", &["delete", "node", BENCH_NODE, "--ignore-not-found"]);
    kubectl_stdin("ltu-1", &["create", "-f", "-"], Some(&node)).expect("bench node");
    let monitor = LinkMonitor::start();
    let concurrency = arg(&args, "--concurrency").unwrap_or_else(|| "8".into());
    let c = ControllerProcess::start(18082, &["--concurrency", &concurrency]);
    std::thread::sleep(Duration::from_secs(15));
    let mut results = Vec::new();
    for &n in &sizes {
        let mut all = Vec::new();
        let mut per_trial_all_ready = Vec::new();
        let (mut moved_w, mut cleanup_w, mut hub_w, mut rss) = (0.0, 0.0, 0.0, 0.0f64);
        let (mut recs, mut rec_time) = (0.0, 0.0);
        let mut verbs: std::collections::BTreeMap<String, f64> = Default::default();
        for t in 0..trials {
            let r = trial(&c, n);
            let max = r.times.iter().copied().fold(0.0, f64::max);
            eprintln!(
                "N={n} trial {}: every workload Ready elsewhere {max:.1}s after the cut; member writes {} (+{} cleanup on ltu-1), hub writes {} {:?}, {} reconciles of {:.0} ms on average, RSS {:.1} MiB",
                t + 1,
                r.moved,
                r.cleanup,
                r.hub,
                r.hub_by_verb,
                r.reconciles,
                r.reconcile_mean_s * 1000.0,
                r.rss
            );
            per_trial_all_ready.push(max);
            all.extend(r.times);
            moved_w += r.moved;
            cleanup_w += r.cleanup;
            hub_w += r.hub;
            rss = rss.max(r.rss);
            recs += r.reconciles;
            rec_time += r.reconcile_mean_s * r.reconciles;
            for (v, k) in r.hub_by_verb {
                *verbs.entry(v).or_default() += k;
            }
        }
        all.sort_by(f64::total_cmp);
        per_trial_all_ready.sort_by(f64::total_cmp);
        let moved_total = (n * trials) as f64;
        results.push(json!({
            "n": n,
            "trials": trials,
            "all_ready_elsewhere_seconds": {
                "p50": percentile(&per_trial_all_ready, 50.0),
                "p99": percentile(&per_trial_all_ready, 99.0),
                "per_trial": per_trial_all_ready,
            },
            "workload_ready_elsewhere_seconds": {"p50": percentile(&all, 50.0), "p99": percentile(&all, 99.0)},
            "member_writes_per_moved_workload": moved_w / moved_total,
            "member_cleanup_writes_per_moved_workload": cleanup_w / moved_total,
            "hub_writes_per_moved_workload": hub_w / moved_total,
            "hub_writes_per_moved_workload_by_kind":
                verbs.iter().map(|(v, k)| (v.clone(), json!(k / moved_total))).collect::<serde_json::Map<_, _>>(),
            "reconciles_per_moved_workload": recs / moved_total,
            "reconcile_mean_ms": if recs > 0.0 { rec_time / recs * 1000.0 } else { 0.0 },
            "controller_rss_mib_peak": rss,
        }));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let out = json!({
        "benchmark": "failover",
        "cluster_grace_seconds": GRACE,
        "toleration_seconds": TOLERATION,
        "target_seconds": GRACE + TOLERATION + 10.0,
        "member_write_budget_per_second": 20,
        "controller_concurrency": concurrency,
        "machine": {"cpus": cpus, "os": std::env::consts::OS},
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    drop(monitor);
    c.stop();
    let _ = kubectl("ltu-1", &["delete", "node", BENCH_NODE, "--ignore-not-found"]);
}
