//! A storm: hundreds of workloads created, then deleted, at once, while every member's own request counters
//! are sampled. No member may receive more than its write budget.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::{NS, metric, step};
use super::*;

/// Workloads in the storm.
pub const STORM: usize = 200;

/// One reading of a member's counter: it was taken between `before` and `after` (seconds from the start).
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Seconds before the request was sent.
    pub before: f64,
    /// Seconds after the answer arrived.
    pub after: f64,
    /// Mutating requests for Marshal's objects so far.
    pub writes: f64,
}

/// Samples each member's write counter about once a second until `stop`.
pub fn sample(stop: Arc<AtomicBool>) -> Vec<(String, std::thread::JoinHandle<Vec<Reading>>)> {
    let start = Instant::now();
    MEMBERS
        .iter()
        .map(|m| {
            let (m, stop) = (m.to_string(), stop.clone());
            let h = std::thread::spawn({
                let m = m.clone();
                move || {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let before = start.elapsed().as_secs_f64();
                        if let Some(writes) = fleet::member_marshal_writes(&m) {
                            out.push(Reading { before, after: start.elapsed().as_secs_f64(), writes });
                        }
                        std::thread::sleep(Duration::from_millis(700));
                    }
                    out
                }
            });
            (m, h)
        })
        .collect()
}

/// What a member's readings show against a budget.
#[derive(Debug)]
pub struct BudgetCheck {
    /// Writes between the first and the last reading.
    pub writes: f64,
    /// Seconds between the first and the last change of the counter.
    pub busy_seconds: f64,
    /// The largest share of the budget any window used (≤ 1 keeps the budget).
    pub worst_share: f64,
    /// Highest rate over any window of at least 5 s.
    pub peak_rate_5s: f64,
}

/// Checks every window between two readings: the writes in it may not exceed `burst + rate × its longest
/// possible duration` (from before the first reading's request to after the second's answer).
pub fn check(readings: &[Reading], rate: f64, burst: f64) -> BudgetCheck {
    let mut worst_share: f64 = 0.0;
    let mut peak_rate_5s: f64 = 0.0;
    for (i, a) in readings.iter().enumerate() {
        for b in &readings[i + 1..] {
            let writes = b.writes - a.writes;
            let longest = b.after - a.before;
            worst_share = worst_share.max(writes / (burst + rate * longest));
            if b.before - a.after >= 5.0 {
                peak_rate_5s = peak_rate_5s.max(writes / longest);
            }
        }
    }
    let first = readings.first().map_or(0.0, |r| r.writes);
    let changes: Vec<&Reading> = readings.windows(2).filter(|w| w[1].writes != w[0].writes).map(|w| &w[1]).collect();
    let busy_seconds = match (changes.first(), changes.last()) {
        (Some(f), Some(l)) => l.after - f.before,
        _ => 0.0,
    };
    BudgetCheck { writes: readings.last().map_or(0.0, |r| r.writes) - first, busy_seconds, worst_share, peak_rate_5s }
}

fn storm_yaml(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {{name: e2e-storm-{i:03}, namespace: {NS}, labels: {{marshal-e2e: storm}}}}
spec:
  owner: DEU
  confidentiality: {{policy: NATO, classification: RESTRICTED, categories: [{{tagName: Releasable To, values: [DEU, POL]}}]}}
  replicas: 1
  template:
    metadata: {{labels: {{app: e2e-storm}}}}
    spec: {{automountServiceAccountToken: false, securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}, containers: [{{name: app, image: "registry.example.mil/deu/relay:1", securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}, resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]}}
  placement: {{tiers: [core], preferredNations: [DEU, POL]}}
"#
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn storm_workloads() -> Vec<Value> {
    get("hub", &["mw", "-n", NS, "-l", "marshal-e2e=storm"])
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Creates [`STORM`] workloads at once, waits until they all run, deletes them at once, and checks every
/// member's own counters against the budget the controller `c` runs with (`rate` writes/s, `burst`).
pub fn write_budget(c: &ControllerProcess, rate: f64, burst: f64) {
    step(&format!(
        "write budget {rate}/s (burst {burst}): {STORM} workloads created, then deleted, at once; members sampled every second"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let samplers = sample(stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    kubectl_stdin("hub", &["apply", "-f", "-"], Some(&storm_yaml(STORM))).expect("storm applied");
    wait_for("every storm workload Ready", Duration::from_secs(420), || {
        let ws = storm_workloads();
        (ws.len() == STORM && ws.iter().all(|w| condition(w, "Ready").as_deref() == Some("True"))).then_some(())
    });
    let created = start.elapsed().as_secs_f64();
    kubectl("hub", &["delete", "mw", "-n", NS, "-l", "marshal-e2e=storm", "--wait=false"]).expect("storm deleted");
    wait_for("every storm workload gone", Duration::from_secs(420), || storm_workloads().is_empty().then_some(()));
    let done = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    eprintln!("  {STORM} workloads Ready {created:.1}s after the apply; all gone (members cleaned) at {done:.1}s");
    let mut total = 0.0;
    let mut results = BTreeMap::new();
    for (m, h) in samplers {
        let readings = h.join().expect("sampler");
        assert!(readings.len() >= 10, "{m}: only {} readings", readings.len());
        let r = check(&readings, rate, burst);
        eprintln!(
            "  {m}: {} writes over {:.1}s busy, peak {:.1} writes/s over >=5 s windows, worst window at {:.0}% of budget ({} readings)",
            r.writes,
            r.busy_seconds,
            r.peak_rate_5s,
            r.worst_share * 100.0,
            readings.len()
        );
        total += r.writes;
        results.insert(m, r);
    }
    assert!(total >= 2.0 * STORM as f64, "the storm reached the members with only {total} writes");
    for (m, r) in &results {
        assert!(r.worst_share <= 1.0, "{m} received more than its budget: {r:?}");
    }
    let waited = metric(c, "marshal_write_budget_wait_seconds_total", "");
    eprintln!("  writes waited {waited:.1}s in total for the budget");
    assert!(waited > 0.0, "the budget never held a write back: the storm did not test it");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(before: f64, writes: f64) -> Reading {
        Reading { before, after: before + 0.1, writes }
    }

    #[test]
    fn a_paced_member_keeps_its_budget_and_a_flooded_one_does_not() {
        let paced: Vec<Reading> = (0..20).map(|i| r(f64::from(i), f64::from(i) * 20.0)).collect();
        assert!(check(&paced, 20.0, 20.0).worst_share <= 1.0);
        let flooded: Vec<Reading> = (0..20).map(|i| r(f64::from(i), f64::from(i) * 45.0)).collect();
        assert!(check(&flooded, 20.0, 20.0).worst_share > 1.0);
    }
}
