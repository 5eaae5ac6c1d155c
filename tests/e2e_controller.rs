//! End-to-end: `marshal controller` with push-mode syncers on the local federation (real API servers,
//! kube-controller-manager, scheduler and kwok). Run through `e2e/tests/20-controller.sh`.

mod e2e;

use std::time::{Duration, Instant};

use e2e::fleet::*;
use e2e::*;

fn setup() -> (ControllerProcess, LinkMonitor) {
    install();
    let monitor = LinkMonitor::start();
    step("start the controller");
    let c = ControllerProcess::start(18080, &[]);
    (c, monitor)
}

fn placement_works() {
    step("placement: Deployments in exactly the clusters the engine chose, Ready");
    let started = Instant::now();
    for name in ["isr-fusion", "sigint-triage", "logistics-ledger", "weather-feed"] {
        let placed = wait_ready(name, Duration::from_secs(240));
        eprintln!("  {name} Ready on {placed:?} after {:.1}s", started.elapsed().as_secs_f64());
        check_members(name);
    }
    assert_eq!(placements(&workload("isr-fusion")), ["deu-1/core=1", "pol-1/core=3"]);
    assert_eq!(placements(&workload("logistics-ledger")), ["pol-1/core=3"]);
    assert_eq!(placements(&workload("weather-feed")), ["ltu-1/edge=1", "pol-1/edge=1"]);
    let np = wait_for("nuclear-planning decided", Duration::from_secs(60), || {
        let w = workload("nuclear-planning");
        (w["status"]["phase"] == "Unplaceable").then_some(w)
    });
    let msg = np["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Placed").unwrap()["message"]
        .clone();
    assert!(msg.as_str().unwrap().contains("NotReleasable"), "{msg}");
    for member in MEMBERS {
        assert!(member_deployment(member, NS, "nuclear-planning").is_none(), "nuclear-planning must run nowhere");
    }
    // Verdicts cover every candidate; the printer columns are filled in.
    let w = workload("isr-fusion");
    let verdicts = w["status"]["verdicts"].as_array().expect("verdicts");
    for c in ["pol-1", "deu-1", "ltu-1", "lva-1"] {
        assert!(verdicts.iter().any(|v| v["cluster"] == c), "verdict for {c}");
    }
    let table = kubectl("hub", &["get", "mw", "-n", NS]).expect("get mw");
    eprintln!("{table}");
    let row = table.lines().find(|l| l.starts_with("isr-fusion")).expect("row");
    assert!(
        row.contains("Placed") && row.contains("deu-1,pol-1") && row.split_whitespace().nth(3) == Some("4"),
        "{row}"
    );
    let mc = kubectl("hub", &["get", "mc"]).expect("get mc");
    eprintln!("{mc}");
    assert!(mc.lines().any(|l| l.starts_with("pol-1") && l.contains("POL") && l.contains("True")), "{mc}");
}

const DEU_ONLY: &str = r#"
apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {name: deu-only, namespace: baltic-shield}
spec:
  owner: DEU
  confidentiality: {policy: NATO, classification: RESTRICTED, categories: [{tagName: Releasable To, values: [DEU]}]}
  replicas: REPLICAS
  template:
    metadata: {labels: {app: deu-only}}
    spec: {automountServiceAccountToken: false, securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: "registry.example.mil/deu/app:IMAGE", securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}, resources: {requests: {cpu: 100m, memory: 64Mi}}}]}
  placement: {tiers: [core, edge], preferredNations: [POL, LTU, DEU]}
"#;

fn deu_only(replicas: u32, image: &str) -> String {
    DEU_ONLY.replace("REPLICAS", &replicas.to_string()).replace("IMAGE", image)
}

/// Writes by target, verb and resource, as `target/verb/resource=count`, from the controller's metrics.
fn write_breakdown(c: &ControllerProcess) -> std::collections::BTreeMap<String, f64> {
    let label = |l: &str, name: &str| Some(l.split(&format!("{name}=\"")).nth(1)?.split('"').next()?.to_string());
    let mut out = std::collections::BTreeMap::new();
    for l in c.http("/metrics").unwrap_or_default().lines().filter(|l| l.starts_with("marshal_api_writes_total{")) {
        if let (Some(t), Some(v), Some(r), Some(n)) = (
            label(l, "target"),
            label(l, "verb"),
            label(l, "resource"),
            l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()),
        ) {
            *out.entry(format!("{t}/{v}/{r}")).or_default() += n;
        }
    }
    out
}

