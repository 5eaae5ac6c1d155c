//! End-to-end: pull mode on the local federation. ltu-1 runs `marshal agent` with a token of its own hub
//! ServiceAccount; the hub holds no credentials for ltu-1 at all. Run through `e2e/tests/30-agent.sh`; it
//! restores ltu-1 to push mode (and removes everything else it added) when it ends.

mod e2e;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::agent::*;
use e2e::fleet::{file as repo, step};
use e2e::*;
use serde_json::Value;

const NS: &str = "e2e-agent";
const SECRET: &str = "marshal-system/marshal-signing-key";

const CLEARANCE: &str = "# ltu-1's own clearance, owned by the host nation: RESTRICTED at most (the hub's MemberCluster says CONFIDENTIAL)\n\
nation: LTU\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
categories: [{tagName: Releasable To, values: [LTU, NATO]}]\n  reviewBy: \"2030-01-01T00:00:00Z\"\n\
admission: {ownerNations: [\"*\"], maxClassification: RESTRICTED}\n\
policies:\n- {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, COSMIC TOP SECRET], categories: [{tagName: Releasable To, type: Permissive}, {tagName: Special Handling, type: Restrictive, values: [ATOMAL, CRYPTO]}]}\n";

fn sensor(replicas: u32) -> String {
    format!(
        r#"
apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {{name: sensor, namespace: {NS}}}
spec:
  owner: LTU
  confidentiality: {{policy: NATO, classification: RESTRICTED, categories: [{{tagName: Releasable To, values: [LTU, POL]}}]}}
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: sensor}}}}
    spec: {{automountServiceAccountToken: false, securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}, containers: [{{name: app, image: "registry.example.mil/ltu/sensor:1", securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}, resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}]}}
  placement: {{tiers: [edge, core], preferredNations: [LTU, POL]}}
  failover: {{tolerationSeconds: 10, failbackAfterSeconds: 20}}
"#
    )
}

const CONFIDENTIAL: &str = r#"
apiVersion: marshal.dev/v1alpha1
kind: MissionWorkload
metadata: {name: conf, namespace: e2e-agent}
spec:
  owner: LTU
  confidentiality: {policy: NATO, classification: CONFIDENTIAL, categories: [{tagName: Releasable To, values: [LTU]}]}
  replicas: 1
  template:
    metadata: {labels: {app: conf}}
    spec: {automountServiceAccountToken: false, securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: "registry.example.mil/ltu/conf:1", securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}, resources: {requests: {cpu: 100m, memory: 64Mi}}}]}
  placement: {tiers: [edge]}
"#;

fn workload(name: &str) -> Value {
    get("hub", &["mw", "-n", NS, name]).unwrap_or_else(|| panic!("MissionWorkload {name} not found"))
}

fn assignment(cluster: &str, name: &str) -> Option<Value> {
    get("hub", &["asg", "-n", &format!("marshal-{cluster}"), &format!("{NS}.{name}")])
}

fn annotation(obj: &Value, key: &str) -> String {
    obj["metadata"]["annotations"][key].as_str().unwrap_or_default().to_string()
}