/// What changed between two breakdowns, heartbeat renewals aside.
fn write_delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, _)| !k.contains("/renew/"))
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .map(|(k, d)| format!("{k}={d}"))
        .collect()
}

fn releasability_and_changes(c: &ControllerProcess) {
    step("releasability: releasable only to DEU, never created in POL or LTU (even though they are preferred)");
    apply("hub", &deu_only(2, "1.0")).expect("deu-only");
    assert_eq!(wait_ready("deu-only", Duration::from_secs(120)), ["deu-1/core=2"]);
    check_members("deu-only");
    for member in ["pol-1", "ltu-1"] {
        let all = kubectl(member, &["get", "deployments", "-A", "-o", "name"]).expect("list");
        assert!(!all.contains("deu-only"), "deu-only found in {member}: {all}");
    }

    step("changes propagate: scale, new template, delete");
    std::thread::sleep(Duration::from_secs(5));
    let before = write_breakdown(c);
    apply("hub", &deu_only(3, "1.0")).expect("scale");
    wait_for("3 ready replicas in deu-1", Duration::from_secs(90), || {
        member_deployment("deu-1", NS, "deu-only")
            .filter(|d| d["status"]["readyReplicas"] == 3 && d["spec"]["replicas"] == 3)
    });
    wait_ready("deu-only", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(5));
    let delta = write_delta(&before, &write_breakdown(c));
    eprintln!("  writes for one placement change (scale 2 -> 3, until Ready): {}", delta.join(", "));
    apply("hub", &deu_only(3, "1.1")).expect("new image");
    wait_for("new image in deu-1", Duration::from_secs(90), || {
        member_deployment("deu-1", NS, "deu-only")
            .filter(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.mil/deu/app:1.1")
    });
    kubectl("hub", &["delete", "mw", "-n", NS, "deu-only", "--wait=false"]).expect("delete");
    wait_for("deu-only gone from deu-1 and the hub", Duration::from_secs(90), || {
        (member_deployment("deu-1", NS, "deu-only").is_none() && get("hub", &["mw", "-n", NS, "deu-only"]).is_none())
            .then_some(())
    });
    eprintln!("  scaled, re-templated and deleted through to the member");
}

fn invalid_objects_rejected() {
    step("invalid objects are rejected by the API server, naming the field");
    let bad_nation = file("examples/baltic/10-member-clusters.yaml")
        .replacen("name: pol-1", "name: pol-9", 1)
        .replacen("nation: POL", "nation: Poland", 1);
    let first_doc = bad_nation.split("\n---\n").next().unwrap().to_string();
    let err = apply("hub", &first_doc).expect_err("bad nation accepted");
    assert!(err.contains("spec.nation") && err.contains("^[A-Z]{3}$"), "{err}");

    let bad_class = deu_only(1, "1.0")
        .replace("classification: RESTRICTED", "classification: TOPSECRET")
        .replace("deu-only", "bad-class");
    let err = apply("hub", &bad_class).expect_err("unknown classification accepted");
    assert!(err.contains("spec.confidentiality.classification") && err.contains("TOPSECRET"), "{err}");

    let err = kubectl(
        "hub",
        &[
            "patch",
            "mw",
            "-n",
            NS,
            "isr-fusion",
            "--type=merge",
            "-p",
            r#"{"spec":{"confidentiality":{"classification":"UNCLASSIFIED"}}}"#,
        ],
    )
    .expect_err("relabel accepted");
    assert!(err.contains("spec.confidentiality") && err.contains("immutable"), "{err}");

    let bad_link = "apiVersion: marshal.dev/v1alpha1\nkind: ClusterLink\nmetadata: {name: ltu-1.deu-9}\nspec: {from: ltu-1, to: pol-1}\n";
    let err = apply("hub", bad_link).expect_err("misnamed link accepted");
    assert!(err.contains("metadata.name must be <spec.from>.<spec.to>"), "{err}");
    eprintln!("  4 invalid objects rejected");
}

fn broken_member_contained(c: &ControllerProcess) {
    step("a broken member stays contained");
    let missing = "apiVersion: marshal.dev/v1alpha1\nkind: MemberCluster\nmetadata: {name: fra-1}\nspec:\n  nation: FRA\n  connection: {mode: Push, kubeconfigSecretRef: {namespace: marshal-system, name: fra-1-kubeconfig, key: kubeconfig}}\n  clearance: {policy: NATO, classifications: [RESTRICTED], reviewBy: \"2027-06-30T00:00:00Z\"}\n  admission: {ownerNations: [\"*\"]}\n  tiers: [core]\n";
    apply("hub", missing).expect("fra-1");
    let insecure_kc = "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\nusers: [{name: x, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n";
    kubectl(
        "hub",
        &[
            "create",
            "secret",
            "generic",
            "-n",
            "marshal-system",
            "ita-1-kubeconfig",
            &format!("--from-literal=kubeconfig={insecure_kc}"),
        ],
    )
    .expect("secret");
    kubectl("hub", &["label", "secret", "-n", "marshal-system", "ita-1-kubeconfig", "marshal.dev/kubeconfig=true"])
        .expect("mark the Secret as a member kubeconfig");
    apply("hub", &missing.replace("fra-1", "ita-1").replace("FRA", "ITA")).expect("ita-1");
    for (c, needle) in [("fra-1", "fra-1-kubeconfig"), ("ita-1", "insecure-skip-tls-verify")] {
        let cond = wait_for(&format!("{c} CredentialsValid=False"), Duration::from_secs(60), || {
            let mc = get("hub", &["mc", c])?;
            let cond = mc["status"]["conditions"].as_array()?.iter().find(|x| x["type"] == "CredentialsValid")?.clone();
            (cond["status"] == "False").then_some(cond)
        });
        let msg = cond["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{c}: {msg}");
        eprintln!("  {c}: CredentialsValid=False ({}): {msg}", cond["reason"]);
    }
    for member in MEMBERS {
        let mc = get("hub", &["mc", member]).expect("member");
        assert_eq!(condition(&mc, "Reachable").as_deref(), Some("True"), "{member} unaffected");
    }
    let series = |c: &ControllerProcess| {
        let text = c.http("/metrics").unwrap_or_default();
        text.lines().filter(|l| l.starts_with("marshal_cluster_reachable{cluster=\"fra-1\"}")).count()
    };
    // The health loop adds the series on its next tick (every second).
    wait_for("marshal_cluster_reachable series for fra-1", Duration::from_secs(15), || (series(c) == 1).then_some(()));
    kubectl("hub", &["delete", "mc", "fra-1", "ita-1"]).expect("cleanup");
    kubectl("hub", &["delete", "secret", "-n", "marshal-system", "ita-1-kubeconfig"]).expect("cleanup");
    wait_for("fra-1's metric series removed with its MemberCluster", Duration::from_secs(15), || {
        (series(c) == 0).then_some(())
    });
    eprintln!("  fra-1 and ita-1 deleted: their marshal_cluster_reachable series are gone");
}

fn no_needless_writes(c: ControllerProcess) -> ControllerProcess {
    step("no needless writes: 60 s idle, then a restart");
    std::thread::sleep(Duration::from_secs(15));
    let before = c.writes(not_heartbeat);
    std::thread::sleep(Duration::from_secs(60));
    let after = c.writes(not_heartbeat);
    eprintln!("  writes (excluding heartbeat renewals) before/after 60 s idle: {before} / {after}");
    assert_eq!(before, after, "writes during an idle minute:\n{}", c.http("/metrics").unwrap_or_default());
    c.stop();
    let c = ControllerProcess::start(18080, &[]);
    std::thread::sleep(Duration::from_secs(30));
    // The restarted controller did decide every workload again (so "no writes" is not "did nothing").
    let reconciles: f64 = c
        .http("/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("marshal_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!("  reconciles in the 30 s after a restart: {reconciles}");
    assert!(reconciles >= 6.0, "the restarted controller reconciled {reconciles} times");
    let restarted = c.writes(not_heartbeat) + 0.0;
    eprintln!("  writes in the 30 s after a restart (excluding heartbeat renewals): {restarted}");
    assert_eq!(restarted, 0.0, "a restart wrote:\n{}", c.http("/metrics").unwrap_or_default());
    c
}

/// When the link proxy applied its current mode (the mtime of the file it writes once it has).
fn link_applied(cluster: &str) -> std::time::SystemTime {
    let state = std::env::var("MARSHAL_TB_STATE").unwrap_or_else(|_| "/tmp/marshal-tb".into());
    std::fs::metadata(format!("{state}/link/{cluster}.mode.applied"))
        .and_then(|m| m.modified())
        .expect("the link proxy records the mode it applied")
}

fn failover_and_failback(c: &ControllerProcess) {
    step("failover: cut ltu-1's link");
    let yaml =
        ltu_pol_workload("e2e-failover", "RESTRICTED", 2, "200m", "{tolerationSeconds: 20, failbackAfterSeconds: 60}");
    apply("hub", &yaml).expect("e2e-failover");
    assert_eq!(wait_ready("e2e-failover", Duration::from_secs(120)), ["ltu-1/edge=2"]);
    check_members("e2e-failover");
    let writes_before = c.writes(not_heartbeat);
    // The proxy applies a mode a little before `e2e/federation link` returns: take the time before the call
    // for upper bounds, and the proxy's own record for lower bounds (see `link_applied`).
    let cut = Instant::now();
    federation(&["link", "ltu-1", "down"]);
    let cut_applied = link_applied("ltu-1");
    wait_for("ltu-1 Reachable=False", Duration::from_secs(40), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("False")).then_some(())
    });
    let unreachable_after = cut.elapsed().as_secs_f64();
    eprintln!("  ltu-1 Reachable=False {unreachable_after:.1}s after the cut");
    assert!(unreachable_after <= 20.0, "grace 15 s + 5 s exceeded: {unreachable_after:.1}s");
    // Within toleration the placement stays.
    assert_eq!(placements(&workload("e2e-failover")), ["ltu-1/edge=2"]);
    let moved = wait_for("e2e-failover Ready elsewhere", Duration::from_secs(120), || {
        let w = workload("e2e-failover");
        let p = placements(&w);
        (!p.iter().any(|s| s.starts_with("ltu-1/")) && condition(&w, "Ready").as_deref() == Some("True")).then_some(p)
    });
    let ready_after = cut.elapsed().as_secs_f64();
    let ready_after_applied = cut_applied.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    eprintln!("  e2e-failover Ready on {moved:?} {ready_after:.1}s after the cut (grace 15 s + toleration 20 s)");
    assert!(moved.iter().all(|p| p.starts_with("pol-1/")), "moved outside the releasable clusters: {moved:?}");
    assert!(ready_after_applied >= 20.0, "moved before tolerationSeconds: {ready_after_applied:.1}s");
    check_members_except("e2e-failover", &["ltu-1"]);
    assert!(
        member_deployment("ltu-1", NS, "e2e-failover").is_some(),
        "the cut-off member keeps its copy running (edge autonomy)"
    );
    let writes = c.writes(not_heartbeat) - writes_before;
    eprintln!("  hub+member writes (excluding heartbeats) from the cut to Ready elsewhere: {writes}");

    // While ltu-1 stays cut off nothing changes: once every toleration in the exercise has run out (30 s;
    // 60 s for the BreakBeforeMake one, which waits for ltu-1's lease), no workload status or Assignment is
    // written again. The Unreachable verdicts carry the last heartbeat, a Lease time with microseconds.
    std::thread::sleep(Duration::from_secs(90).saturating_sub(cut.elapsed()));
    let before = write_breakdown(c);
    std::thread::sleep(Duration::from_secs(20));
    let delta = write_delta(&before, &write_breakdown(c));
    eprintln!("  writes in 20 s while ltu-1 stays cut off (heartbeats aside): {delta:?}");
    let needless: Vec<&String> =
        delta.iter().filter(|k| k.contains("/missionworkloads/") || k.contains("/assignments")).collect();
    assert!(needless.is_empty(), "workload status or Assignments rewritten while nothing changed: {needless:?}");

    step("failback: restore the link");
    let restored = Instant::now();
    federation(&["link", "ltu-1", "up"]);
    let restored_applied = link_applied("ltu-1");
    wait_for("ltu-1 Reachable=True", Duration::from_secs(60), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("True")).then_some(())
    });
    eprintln!("  ltu-1 reachable {:.1}s after the link came back", restored.elapsed().as_secs_f64());
    wait_for("stale copy removed from ltu-1", Duration::from_secs(60), || {
        member_deployment("ltu-1", NS, "e2e-failover").is_none().then_some(())
    });
    eprintln!("  stale copy in ltu-1 cleaned up {:.1}s after the link came back", restored.elapsed().as_secs_f64());
    wait_for("e2e-failover back on ltu-1", Duration::from_secs(180), || {
        let w = workload("e2e-failover");
        let p = placements(&w);
        (p == ["ltu-1/edge=2"] && condition(&w, "Ready").as_deref() == Some("True")).then_some(())
    });
    let failback_after = restored_applied.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    eprintln!("  back on ltu-1/edge and Ready {failback_after:.1}s after the link came back (failbackAfterSeconds 60)");
    assert!(failback_after >= 60.0, "failed back before the failback window: {failback_after:.1}s");
    check_members("e2e-failover");
    for member in ["pol-1", "deu-1"] {
        wait_for(&format!("no copy left in {member}"), Duration::from_secs(60), || {
            member_deployment(member, NS, "e2e-failover").is_none().then_some(())
        });
    }
    kubectl("hub", &["delete", "mw", "-n", NS, "e2e-failover"]).expect("delete");
}