fn setup() -> (String, String) {
    step("setup: CRDs, example clusters and links, signing key, ltu-1 in pull mode with no credentials on the hub");
    e2e::fleet::prepare_hub();
    // The exercise without its workloads: this test brings its own.
    e2e::fleet::apply_examples(&e2e::fleet::EXAMPLES[..4]);
    let _ = kubectl("hub", &["create", "namespace", NS]);

    // The signing key: the Secret on the hub, the public key for the agent.
    let d = dir();
    let secret = marshal(&["keygen", "--public-out", &format!("{d}/key-a.pub")]).expect("keygen");
    std::fs::write(format!("{d}/key-a.secret.yaml"), &secret).expect("write secret");
    apply("hub", &secret).expect("signing Secret");
    std::fs::copy(format!("{d}/key-a.pub"), format!("{d}/trusted.pub")).expect("trust key a");
    // The host pins the one probe target it lets its agent dial: pol-1's link proxy.
    let host = format!("{CLEARANCE}probes:\n  ltu-1.pol-1: \"{}\"\n", env("MARSHAL_TB_PROXY_POL_1"));
    std::fs::write(format!("{d}/clearance.yaml"), host).expect("clearance");

    // Pull mode: no kubeconfig Secret for ltu-1 anywhere on the hub.
    kubectl(
        "hub",
        &[
            "patch",
            "mc",
            "ltu-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"connection":{"mode":"Pull","kubeconfigSecretRef":null}}}"#,
        ],
    )
    .expect("ltu-1 Pull");
    let _ = kubectl("hub", &["delete", "secret", "-n", "marshal-system", "ltu-1-kubeconfig", "--ignore-not-found"]);
    let proxy = env("MARSHAL_TB_PROXY_LTU_1");
    let api = env("MARSHAL_TB_API_LTU_1");
    let ca = std::fs::read(format!("{}/ltu-1/pki/ca.crt", state())).expect("ltu-1 CA");
    let ca_b64 = {
        use std::io::Write;
        let mut p = Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        p.stdin.take().unwrap().write_all(&ca).unwrap();
        String::from_utf8(p.wait_with_output().unwrap().stdout).unwrap()
    };
    let secrets = kubectl("hub", &["get", "secrets", "-A", "-o", "json"]).expect("secrets");
    let decoded: Value = serde_json::from_str(&secrets).expect("json");
    for s in decoded["items"].as_array().expect("items") {
        let text = s["data"].to_string();
        assert!(!text.contains(&ca_b64[..40]), "a hub Secret holds ltu-1's CA: {}", s["metadata"]["name"]);
        for v in s["data"].as_object().into_iter().flatten() {
            let raw = kubectl_decode(v.1.as_str().unwrap_or_default());
            assert!(
                !raw.contains(&proxy) && !raw.contains(api.trim_start_matches("https://")),
                "hub Secret {}/{} addresses ltu-1",
                s["metadata"]["namespace"],
                s["metadata"]["name"]
            );
        }
    }
    eprintln!(
        "  no Secret on the hub addresses ltu-1 or holds its CA ({} Secrets checked)",
        decoded["items"].as_array().map_or(0, Vec::len)
    );

    // Its probe target: pol-1's link proxy (a real TCP endpoint in the federation).
    let probe = format!(r#"{{"spec":{{"probe":{{"address":"{}"}}}}}}"#, env("MARSHAL_TB_PROXY_POL_1"));
    kubectl("hub", &["patch", "clink", "ltu-1.pol-1", "--type=merge", "-p", &probe]).expect("probe address");

    step("agent RBAC on the hub (`marshal agent rbac --links-from-hub`)");
    let rbac = marshal(&["agent", "rbac", "--cluster", "ltu-1", "--links-from-hub"]).expect("rbac");
    assert!(rbac.contains("ltu-1.pol-1") && rbac.contains("ltu-1.deu-1") && !rbac.contains("pol-1.deu-1"), "{rbac}");
    std::fs::write(format!("{d}/rbac.yaml"), &rbac).expect("write rbac");
    apply("hub", &rbac).expect("apply rbac");
    let hub_kc = agent_hub_kubeconfig();

    step("member guard on ltu-1 (`marshal agent guard --clearance`)");
    let guard = marshal(&["agent", "guard", "--cluster", "ltu-1", "--clearance", &format!("{d}/clearance.yaml")])
        .expect("guard");
    assert!(guard.contains(r#"expression: "['UNCLASSIFIED', 'RESTRICTED']""#), "cleared list inlined: {guard}");
    assert!(!guard.contains("paramKind"), "{guard}");
    let _ = kubectl("ltu-1", &["create", "namespace", "marshal-system"]);
    apply("ltu-1", &guard).expect("guard");
    (d, hub_kc)
}

fn kubectl_decode(b64: &str) -> String {
    use std::io::Write;
    let mut p = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("base64");
    p.stdin.take().expect("stdin").write_all(b64.as_bytes()).expect("write");
    String::from_utf8_lossy(&p.wait_with_output().expect("base64").stdout).into_owned()
}

fn rbac_is_exact(hub_kc: &str) {
    step("the agent's identity can do exactly its job (auth can-i and real calls with its token)");
    let yes: &[&[&str]] = &[
        &["watch", "assignments.marshal.dev", "-n", "marshal-ltu-1"],
        &["patch", "assignments.marshal.dev", "--subresource=status", "-n", "marshal-ltu-1"],
        &["patch", "leases.coordination.k8s.io/heartbeat", "-n", "marshal-ltu-1"],
        &["create", "leases.coordination.k8s.io/heartbeat", "-n", "marshal-ltu-1"],
        &["create", "events.events.k8s.io", "-n", "marshal-ltu-1"],
        &["get", "memberclusters.marshal.dev/ltu-1"],
        &["patch", "memberclusters.marshal.dev/ltu-1", "--subresource=status"],
        &["patch", "clusterlinks.marshal.dev/ltu-1.pol-1", "--subresource=status"],
    ];
    let no: &[&[&str]] = &[
        &["list", "assignments.marshal.dev", "-n", "marshal-pol-1"],
        &["get", "assignments.marshal.dev", "-n", "marshal-deu-1"],
        &["create", "assignments.marshal.dev", "-n", "marshal-ltu-1"],
        &["patch", "assignments.marshal.dev", "-n", "marshal-ltu-1"],
        &["update", "assignments.marshal.dev", "-n", "marshal-ltu-1"],
        &["delete", "assignments.marshal.dev", "-n", "marshal-ltu-1"],
        &["get", "secrets", "-n", "marshal-ltu-1"],
        &["get", "secrets", "-n", "marshal-system"],
        &["list", "secrets", "-A"],
        &["get", "memberclusters.marshal.dev/pol-1"],
        &["patch", "memberclusters.marshal.dev/pol-1", "--subresource=status"],
        &["patch", "memberclusters.marshal.dev/ltu-1"],
        &["patch", "clusterlinks.marshal.dev/pol-1.deu-1", "--subresource=status"],
        &["patch", "leases.coordination.k8s.io/other", "-n", "marshal-ltu-1"],
        &["create", "leases.coordination.k8s.io/other", "-n", "marshal-ltu-1"],
        &["patch", "leases.coordination.k8s.io/heartbeat", "-n", "marshal-pol-1"],
        &["list", "missionworkloads.marshal.dev", "-A"],
    ];
    for a in yes {
        assert!(can_i(a), "the agent should be allowed: {a:?}");
    }
    for a in no {
        assert!(!can_i(a), "the agent must not be allowed: {a:?}");
    }
    eprintln!("  can-i: {} allowed, {} denied, as expected", yes.len(), no.len());
    kubectl_as(hub_kc, &["get", "asg", "-n", "marshal-ltu-1"]).expect("own Assignments");
    kubectl_as(hub_kc, &["get", "mc", "ltu-1"]).expect("own MemberCluster");
    for forbidden in [
        vec!["get", "asg", "-n", "marshal-pol-1"],
        vec!["get", "secrets", "-n", "marshal-system"],
        vec!["get", "secrets", "-n", "marshal-ltu-1"],
        vec!["get", "mc", "pol-1"],
        vec!["get", "mw", "-A"],
    ] {
        let err = kubectl_as(hub_kc, &forbidden).expect_err(&format!("token may {forbidden:?}"));
        assert!(err.contains("Forbidden") || err.contains("forbidden"), "{forbidden:?}: {err}");
    }
    let whoami = kubectl_as(hub_kc, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]).expect("whoami");
    assert_eq!(whoami.trim(), AGENT_USER);
    eprintln!(
        "  real calls with the token as {whoami}: own namespace and MemberCluster yes; others and Secrets Forbidden"
    );
}

fn wait_placed(name: &str, want: &[&str], timeout: Duration) {
    wait_for(&format!("{name} Ready on {want:?}"), timeout, || {
        let w = workload(name);
        (placements(&w) == want && condition(&w, "Ready").as_deref() == Some("True")).then_some(())
    });
}

fn runs_on_ltu(agent: &Agent) {
    step("workloads placed on ltu-1 run there (signed, verified and applied by the agent)");
    let t = Instant::now();
    apply("hub", &sensor(2)).expect("sensor");
    wait_placed("sensor", &["ltu-1/edge=2"], Duration::from_secs(120));
    eprintln!("  sensor Ready on ltu-1/edge=2 after {:.1}s", t.elapsed().as_secs_f64());
    let d = member_deployment("ltu-1", NS, "sensor").expect("Deployment in ltu-1");
    assert_eq!(d["status"]["readyReplicas"], 2);
    let a = assignment("ltu-1", "sensor").expect("Assignment");
    assert_eq!(a["status"]["phase"], "Applied");
    // The member records what it applied: the content digest (a renewal rewrites nothing) and the sequence.
    assert_eq!(annotation(&d, "marshal.dev/digest"), a["status"]["appliedDigest"].as_str().unwrap_or_default());
    assert_eq!(annotation(&d, "marshal.dev/sequence"), a["spec"]["sequence"].to_string());
    assert_eq!(annotation(&a, "marshal.dev/signature").len(), 88, "signed");
    let lease = get("hub", &["lease", "-n", "marshal-ltu-1", "heartbeat"]).expect("Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "agent/ltu-1");
    let mc = get("hub", &["mc", "ltu-1"]).expect("ltu-1");
    assert_eq!(condition(&mc, "Reachable").as_deref(), Some("True"));
    assert!(mc["status"]["capacity"]["edge"]["nodes"] == 2, "capacity reported by the agent: {}", mc["status"]);
    assert_eq!(agent.refusals("Unsigned"), 0.0);
    eprintln!(
        "  Lease held by agent/ltu-1; capacity reported; Assignment signed by {}",
        annotation(&a, "marshal.dev/signature-key")
    );
}

fn local_clearance_rules() {
    step("the agent's own clearance (RESTRICTED) is authoritative, not the hub's (CONFIDENTIAL)");
    apply("hub", CONFIDENTIAL).expect("conf");
    let a = wait_for("conf Refused by the agent", Duration::from_secs(90), || {
        assignment("ltu-1", "conf").filter(|a| a["status"]["phase"] == "Refused")
    });
    let msg = a["status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("ClassificationNotCleared") && msg.contains("member clearance"), "{msg}");
    assert!(member_deployment("ltu-1", NS, "conf").is_none(), "nothing applied");
    eprintln!("  Refused: {msg}");
    // The hub obeys: ltu-1 is out for this workload (the only other candidates are not cleared), and the refused
    // Assignment stays with no replicas as the question the agent answers again on every re-check.
    let w = wait_for("conf Unplaceable, ltu-1 RefusedByMember", Duration::from_secs(60), || {
        let w = workload("conf");
        let reason = w["status"]["verdicts"].as_array()?.iter().find(|v| v["cluster"] == "ltu-1")?["reason"].clone();
        (w["status"]["phase"] == "Unplaceable" && reason == "RefusedByMember").then_some(w)
    });
    assert!(w["status"]["placements"].as_array().is_none_or(|p| p.is_empty()), "{}", w["status"]);
    let parked = assignment("ltu-1", "conf").expect("refused Assignment kept");
    assert_eq!((parked["spec"]["replicas"].as_i64(), parked["status"]["phase"].as_str()), (Some(0), Some("Refused")));
    eprintln!("  the hub placed conf nowhere else it may not go: Unplaceable, ltu-1 RefusedByMember");
    kubectl("hub", &["delete", "mw", "-n", NS, "conf", "--wait=false"]).expect("delete conf");
    wait_for("conf gone", Duration::from_secs(60), || get("hub", &["mw", "-n", NS, "conf"]).is_none().then_some(()));
}

fn tampering_refused(agent: &Agent, c: ControllerProcess) -> ControllerProcess {
    step("an Assignment edited on the hub without re-signing is Refused; the member is unchanged");
    // The controller would restore its Assignment at once; stop it for the edit (an attacker with write
    // access to Assignments but not to the signing key).
    c.stop();
    let before = member_deployment("ltu-1", NS, "sensor").expect("Deployment");
    let rv = before["metadata"]["resourceVersion"].clone();
    let digest_mismatch = agent.refusals("DigestMismatch");
    let patch = r#"{"spec":{"confidentiality":{"classification":"UNCLASSIFIED"}}}"#;
    kubectl("hub", &["patch", "asg", "-n", "marshal-ltu-1", &format!("{NS}.sensor"), "--type=merge", "-p", patch])
        .expect("tamper");
    let a = wait_for("Refused DigestMismatch", Duration::from_secs(30), || {
        assignment("ltu-1", "sensor").filter(|a| a["status"]["phase"] == "Refused")
    });
    assert!(a["status"]["message"].as_str().unwrap_or_default().starts_with("DigestMismatch"), "{}", a["status"]);
    assert_eq!(agent.refusals("DigestMismatch"), digest_mismatch + 1.0, "refusal metric");
    // A cleverer attacker also recomputes the digest: the signature no longer matches.
    let spec: marshal::api::AssignmentSpec = serde_json::from_value(a["spec"].clone()).expect("spec");
    let digest = spec.digest_for("marshal-ltu-1", &format!("{NS}.sensor"));
    let patch = format!(r#"{{"spec":{{"digest":"{digest}"}}}}"#);
    kubectl("hub", &["patch", "asg", "-n", "marshal-ltu-1", &format!("{NS}.sensor"), "--type=merge", "-p", &patch])
        .expect("tamper digest");
    wait_for("Refused BadSignature", Duration::from_secs(30), || {
        assignment("ltu-1", "sensor")
            .filter(|a| a["status"]["message"].as_str().unwrap_or_default().starts_with("BadSignature"))
    });
    assert_eq!(agent.refusals("BadSignature"), 1.0);
    let events = kubectl(
        "hub",
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            "marshal-ltu-1",
            "-o",
            "jsonpath={range .items[*]}{.reason}/{.action}:{.note}{'\\n'}{end}",
        ],
    )
    .expect("events");
    assert!(events.lines().any(|l| l.starts_with("Refused/DigestMismatch:DigestMismatch")), "{events}");
    assert!(events.lines().any(|l| l.starts_with("Refused/BadSignature:BadSignature")), "{events}");
    let after = member_deployment("ltu-1", NS, "sensor").expect("still running");
    assert_eq!(after["metadata"]["resourceVersion"], rv, "the member Deployment was not touched");
    assert_eq!(annotation(&after, "marshal.dev/classification"), "RESTRICTED");
    eprintln!("  DigestMismatch and BadSignature refused with Events and metrics; the member Deployment unchanged");
    let c = ControllerProcess::start(18080, &["--signing-key-secret", SECRET]);
    wait_for("the controller restores the signed Assignment", Duration::from_secs(60), || {
        assignment("ltu-1", "sensor").filter(|a| a["status"]["phase"] == "Applied")
    });
    let again = member_deployment("ltu-1", NS, "sensor").expect("still running");
    assert_eq!(again["metadata"]["resourceVersion"], rv, "restoring the same digest writes nothing to the member");
    c
}

fn guard_rejects() {
    step("the member guard: ltu-1's API server rejects SECRET-labelled and digest-less Marshal Deployments");
    let _ = kubectl("ltu-1", &["create", "namespace", NS]);
    let digest = format!("sha256:{}", "a".repeat(64));
    let deployment = |name: &str, class: Option<&str>, digest: Option<&str>| {
        let labels = class.map(|c| format!(", marshal.dev/classification: {c}")).unwrap_or_default();
        let ann = digest.map(|d| format!("\n  annotations: {{marshal.dev/digest: \"{d}\"}}")).unwrap_or_default();
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {NS}\n  \
             labels: {{app: {name}{labels}}}{ann}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}}}}}\n  \
             template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{automountServiceAccountToken: false, securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}, containers: [{{name: c, image: x, securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}}}]}}\n"
        )
    };
    let err = wait_for("SECRET rejected", Duration::from_secs(30), || {
        apply("ltu-1", &deployment("guard-secret", Some("SECRET"), Some(&digest))).err()
    });
    assert!(err.contains("marshal-member-guard") && err.contains("SECRET is not cleared"), "{err}");
    eprintln!("  SECRET: {}", err.trim());
    let err = apply("ltu-1", &deployment("guard-nodigest", Some("RESTRICTED"), None)).expect_err("no digest accepted");
    assert!(err.contains("marshal.dev/digest"), "{err}");
    eprintln!("  no digest: {}", err.trim());
    apply("ltu-1", &deployment("guard-ok", Some("RESTRICTED"), Some(&digest))).expect("RESTRICTED with digest");
    apply("ltu-1", &deployment("guard-plain", None, None)).expect("a Deployment without Marshal labels");
    kubectl("ltu-1", &["delete", "deployment", "-n", NS, "guard-ok", "guard-plain"]).expect("cleanup");
}

fn rotation(agent: &Agent, d: &str) {
    step("key rotation: trust old+new, switch the Secret, every Assignment re-signed, nothing re-applied");
    let before = member_deployment("ltu-1", NS, "sensor").expect("Deployment");
    let rv = before["metadata"]["resourceVersion"].clone();
    let old_key = annotation(&assignment("ltu-1", "sensor").expect("asg"), "marshal.dev/signature-key");
    let secret = marshal(&["keygen", "--public-out", &format!("{d}/key-b.pub"), "--trust", &format!("{d}/key-a.pub")])
        .expect("keygen b");
    // 1. The agent trusts old and new (the file is re-read at every check: no restart).
    let both = repo_abs(&format!("{d}/key-a.pub")) + &repo_abs(&format!("{d}/key-b.pub"));
    std::fs::write(format!("{d}/trusted.pub"), both).expect("trust both");
    // 2. The hub signs with the new key.
    apply("hub", &secret).expect("new Secret");
    let t = Instant::now();
    let new_key = wait_for("Assignment re-signed with the new key", Duration::from_secs(120), || {
        let a = assignment("ltu-1", "sensor")?;
        let k = annotation(&a, "marshal.dev/signature-key");
        (k != old_key && a["status"]["phase"] == "Applied").then_some(k)
    });
    eprintln!("  re-signed {old_key} -> {new_key} after {:.1}s", t.elapsed().as_secs_f64());
    // 3. The old key is retired.
    std::fs::copy(format!("{d}/key-b.pub"), format!("{d}/trusted.pub")).expect("trust new only");
    std::thread::sleep(Duration::from_secs(3));
    let a = assignment("ltu-1", "sensor").expect("asg");
    assert_eq!(a["status"]["phase"], "Applied");
    assert_eq!(agent.refusals("UnknownSigningKey"), 0.0);
    let after = member_deployment("ltu-1", NS, "sensor").expect("Deployment");
    assert_eq!(after["metadata"]["resourceVersion"], rv, "a rotation writes nothing to the member");
}