/// §1.9: restarts do not reset time. While ltu-1 is cut off, the controller is restarted every 25 s: longer than
/// the grace period (15 s; after a start, decisions wait that long for first heartbeats) and shorter than
/// grace + toleration (35 s). Tolerations run from the last heartbeat, a fact in the Lease, not from the process's
/// start, so the workload still fails over; had a restart reset the toleration it would stay on ltu-1 for good.
fn restarts_do_not_reset_time(c: ControllerProcess) -> ControllerProcess {
    step("restarts do not reset time: a controller restarted every 25 s still fails over");
    let yaml =
        ltu_pol_workload("e2e-restarts", "RESTRICTED", 1, "100m", "{tolerationSeconds: 20, failbackAfterSeconds: 60}");
    apply("hub", &yaml).expect("e2e-restarts");
    assert_eq!(wait_ready("e2e-restarts", Duration::from_secs(120)), ["ltu-1/edge=1"]);
    let moved = |w: &serde_json::Value| {
        let p = placements(w);
        (!p.is_empty()
            && !p.iter().any(|s| s.starts_with("ltu-1/"))
            && condition(w, "Ready").as_deref() == Some("True"))
        .then_some(p)
    };
    let cut = Instant::now();
    federation(&["link", "ltu-1", "down"]);
    let mut c = Some(c);
    let mut restarts = 0;
    let mut result = None;
    while result.is_none() && restarts < 10 {
        if let Some(old) = c.take() {
            old.stop();
        }
        restarts += 1;
        let next = ControllerProcess::start(18080, &[]);
        result = wait_for_opt(Duration::from_secs(25), || moved(&workload("e2e-restarts")));
        c = Some(next);
    }
    let c = c.expect("a controller runs");
    let at = result.unwrap_or_else(|| panic!("e2e-restarts never left ltu-1 over {restarts} restarts"));
    eprintln!(
        "  e2e-restarts Ready on {at:?} {:.1}s after the cut, after {restarts} controller restart(s) 25 s apart",
        cut.elapsed().as_secs_f64()
    );
    assert!(at.iter().all(|p| p.starts_with("pol-1/")), "moved outside the releasable clusters: {at:?}");
    check_members_except("e2e-restarts", &["ltu-1"]);
    federation(&["link", "ltu-1", "up"]);
    kubectl("hub", &["delete", "mw", "-n", NS, "e2e-restarts", "--wait=false"]).expect("delete");
    for member in MEMBERS {
        wait_for(&format!("no e2e-restarts copy left in {member}"), Duration::from_secs(90), || {
            member_deployment(member, NS, "e2e-restarts").is_none().then_some(())
        });
    }
    wait_for("ltu-1 Reachable=True", Duration::from_secs(60), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("True")).then_some(())
    });
    c
}