fn repo_abs(path: &str) -> String {
    std::fs::read_to_string(path).expect("read")
}

fn probes() {
    step("link probes: ltu-1.pol-1 measured by the agent (TCP connect RTT)");
    let link = wait_for("ltu-1.pol-1 Up from agent/ltu-1", Duration::from_secs(30), || {
        get("hub", &["clink", "ltu-1.pol-1"])
            .filter(|l| l["status"]["reporter"] == "agent/ltu-1" && l["status"]["state"] == "Up")
    });
    eprintln!("  ltu-1.pol-1: {}", link["status"]);
    assert!(link["status"]["rttMs"].as_u64().is_some(), "rttMs");
    let rv0 = link["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    std::thread::sleep(Duration::from_secs(12));
    let l = get("hub", &["clink", "ltu-1.pol-1"]).expect("link");
    let changes = if l["metadata"]["resourceVersion"] == rv0 { 0 } else { 1 };
    eprintln!(
        "  writes in 12 s (6 probe rounds) of a steady link: {changes} (bucket changes or the 20 s refresh only)"
    );
    let untouched = get("hub", &["clink", "ltu-1.deu-1"]).expect("link");
    assert_ne!(untouched["status"]["reporter"], "agent/ltu-1", "no pinned probe target: not measured");
    // The host re-pins the target (its file is re-read every round) to a closed port: the link goes Down.
    let d = dir();
    let host = std::fs::read_to_string(format!("{d}/clearance.yaml")).expect("host file");
    let pinned = env("MARSHAL_TB_PROXY_POL_1");
    std::fs::write(format!("{d}/clearance.yaml"), host.replace(&pinned, "127.0.0.1:1")).expect("re-pin");
    wait_for("ltu-1.pol-1 Down", Duration::from_secs(30), || {
        get("hub", &["clink", "ltu-1.pol-1"]).filter(|l| l["status"]["state"] == "Down")
    });
    eprintln!("  closed port (pinned by the host): Down");
    std::fs::write(format!("{d}/clearance.yaml"), host).expect("pin back");
}

fn failover(agent: Agent, hub_kc: &str) -> Agent {
    step("the host cuts the link (agent stopped): ltu-1 unreachable, failover to pol-1; restart converges");
    let t = Instant::now();
    agent.stop();
    wait_for("ltu-1 Reachable=False", Duration::from_secs(40), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("False")).then_some(())
    });
    eprintln!("  ltu-1 Reachable=False {:.1}s after the agent stopped", t.elapsed().as_secs_f64());
    wait_for("sensor Ready on pol-1", Duration::from_secs(120), || {
        let w = workload("sensor");
        let p = placements(&w);
        (!p.is_empty()
            && p.iter().all(|s| s.starts_with("pol-1/"))
            && condition(&w, "Ready").as_deref() == Some("True"))
        .then_some(())
    });
    eprintln!("  sensor Ready on pol-1 {:.1}s after the agent stopped", t.elapsed().as_secs_f64());
    assert!(member_deployment("ltu-1", NS, "sensor").is_some(), "the cut-off member keeps its copy");
    let t = Instant::now();
    let agent = Agent::start(hub_kc);
    wait_placed("sensor", &["ltu-1/edge=2"], Duration::from_secs(180));
    eprintln!("  back on ltu-1/edge=2 and Ready {:.1}s after the agent restarted", t.elapsed().as_secs_f64());
    wait_for("one copy only", Duration::from_secs(90), || {
        let copies: Vec<(&str, i64)> = MEMBERS
            .iter()
            .filter_map(|m| {
                member_deployment(m, NS, "sensor").map(|d| (*m, d["spec"]["replicas"].as_i64().unwrap_or(0)))
            })
            .collect();
        (copies == [("ltu-1", 2)]).then_some(())
    });
    eprintln!("  exactly one copy (ltu-1, 2 replicas); none left in pol-1 or deu-1");
    agent
}

fn cleanup(d: &str) {
    step("cleanup: ltu-1 back to push mode, nothing of this test left behind");
    let _ = kubectl(
        "ltu-1",
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "marshal-member-guard",
            "--ignore-not-found",
        ],
    );
    // Everything `agent rbac` created except the namespace marshal-ltu-1 (push mode uses it too).
    let _ = d;
    for what in ["serviceaccount", "role", "rolebinding"] {
        let _ = kubectl("hub", &["delete", what, "-n", "marshal-ltu-1", "marshal-agent", "--ignore-not-found"]);
    }
    let _ = kubectl("hub", &["delete", "clusterrole,clusterrolebinding", "marshal-agent-ltu-1", "--ignore-not-found"]);
    let secret = std::fs::read_to_string(env("MARSHAL_TB_SECRET_LTU_1")).expect("ltu-1 Secret manifest");
    apply("hub", &secret).expect("restore ltu-1 kubeconfig Secret");
    apply("hub", &repo("examples/baltic/10-member-clusters.yaml")).expect("ltu-1 back to Push");
    apply("hub", &repo("examples/baltic/20-cluster-links.yaml")).expect("links restored");
    let _ = kubectl("hub", &["delete", "secret", "-n", "marshal-system", "marshal-signing-key", "--ignore-not-found"]);
    let mc = get("hub", &["mc", "ltu-1"]).expect("ltu-1");
    assert_eq!(mc["spec"]["connection"]["mode"], "Push");
}