fn is_leader(c: &ControllerProcess) -> Option<bool> {
    let m = c.http("/metrics")?;
    let line = m.lines().find(|l| l.starts_with("marshal_leader "))?;
    Some(line.ends_with(" 1"))
}

fn leader_election(c: ControllerProcess) {
    step("leader election: two replicas, one leads; kill it and the other takes over");
    c.stop();
    let ns = "--leader-namespace=default";
    let a = ControllerProcess::start_unready(18091, &["--leader-elect", ns]);
    let b = ControllerProcess::start_unready(18092, &["--leader-elect", ns]);
    let a_leads = wait_for("one leader", Duration::from_secs(60), || match (is_leader(&a), is_leader(&b)) {
        (Some(true), _) => Some(true),
        (_, Some(true)) => Some(false),
        _ => None,
    });
    let (leading, waiting) = if a_leads { (a, b) } else { (b, a) };
    assert_ne!(is_leader(&waiting), Some(true), "two leaders");
    assert_eq!(waiting.http("/readyz"), None, "a follower is not ready (it does not write)");
    let before = waiting.writes(|_| true);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(waiting.writes(|_| true), before, "a follower writes nothing");
    leading.stop();
    let t = Instant::now();
    wait_for("the follower takes over", Duration::from_secs(60), || (is_leader(&waiting) == Some(true)).then_some(()));
    eprintln!("  the follower took over {:.1}s after the leader died (Lease 15 s)", t.elapsed().as_secs_f64());
    waiting.stop();
}