#[test]
fn agent_end_to_end() {
    let (d, hub_kc) = setup();
    rbac_is_exact(&hub_kc);
    step("start the controller (signing) and the agent (its token, its clearance, the hub's public key)");
    let c = ControllerProcess::start(18080, &["--signing-key-secret", SECRET]);
    // Earlier tests leave the exercise's workloads with unsigned Assignments for ltu-1: let the signing
    // controller re-sign them first, so that the agent's refusal counters below count only this test's cases.
    wait_for("every ltu-1 Assignment signed", Duration::from_secs(90), || {
        let list = get("hub", &["asg", "-n", "marshal-ltu-1"])?;
        list["items"]
            .as_array()?
            .iter()
            .filter(|a| a["metadata"]["deletionTimestamp"].is_null())
            .all(|a| !annotation(a, "marshal.dev/signature").is_empty())
            .then_some(())
    });
    let agent = Agent::start(&hub_kc);
    runs_on_ltu(&agent);
    local_clearance_rules();
    let c = tampering_refused(&agent, c);
    guard_rejects();
    rotation(&agent, &d);
    probes();
    let agent = failover(agent, &hub_kc);
    step("delete the workload through the agent");
    kubectl("hub", &["delete", "mw", "-n", NS, "sensor"]).expect("delete");
    wait_for("sensor gone from ltu-1", Duration::from_secs(60), || {
        member_deployment("ltu-1", NS, "sensor").is_none().then_some(())
    });
    agent.stop();
    c.stop();
    for m in MEMBERS {
        let _ = kubectl(m, &["delete", "namespace", NS, "--wait=false", "--ignore-not-found"]);
    }
    let _ = kubectl("hub", &["delete", "namespace", NS, "--wait=false"]);
    cleanup(&d);
}