/// F8: a leader cut off from the hub API (its own connection runs through a link proxy that is blackholed) stops
/// writing and exits before the follower can take the Lease, so members never see two leaders' writes.
fn cut_off_leader_fences_itself() {
    step("leader cut off from the hub: it fences itself before the follower takes over");
    let state = std::env::var("MARSHAL_TB_STATE").unwrap_or_else(|_| "/tmp".into());
    let hub = std::env::var("MARSHAL_TB_API_HUB").expect("MARSHAL_TB_API_HUB");
    let upstream = hub.trim_start_matches("https://").to_string();
    let listen = "127.0.0.1:18195";
    let control = format!("{state}/leader-link.mode");
    std::fs::write(&control, "pass\n").expect("control file");
    let mut proxy = std::process::Command::new("linkproxy")
        .args(["--listen", listen, "--upstream", &upstream, "--control", &control])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start linkproxy");
    let config = std::fs::read_to_string(kubeconfig("hub")).expect("hub kubeconfig");
    assert!(config.contains(&upstream), "the hub kubeconfig names {upstream}");
    let proxied = format!("{state}/hub-via-link.kubeconfig");
    std::fs::write(&proxied, config.replace(&upstream, listen)).expect("kubeconfig");
    let ns = "--leader-namespace=default";
    let mut cut_off = ControllerProcess::start_with_kubeconfig(18093, &["--leader-elect", ns], &proxied);
    wait_for("the proxied replica leads", Duration::from_secs(90), || {
        (is_leader(&cut_off) == Some(true)).then_some(())
    });
    let follower = ControllerProcess::start_unready(18094, &["--leader-elect", ns]);
    assert_ne!(is_leader(&follower), Some(true), "two leaders");
    std::fs::write(&control, "blackhole\n").expect("cut");
    wait_for("the link is cut", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("{control}.applied")).ok().filter(|m| m.trim() == "blackhole")
    });
    let cut = Instant::now();
    let (mut exited, mut leads) = (None, None);
    wait_for("the follower takes over", Duration::from_secs(90), || {
        if exited.is_none() && cut_off.exited() {
            exited = Some(cut.elapsed());
        }
        if leads.is_none() && is_leader(&follower) == Some(true) {
            leads = Some(cut.elapsed());
        }
        leads
    });
    let leads = leads.unwrap_or_default();
    let exited = exited.unwrap_or_else(|| panic!("the cut-off leader still ran when the follower led ({leads:?})"));
    eprintln!(
        "  cut-off leader exited {:.1}s after the cut; the follower led {:.1}s after it (Lease 15 s)",
        exited.as_secs_f64(),
        leads.as_secs_f64()
    );
    assert!(exited < leads, "the cut-off leader exited after the follower took over");
    let log = std::fs::read_to_string(format!("{state}/marshal-controller.log")).unwrap_or_default();
    assert!(log.contains("fenced: the Lease was last renewed"), "the cut-off leader says why it stopped");
    follower.stop();
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn controller_end_to_end() {
    let (c, monitor) = setup();
    placement_works();
    releasability_and_changes(&c);
    e2e::refusal::member_refusal(&c);
    invalid_objects_rejected();
    broken_member_contained(&c);
    let c = no_needless_writes(c);
    failover_and_failback(&c);
    let c = restarts_do_not_reset_time(c);
    // Releasability held throughout: deu-only never reached POL or LTU, nuclear-planning never ran.
    for member in MEMBERS {
        assert!(member_deployment(member, NS, "nuclear-planning").is_none());
    }
    leader_election(c);
    cut_off_leader_fences_itself();
    drop(monitor);
}
