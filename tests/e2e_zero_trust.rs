//! End-to-end: zero trust on the local federation (issue 12). Every test is an attack made with the attacker's
//! own credentials — a planner who may create MissionWorkloads, a writer in a hub namespace `marshal-<cluster>`,
//! a pull-mode agent's hub token, a member admin — and asserts in the members themselves that the host's rules
//! held. Run through `e2e/tests/35-zero-trust.sh`; each test restores what it changed.

mod e2e;

use std::time::{Duration, Instant};

use e2e::agent::{Agent, dir, env, marshal};
use e2e::attack::*;
use e2e::fleet::metric;
use e2e::*;
use serde_json::{Value, json};

/// Each test's controller gets its own metrics port.
fn controller(port: u16, extra: &[&str]) -> ControllerProcess {
    ControllerProcess::start(port, extra)
}

fn refusals(c: &ControllerProcess, cluster: &str, reason: &str) -> f64 {
    metric(c, "marshal_assignment_refusals_total", &format!("cluster=\"{cluster}\",reason=\"{reason}\""))
}

/// §1: a planner's pod spec that the host's workload policy (default: restricted) does not allow never runs in
/// the member, whatever the hub signs; the member says which field and why, and the hub reports it.
#[test]
fn host_policy_refuses_what_the_host_does_not_allow() {
    attack(
        "planner: privileged, hostPath /, hostNetwork, hostPID, root with added capabilities, another ServiceAccount, a mounted token",
    );
    prepare(ZT);
    let c = controller(18090, &[]);
    let base = safe_spec("registry.example.mil/deu/app:1");
    let mut variants: Vec<(&str, Value, Vec<&str>)> = Vec::new();
    let mut v = base.clone();
    v["containers"][0]["securityContext"]["privileged"] = json!(true);
    variants.push(("zt-privileged", v, vec!["spec.template.spec.containers[0].securityContext.privileged"]));
    let mut v = base.clone();
    v["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    v["containers"][0]["volumeMounts"] = json!([{"name": "root", "mountPath": "/host"}]);
    variants.push(("zt-hostpath", v, vec!["spec.template.spec.volumes[0].hostPath"]));
    let mut v = base.clone();
    v["hostNetwork"] = json!(true);
    variants.push(("zt-hostnetwork", v, vec!["spec.template.spec.hostNetwork"]));
    let mut v = base.clone();
    v["hostPID"] = json!(true);
    variants.push(("zt-hostpid", v, vec!["spec.template.spec.hostPID"]));
    let mut v = base.clone();
    v["securityContext"] = json!({"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}});
    v["containers"][0]["securityContext"] = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN", "NET_ADMIN"]}});
    variants.push((
        "zt-rootcaps",
        v,
        vec![
            "spec.template.spec.securityContext.runAsUser",
            "spec.template.spec.containers[0].securityContext.capabilities.add",
        ],
    ));
    let mut v = base.clone();
    v["serviceAccountName"] = json!("cluster-operator");
    variants.push(("zt-serviceaccount", v, vec!["spec.template.spec.serviceAccountName"]));
    let mut v = base.clone();
    v["automountServiceAccountToken"] = json!(true);
    variants.push(("zt-token", v, vec!["spec.template.spec.automountServiceAccountToken"]));

    let before = refusals(&c, "deu-1", "HostPolicyViolation");
    for (name, spec, _) in &variants {
        apply_json("hub", &deu_workload(ZT, name, spec.clone())).expect("the API server accepts the template");
    }
    apply_json("hub", &deu_workload(ZT, "zt-good", base.clone())).expect("good workload");
    for (name, _, fields) in &variants {
        let message = wait_phase("deu-1", ZT, name, "Refused", 60);
        for f in fields {
            assert!(message.contains(f), "{name}: the refusal names {f}: {message}");
        }
        assert!(message.contains("host's policy (restricted)"), "{name}: {message}");
        eprintln!("  {name}: Refused: {message}");
        let events = events_about("marshal-deu-1", &format!("{ZT}.{name}"));
        assert!(events.iter().any(|e| e.starts_with("Refused: HostPolicyViolation")), "{name}: Event: {events:?}");
        let w = decided(ZT, name, 30);
        let compliant = condition_message(&w, "Compliant");
        assert!(
            condition(&w, "Compliant").as_deref() == Some("False") && compliant.contains(fields[0]),
            "{name}: {compliant}"
        );
    }
    // Not one of them ever reached the member, and none will.
    for (name, _, _) in &variants {
        never_deployed("deu-1", ZT, name, 1);
    }
    never_deployed("deu-1", ZT, "zt-privileged", 10);
    let counted = refusals(&c, "deu-1", "HostPolicyViolation") - before;
    assert!(counted >= variants.len() as f64, "refusal metric counted {counted}");

    // The policy refuses only what it must: the restricted workload runs, in a namespace Marshal created and
    // labelled so that the member's own API server enforces the level too.
    wait_phase("deu-1", ZT, "zt-good", "Applied", 60);
    wait_for("zt-good Ready in deu-1", Duration::from_secs(60), || {
        member_deployment("deu-1", ZT, "zt-good").filter(|d| d["status"]["readyReplicas"] == 1)
    });
    let ns = get("deu-1", &["namespace", ZT]).expect("namespace in deu-1");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted", "{}", ns["metadata"]);
    assert_eq!(ns["metadata"]["labels"]["marshal.dev/created"], "true", "{}", ns["metadata"]);
    eprintln!("  zt-good runs; namespace {ZT} in deu-1 enforces restricted");
    // The member's own API server now refuses a privileged pod in that namespace as well (defence in depth).
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "direct", "namespace": ZT},
                     "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}});
    let err = apply_json("deu-1", &pod).expect_err("privileged pod admitted in a Marshal namespace");
    assert!(err.contains("violates PodSecurity"), "{err}");
    clean_namespace(ZT);
    c.stop();
}

/// §1: Marshal uses only namespaces it created itself in a member (or that the host lists); a planner cannot
/// reach into `default` or a namespace the member admin made for something else.
#[test]
fn host_policy_only_marshals_own_namespaces() {
    attack("planner: workloads in member namespaces Marshal did not create (default, ops)");
    prepare("ops");
    let _ = kubectl("hub", &["create", "namespace", "default"]);
    let _ = kubectl("deu-1", &["create", "namespace", "ops"]);
    let c = controller(18091, &[]);
    let spec = safe_spec("registry.example.mil/deu/app:1");
    apply_json("hub", &deu_workload("ops", "zt-ops", spec.clone())).expect("ops workload");
    apply_json("hub", &deu_workload("default", "zt-default", spec)).expect("default workload");
    for (ns, name) in [("ops", "zt-ops"), ("default", "zt-default")] {
        let message = wait_phase("deu-1", ns, name, "Refused", 60);
        assert!(
            message.starts_with("HostPolicyViolation") && message.contains(&format!("namespace {ns}")),
            "{message}"
        );
        assert!(message.contains("Marshal did not create"), "{message}");
        eprintln!("  {ns}/{name}: Refused: {message}");
    }
    never_deployed("deu-1", "ops", "zt-ops", 5);
    never_deployed("deu-1", "default", "zt-default", 1);
    let ops = get("deu-1", &["namespace", "ops"]).expect("ops");
    assert!(ops["metadata"]["labels"]["marshal.dev/created"].is_null(), "ops was not marked: {}", ops["metadata"]);
    let _ = kubectl("hub", &["delete", "mw", "-n", "default", "zt-default", "--wait=false"]);
    clean_namespace("ops");
    c.stop();
}

/// §1: the member guard applies the host's rules to the syncer's own identity, labels or not.
#[test]
fn member_guard_checks_the_syncers_identity() {
    attack("the syncer's identity (user marshal) writes Deployments directly, with and without Marshal's labels");
    let host = "nation: DEU\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
                categories: [{tagName: Releasable To, values: [DEU, NATO]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n";
    let file = format!("{}/deu-host.yaml", dir());
    std::fs::write(&file, host).expect("host file");
    let guard = marshal(&["agent", "guard", "--cluster", "deu-1", "--clearance", &file, "--syncer-user", "marshal"])
        .expect("guard with the syncer's identity");
    let _ = kubectl("deu-1", &["create", "namespace", "marshal-system"]);
    apply("deu-1", &guard).expect("install guard");
    // A namespace as Marshal creates it (one left by an earlier run may still be terminating).
    wait_for("namespace zt-guard usable", Duration::from_secs(60), || match get("deu-1", &["namespace", "zt-guard"]) {
        Some(ns) if ns["status"]["phase"] == "Terminating" => None,
        Some(_) => Some(()),
        None => kubectl("deu-1", &["create", "namespace", "zt-guard"]).ok().map(|_| ()),
    });
    kubectl("deu-1", &["label", "namespace", "zt-guard", "marshal.dev/created=true", "--overwrite"]).expect("label");
    let digest = format!("sha256:{}", "b".repeat(64));
    let deployment = |name: &str, ns: &str, labelled: bool, spec: Value| {
        let mut labels = json!({"app": name});
        let mut annotations = json!({});
        if labelled {
            labels["app.kubernetes.io/managed-by"] = json!("marshal");
            labels["marshal.dev/classification"] = json!("RESTRICTED");
            annotations["marshal.dev/digest"] = json!(digest);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
    };
    // A server-side dry run is a full admission request every time (an apply of an unchanged object sends none).
    let as_syncer = |d: &Value| {
        kubectl_stdin("deu-1", &["create", "--dry-run=server", "--as", "marshal", "-f", "-"], Some(&d.to_string()))
    };
    let mut privileged = safe_spec("registry.example.mil/deu/app:1");
    // (The API server itself refuses allowPrivilegeEscalation: false together with privileged: true.)
    privileged["containers"][0]["securityContext"] = json!({"privileged": true, "capabilities": {"drop": ["ALL"]}});
    let err = wait_for("unlabelled privileged Deployment denied", Duration::from_secs(30), || {
        as_syncer(&deployment("g-unlabelled", "zt-guard", false, privileged.clone())).err()
    });
    // Without Marshal's labels it is still evaluated: the syncer's identity wrote it (the first failing rule speaks).
    assert!(err.contains("ValidatingAdmissionPolicy 'marshal-member-guard'"), "{err}");
    eprintln!("  unlabelled, privileged: {}", err.trim());
    let err =
        as_syncer(&deployment("g-labelled", "zt-guard", true, privileged.clone())).expect_err("labelled privileged");
    assert!(err.contains("marshal-member-guard") && err.contains("privileged"), "{err}");
    let mut host_path = safe_spec("registry.example.mil/deu/app:1");
    host_path["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    let err = as_syncer(&deployment("g-hostpath", "zt-guard", true, host_path)).expect_err("hostPath admitted");
    assert!(err.contains("hostPath"), "{err}");
    let err = as_syncer(&deployment("g-default", "default", true, safe_spec("x"))).expect_err("default namespace");
    assert!(err.contains("not created by Marshal"), "{err}");
    // What the host allows passes: a restricted pod in a Marshal namespace; and the member admin is not the syncer.
    as_syncer(&deployment("g-ok", "zt-guard", true, safe_spec("registry.example.mil/deu/app:1"))).expect("restricted");
    let admin = kubectl_stdin(
        "deu-1",
        &["create", "--dry-run=server", "-f", "-"],
        Some(&deployment("g-admin", "zt-guard", false, privileged).to_string()),
    );
    admin.expect("the admin's own Deployment");
    eprintln!("  restricted Deployment by the syncer and the admin's own Deployment admitted");
    let _ = kubectl(
        "deu-1",
        &["delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "marshal-member-guard"],
    );
    let _ = kubectl("deu-1", &["delete", "namespace", "zt-guard", "--wait=false"]);
}

/// §2: the agent's hub identity may report status only.
#[test]
fn agent_identity_is_status_only() {
    attack("agent token: patch an Assignment's spec (transplant it to another cluster)");
    prepare(ZT);
    let hub_kc = pull_ltu(&ltu_host(""));
    let can = |verb: &str, res: &str, sub: Option<&str>| {
        let mut args = vec!["auth", "can-i", verb, res, "-n", "marshal-ltu-1", "--as", e2e::agent::AGENT_USER];
        let flag = sub.map(|s| format!("--subresource={s}"));
        args.extend(flag.as_deref());
        // `can-i` prints yes or no (and exits 1 on no).
        let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig("hub")).args(&args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes").unwrap_or(false)
    };
    let as_agent = |verb: &str, res: &str| can(verb, res, None);
    assert!(can("patch", "assignments", Some("status")), "status patch");
    assert!(can("get", "assignments", None) && can("watch", "assignments", None), "read");
    for (verb, res) in
        [("patch", "assignments"), ("update", "assignments"), ("create", "assignments"), ("delete", "assignments")]
    {
        assert!(!as_agent(verb, res), "the agent may {verb} {res}");
    }
    // A real write with its token.
    let forged = json!({"apiVersion": "marshal.dev/v1alpha1", "kind": "Assignment",
        "metadata": {"name": format!("{ZT}.x"), "namespace": "marshal-ltu-1"},
        "spec": {"cluster": "pol-1", "workload": {"namespace": ZT, "name": "x", "uid": "u"}, "owner": "DEU",
                 "confidentiality": {"policy": "NATO", "classification": "RESTRICTED"}, "tier": "core", "replicas": 1,
                 "template": {"spec": safe_spec("x")}, "digest": format!("sha256:{}", "0".repeat(64))}});
    let err = kubectl_as_stdin(&hub_kc, &["create", "-f", "-"], &forged.to_string())
        .expect_err("agent created an Assignment");
    assert!(err.contains("forbidden"), "{err}");
    eprintln!("  the agent may patch assignments/status only; create: {}", err.trim());
    push_ltu();
    clean_namespace(ZT);
}

/// §2: a writer in a hub namespace forges Assignments: a transplant claiming another cluster with a Refused
/// status, a copy under another name, an Assignment for a workload that does not exist. The controller ignores
/// the first two (metric, Event) and deletes what has no live workload; the real placement is untouched.
#[test]
fn forged_assignments_are_ignored_and_orphans_removed() {
    attack("hub-namespace writer: transplanted, renamed and orphan Assignments");
    prepare(ZT);
    let c = controller(18092, &[]);
    apply_json("hub", &deu_workload(ZT, "zt-real", safe_spec("registry.example.mil/deu/app:1"))).expect("workload");
    wait_for("zt-real Ready in deu-1", Duration::from_secs(90), || {
        member_deployment("deu-1", ZT, "zt-real").filter(|d| d["status"]["readyReplicas"] == 1)
    });
    let real = assignment("deu-1", ZT, "zt-real").expect("real Assignment");
    let deployment_uid = member_deployment("deu-1", ZT, "zt-real").expect("Deployment")["metadata"]["uid"].clone();
    let ltu_writer = namespace_writer("ltu-1");
    let deu_writer = namespace_writer("deu-1");
    let copy = |ns: &str, name: &str| {
        let mut a = json!({"apiVersion": "marshal.dev/v1alpha1", "kind": "Assignment",
                           "metadata": {"name": name, "namespace": ns, "annotations": real["metadata"]["annotations"].clone(),
                                        "labels": real["metadata"]["labels"].clone()},
                           "spec": real["spec"].clone()});
        a["metadata"]["annotations"]
            .as_object_mut()
            .map(|m| m.remove("kubectl.kubernetes.io/last-applied-configuration"));
        a
    };
    // 1. Transplant: in marshal-ltu-1, claiming cluster deu-1, then a forged refusal.
    let transplant = copy("marshal-ltu-1", &format!("{ZT}.zt-real"));
    kubectl_as_stdin(&ltu_writer, &["create", "-f", "-"], &transplant.to_string()).expect("writer creates");
    let status = json!({"status": {"phase": "Refused", "message": "ClassificationNotCleared: forged by the writer"}});
    as_user(
        &ltu_writer,
        &[
            "patch",
            "asg",
            "-n",
            "marshal-ltu-1",
            &format!("{ZT}.zt-real"),
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    )
    .expect("writer forges the status");
    // 2. A copy of the real, signed one under another name, and 3. one for a workload that does not exist.
    let renamed = copy("marshal-deu-1", &format!("{ZT}.zt-real-copy"));
    kubectl_as_stdin(&deu_writer, &["create", "-f", "-"], &renamed.to_string()).expect("renamed copy");
    let mut ghost = copy("marshal-deu-1", &format!("{ZT}.zt-ghost"));
    ghost["spec"]["workload"] =
        json!({"namespace": ZT, "name": "zt-ghost", "uid": "00000000-0000-0000-0000-000000000000"});
    kubectl_as_stdin(&deu_writer, &["create", "-f", "-"], &ghost.to_string()).expect("ghost");

    wait_for("the orphan and the foreign Assignments deleted", Duration::from_secs(60), || {
        (assignment("deu-1", ZT, "zt-ghost").is_none()
            && assignment("deu-1", ZT, "zt-real-copy").is_none()
            && assignment("ltu-1", ZT, "zt-real").is_none())
        .then_some(())
    });
    let ignored = metric(&c, "marshal_assignments_ignored_total", "");
    assert!(ignored >= 2.0, "marshal_assignments_ignored_total {ignored}");
    let orphans = metric(&c, "marshal_assignments_orphaned_total", "");
    assert!(orphans >= 1.0, "marshal_assignments_orphaned_total {orphans}");
    // The real placement was never revoked: same Deployment, still Ready, workload still Compliant.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        let d = member_deployment("deu-1", ZT, "zt-real").expect("the real Deployment was removed");
        assert_eq!(d["metadata"]["uid"], deployment_uid, "replaced");
        std::thread::sleep(Duration::from_millis(500));
    }
    let w = decided(ZT, "zt-real", 10);
    assert_eq!(placements(&w), ["deu-1/core=1"], "{}", w["status"]);
    assert_ne!(condition(&w, "Compliant").as_deref(), Some("False"), "{}", condition_message(&w, "Compliant"));
    eprintln!("  transplant and copy ignored ({ignored} counted), ghost deleted ({orphans}); zt-real untouched");
    clean_namespace(ZT);
    c.stop();
    remove_namespace_writer("ltu-1");
    remove_namespace_writer("deu-1");
}

/// The host configuration of ltu-1 for the pull-mode tests; `extra` is appended (e.g. pinned probes).
fn ltu_host(extra: &str) -> String {
    let policy =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/baltic/00-security-policy.yaml"))
            .expect("policy");
    let spec: Value = serde_yaml::from_str::<Value>(&policy).expect("policy yaml")["spec"].clone();
    format!(
        "nation: LTU\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
         categories: [{{tagName: Releasable To, values: [LTU, NATO]}}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n\
         policies:\n- {}\n{extra}",
        spec
    )
}

fn ltu_workload(image: &str) -> Value {
    workload_json(ZT, "zt-sensor", "LTU", &["LTU"], safe_spec(image))
}

fn ltu_image() -> Option<String> {
    let d = member_deployment("ltu-1", ZT, "zt-sensor")?;
    d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().map(String::from)
}

/// §2: a writer in `marshal-ltu-1` puts back a saved, validly signed Assignment: an older version of a live
/// workload, then the last version of a deleted one. The agent refuses both; nothing old runs again.
#[test]
fn replayed_assignments_are_refused() {
    attack("hub-namespace writer: replay an older signed version, and a deleted workload's Assignment");
    prepare(ZT);
    let hub_kc = pull_ltu(&ltu_host(""));
    let writer = namespace_writer("ltu-1");
    let c = controller(18093, &["--signing-key-secret", SIGNING_SECRET]);
    let agent = Agent::start(&hub_kc);
    apply_json("hub", &ltu_workload("registry.example.mil/ltu/sensor:1")).expect("v1");
    wait_for("v1 runs in ltu-1", Duration::from_secs(90), || {
        (ltu_image()? == "registry.example.mil/ltu/sensor:1").then_some(())
    });
    let v1 = assignment("ltu-1", ZT, "zt-sensor").expect("v1 Assignment");
    apply_json("hub", &ltu_workload("registry.example.mil/ltu/sensor:2")).expect("v2");
    wait_for("v2 runs in ltu-1", Duration::from_secs(60), || {
        (ltu_image()? == "registry.example.mil/ltu/sensor:2").then_some(())
    });
    let v2 = assignment("ltu-1", ZT, "zt-sensor").expect("v2 Assignment");
    // The controller would restore its Assignment at once: the writer acts while it is down.
    c.stop();
    let saved = |a: &Value| {
        json!({"apiVersion": "marshal.dev/v1alpha1", "kind": "Assignment",
               "metadata": {"name": a["metadata"]["name"], "namespace": "marshal-ltu-1",
                            "annotations": {"marshal.dev/signature": a["metadata"]["annotations"]["marshal.dev/signature"],
                                            "marshal.dev/signature-key": a["metadata"]["annotations"]["marshal.dev/signature-key"]},
                            "labels": a["metadata"]["labels"]},
               "spec": a["spec"]})
    };
    kubectl_as_stdin(
        &writer,
        &["apply", "--server-side", "--force-conflicts", "--field-manager=attacker", "-f", "-"],
        &saved(&v1).to_string(),
    )
    .expect("writer puts v1 back");
    let message = wait_phase("ltu-1", ZT, "zt-sensor", "Refused", 30);
    assert!(message.starts_with("StaleSequence"), "{message}");
    eprintln!("  older version: Refused: {message}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        assert_eq!(ltu_image().as_deref(), Some("registry.example.mil/ltu/sensor:2"), "the old version ran again");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The controller comes back, restores v2 (with a newer sequence); then the workload is deleted.
    let c = controller(18093, &["--signing-key-secret", SIGNING_SECRET]);
    wait_phase("ltu-1", ZT, "zt-sensor", "Applied", 60);
    let last = assignment("ltu-1", ZT, "zt-sensor").expect("restored");
    assert!(last["spec"]["sequence"].as_u64() > v2["spec"]["sequence"].as_u64(), "a newer sequence: {}", last["spec"]);
    kubectl("hub", &["delete", "mw", "-n", ZT, "zt-sensor"]).expect("delete");
    wait_for("zt-sensor gone from ltu-1", Duration::from_secs(60), || {
        member_deployment("ltu-1", ZT, "zt-sensor").is_none().then_some(())
    });
    c.stop();
    kubectl_as_stdin(&writer, &["create", "-f", "-"], &saved(&last).to_string())
        .expect("writer re-creates the deleted workload's Assignment");
    let message = wait_phase("ltu-1", ZT, "zt-sensor", "Refused", 30);
    assert!(message.starts_with("StaleSequence") && message.contains("removed"), "{message}");
    eprintln!("  deleted workload: Refused: {message}");
    never_deployed("ltu-1", ZT, "zt-sensor", 10);
    // The controller deletes the orphan; the member still holds nothing.
    let c = controller(18093, &["--signing-key-secret", SIGNING_SECRET]);
    wait_for("orphan deleted", Duration::from_secs(60), || {
        assignment("ltu-1", ZT, "zt-sensor").is_none().then_some(())
    });
    never_deployed("ltu-1", ZT, "zt-sensor", 3);
    clean_namespace(ZT);
    agent.stop();
    c.stop();
    remove_namespace_writer("ltu-1");
    push_ltu();
}

/// §2: an Assignment past its `notAfter` is not applied: a Deployment the member admin deleted is not re-created
/// from it. Nothing that runs is removed because of it, not even when the agent restarts; once the controller
/// renews the instruction, the member applies it again.
#[test]
fn expired_assignments_are_not_applied() {
    attack("time: instructions past their notAfter");
    prepare(ZT);
    let hub_kc = pull_ltu(&ltu_host(""));
    let c = controller(18094, &["--signing-key-secret", SIGNING_SECRET, "--assignment-validity", "20"]);
    let agent = Agent::start(&hub_kc);
    apply_json("hub", &ltu_workload("registry.example.mil/ltu/sensor:1")).expect("workload");
    let mut other = workload_json(ZT, "zt-other", "LTU", &["LTU"], safe_spec("registry.example.mil/ltu/other:1"));
    other["spec"]["placement"]["tiers"] = json!(["edge"]);
    apply_json("hub", &other).expect("second workload");
    for name in ["zt-sensor", "zt-other"] {
        wait_for(&format!("{name} runs in ltu-1"), Duration::from_secs(90), || member_deployment("ltu-1", ZT, name));
    }
    let a = assignment("ltu-1", ZT, "zt-sensor").expect("Assignment");
    let not_after: jiff::Timestamp = a["spec"]["notAfter"].as_str().expect("notAfter").parse().expect("time");
    c.stop();
    let expired = wait_for_opt(Duration::from_secs(40), || (jiff::Timestamp::now() > not_after).then_some(()));
    assert!(expired.is_some(), "notAfter {not_after} is more than 40 s away with --assignment-validity 20");
    // The member admin deletes one Deployment: the syncer would re-create it, but not from an expired instruction.
    kubectl("ltu-1", &["delete", "deployment", "-n", ZT, "zt-sensor"]).expect("admin deletes");
    let message = wait_phase("ltu-1", ZT, "zt-sensor", "Refused", 60);
    assert!(message.starts_with("Expired"), "{message}");
    never_deployed("ltu-1", ZT, "zt-sensor", 5);
    // A restart of the agent (a full re-check of everything) removes nothing that runs.
    agent.stop();
    let agent = Agent::start(&hub_kc);
    std::thread::sleep(Duration::from_secs(8));
    assert!(member_deployment("ltu-1", ZT, "zt-other").is_some(), "an expired instruction removed what ran");
    never_deployed("ltu-1", ZT, "zt-sensor", 1);
    eprintln!("  Refused: {message}; zt-other still runs after an agent restart");
    let c = controller(18094, &["--signing-key-secret", SIGNING_SECRET, "--assignment-validity", "20"]);
    wait_for("renewed and re-created", Duration::from_secs(60), || member_deployment("ltu-1", ZT, "zt-sensor"));
    clean_namespace(ZT);
    agent.stop();
    c.stop();
    push_ltu();
}

/// §3: Secrets never reach status, Events or logs, even when a MemberCluster points at the signing key or at a
/// broken kubeconfig holding a token.
#[test]
fn secrets_never_leak() {
    attack("MemberCluster writer: kubeconfigSecretRef at the signing key; a broken kubeconfig with a token");
    prepare(ZT);
    let d = dir();
    let secret = marshal(&["keygen", "--public-out", &format!("{d}/key-leak.pub")]).expect("keygen");
    apply("hub", &secret).expect("signing Secret");
    let seed = secret
        .lines()
        .find_map(|l| l.trim().strip_prefix("signing-key: "))
        .expect("private key line")
        .trim()
        .to_string();
    let seed_b64 = seed.trim_start_matches("ed25519-private:").to_string();
    let token = "zt-token-9f3a1c4e8b7d6a5f4e3d2c1b0a9f8e7d";
    let broken = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\n   bad-indent: [\nclusters: []\n"
    );
    let broken_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "zz-2-kubeconfig", "namespace": "marshal-system", "labels": {"marshal.dev/kubeconfig": "true"}},
        "stringData": {"kubeconfig": broken}});
    apply_json("hub", &broken_secret).expect("broken Secret");
    let member = |name: &str, secret: &str, key: &str| {
        json!({"apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name},
               "spec": {"nation": "FRA", "connection": {"mode": "Push",
                        "kubeconfigSecretRef": {"namespace": "marshal-system", "name": secret, "key": key}},
                        "clearance": {"policy": "NATO", "classifications": ["UNCLASSIFIED"], "reviewBy": "2099-01-01T00:00:00Z"},
                        "admission": {"ownerNations": ["*"]}, "tiers": ["core"]}})
    };
    apply_json("hub", &member("zz-1", "marshal-signing-key", "signing-key")).expect("zz-1");
    apply_json("hub", &member("zz-2", "zz-2-kubeconfig", "kubeconfig")).expect("zz-2");
    let c = controller(18095, &["--signing-key-secret", SIGNING_SECRET]);
    let credentials = |name: &str| {
        wait_for(&format!("{name} CredentialsValid=False"), Duration::from_secs(60), || {
            let mc = get("hub", &["mc", name])?;
            (condition(&mc, "CredentialsValid").as_deref() == Some("False"))
                .then(|| condition_message(&mc, "CredentialsValid"))
        })
    };
    let m1 = credentials("zz-1");
    assert!(m1.contains("signing key"), "{m1}");
    let m2 = credentials("zz-2");
    assert!(m2.contains("line ") && m2.contains("column "), "{m2}");
    eprintln!("  zz-1: {m1}\n  zz-2: {m2}");
    std::thread::sleep(Duration::from_secs(3));
    let statuses = kubectl("hub", &["get", "mc", "-o", "json"]).expect("mc");
    let events = kubectl("hub", &["get", "events", "-A", "-o", "json"]).expect("events");
    let log = std::fs::read_to_string(format!("{}/marshal-controller.log", e2e::agent::state())).unwrap_or_default();
    for (what, text) in [("MemberCluster status", &statuses), ("Events", &events), ("controller log", &log)] {
        for (secret_name, needle) in [("the signing seed", &seed_b64), ("the token", &token.to_string())] {
            assert!(!text.contains(needle.as_str()), "{what} contains {secret_name}");
            assert!(!text.contains(&needle[..24]), "{what} contains a prefix of {secret_name}");
        }
    }
    eprintln!(
        "  no seed and no token in {} bytes of status, Events and log",
        statuses.len() + events.len() + log.len()
    );
    let _ = kubectl("hub", &["delete", "mc", "zz-1", "zz-2", "--wait=false"]);
    let _ = kubectl(
        "hub",
        &["delete", "secret", "-n", "marshal-system", "zz-2-kubeconfig", "marshal-signing-key", "--ignore-not-found"],
    );
    clean_namespace(ZT);
    c.stop();
}

/// §4: objects the API server accepts but a strict reader cannot parse (times beyond the time library's range)
/// cannot stall the hub: written with the agent's token, then the controller restarts and decides the rest.
#[test]
fn one_bad_object_cannot_stall_the_hub() {
    attack("agent token: a heartbeat Lease and a MemberCluster status with times at 9999-12-31T23:59:59");
    prepare(ZT);
    let hub_kc = pull_ltu(&ltu_host(""));
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "heartbeat", "namespace": "marshal-ltu-1", "labels": {"marshal.dev/heartbeat": "true", "marshal.dev/cluster": "ltu-1"}},
                       "spec": {"holderIdentity": "agent/ltu-1", "leaseDurationSeconds": 15, "renewTime": "9999-12-31T23:59:59.999999Z"}});
    kubectl_as_stdin(
        &hub_kc,
        &["apply", "--server-side", "--field-manager=marshal-syncer", "--force-conflicts", "-f", "-"],
        &lease.to_string(),
    )
    .expect("agent writes the Lease");
    let status = json!({"status": {"observedAt": "9999-12-31T23:59:59Z", "lastHeartbeatTime": "9999-12-31T23:59:59Z"}});
    as_user(&hub_kc, &["patch", "mc", "ltu-1", "--subresource=status", "--type=merge", "-p", &status.to_string()])
        .expect("agent writes its MemberCluster status");
    // Whatever happens here, later tests must not find these objects (a controller that cannot read them stalls).
    let _repair = OnDrop(|| {
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let fix = json!({"status": {"observedAt": now, "lastHeartbeatTime": now}});
        let _ =
            kubectl("hub", &["patch", "mc", "ltu-1", "--subresource=status", "--type=merge", "-p", &fix.to_string()]);
        let _ = kubectl("hub", &["delete", "lease", "-n", "marshal-ltu-1", "heartbeat", "--ignore-not-found"]);
    });
    let c = controller(18096, &[]);
    apply_json("hub", &deu_workload(ZT, "zt-after", safe_spec("registry.example.mil/deu/app:1"))).expect("workload");
    let w = decided(ZT, "zt-after", 90);
    assert_eq!(placements(&w), ["deu-1/core=1"], "{}", w["status"]);
    wait_for("zt-after Ready in deu-1", Duration::from_secs(60), || {
        member_deployment("deu-1", ZT, "zt-after").filter(|d| d["status"]["readyReplicas"] == 1)
    });
    // The far-future heartbeat keeps nothing alive: ltu-1 (no agent runs) is unreachable.
    wait_for("ltu-1 Reachable=False", Duration::from_secs(40), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("False")).then_some(())
    });
    eprintln!("  decided and placed zt-after; ltu-1 unreachable despite its year-9999 heartbeat");
    clean_namespace(ZT);
    c.stop();
    push_ltu();
}

/// §5: the member judges with its own policies, nation and residency, never the hub's copies.
#[test]
fn the_member_never_borrows_trust() {
    attack("hub: a retyped policy, a member without local policies or nation, a residency the hub got wrong");
    prepare(ZT);
    let c = controller(18097, &[]);
    let policy_text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/baltic/00-security-policy.yaml"))
            .expect("policy");
    let own_policy: Value = serde_yaml::from_str::<Value>(&policy_text).expect("yaml")["spec"].clone();
    let clearance = "clearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
                     categories: [{tagName: Releasable To, values: [DEU, NATO]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n";
    // 1. A host configuration without policies: a label under a policy the member does not hold is refused.
    host_configmap("deu-1", &format!("nation: DEU\n{clearance}"));
    apply_json("hub", &deu_workload(ZT, "zt-nopolicy", safe_spec("registry.example.mil/deu/app:1"))).expect("w");
    let m = wait_phase("deu-1", ZT, "zt-nopolicy", "Refused", 60);
    assert!(m.starts_with("PolicyNotHeld"), "{m}");
    eprintln!("  no local policy: {m}");
    // 2. Without a nation the host configuration is invalid: the member never takes the hub's.
    host_configmap("deu-1", &format!("{clearance}policies:\n- {own_policy}\n"));
    let m = wait_phase("deu-1", ZT, "zt-nopolicy", "Refused", 60);
    let m = if m.starts_with("PolicyNotHeld") {
        wait_for("MemberClearanceInvalid", Duration::from_secs(60), || {
            assignment("deu-1", ZT, "zt-nopolicy")
                .and_then(|a| a["status"]["message"].as_str().map(String::from))
                .filter(|m| m.starts_with("MemberClearanceInvalid"))
        })
    } else {
        m
    };
    assert!(m.starts_with("MemberClearanceInvalid") && m.contains("nation"), "{m}");
    eprintln!("  no nation: {m}");
    // 3. The hub retypes Releasable To as Informative: the hub would place a POL-only label on deu-1, the
    //    member's own policy still says Permissive.
    host_configmap("deu-1", &format!("nation: DEU\n{clearance}policies:\n- {own_policy}\n"));
    let mut retyped: Value = serde_yaml::from_str(&policy_text).expect("yaml");
    for cat in retyped["spec"]["categories"].as_array_mut().expect("categories") {
        if cat["tagName"] == "Releasable To" {
            cat["type"] = json!("Informative");
        }
    }
    apply_json("hub", &retyped).expect("retype");
    // A POL-only label, selected onto deu-1 (region central): with Informative the hub sees no obstacle there.
    let mut polonly = workload_json(ZT, "zt-polonly", "POL", &["POL"], safe_spec("registry.example.mil/pol/app:1"));
    polonly["spec"]["placement"]["clusterSelector"] = json!({"matchLabels": {"marshal.dev/region": "central"}});
    apply_json("hub", &polonly).expect("POL-only workload");
    let m = wait_phase("deu-1", ZT, "zt-polonly", "Refused", 60);
    assert!(m.starts_with("NotReleasable"), "{m}");
    never_deployed("deu-1", ZT, "zt-polonly", 3);
    eprintln!("  retyped hub policy: deu-1 refused: {m}");
    apply("hub", &policy_text).expect("restore the policy");
    // 4. Residency: the host says it is AUT; the hub thinks DEU and places a DEU-resident workload there.
    host_configmap(
        "deu-1",
        &format!("nation: AUT\n{}policies:\n- {own_policy}\n", clearance.replace("[DEU, NATO]", "[AUT, DEU, NATO]")),
    );
    let mut resident = deu_workload(ZT, "zt-resident", safe_spec("registry.example.mil/deu/app:1"));
    resident["spec"]["residency"] = json!(["DEU"]);
    apply_json("hub", &resident).expect("resident workload");
    let m = wait_phase("deu-1", ZT, "zt-resident", "Refused", 60);
    assert!(m.starts_with("ResidencyViolation") && m.contains("AUT"), "{m}");
    never_deployed("deu-1", ZT, "zt-resident", 3);
    eprintln!("  residency: {m}");
    // 5. The member demands signatures: the hub's unsigned Assignments are refused.
    let d = dir();
    let _ = marshal(&["keygen", "--public-out", &format!("{d}/key-demand.pub")]).expect("keygen");
    let key = std::fs::read_to_string(format!("{d}/key-demand.pub")).expect("pub");
    host_configmap(
        "deu-1",
        &format!(
            "nation: DEU\n{clearance}policies:\n- {own_policy}\nsignatures:\n  required: true\n  trustedKeys: [\"{}\"]\n",
            key.trim()
        ),
    );
    apply_json("hub", &deu_workload(ZT, "zt-unsigned", safe_spec("registry.example.mil/deu/app:1"))).expect("w");
    let m = wait_phase("deu-1", ZT, "zt-unsigned", "Refused", 60);
    assert!(m.starts_with("Unsigned"), "{m}");
    eprintln!("  signatures demanded: {m}");
    remove_host_configmap("deu-1");
    clean_namespace(ZT);
    c.stop();
}

/// §5: reachability is judged on the hub's clock: a heartbeat stamped ten minutes ahead by a member whose clock
/// runs fast keeps nothing alive once it stops changing.
#[test]
fn reachability_is_judged_on_the_hubs_clock() {
    attack("agent token: a heartbeat renewTime ten minutes in the future, then silence");
    prepare(ZT);
    let hub_kc = pull_ltu(&ltu_host(""));
    let c = controller(18098, &[]);
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "heartbeat", "namespace": "marshal-ltu-1", "labels": {"marshal.dev/heartbeat": "true", "marshal.dev/cluster": "ltu-1"}},
                       "spec": {"holderIdentity": "agent/ltu-1", "leaseDurationSeconds": 15,
                                "renewTime": future.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
    kubectl_as_stdin(
        &hub_kc,
        &["apply", "--server-side", "--field-manager=marshal-syncer", "--force-conflicts", "-f", "-"],
        &lease.to_string(),
    )
    .expect("agent writes the Lease");
    let written = Instant::now();
    // The write is a heartbeat (the agent is alive when it writes): Reachable first ...
    wait_for("ltu-1 Reachable=True", Duration::from_secs(20), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("True")).then_some(())
    });
    // ... and then, with nothing more written, unreachable after the grace period (15 s), not ten minutes.
    wait_for("ltu-1 Reachable=False", Duration::from_secs(45), || {
        (condition(&get("hub", &["mc", "ltu-1"])?, "Reachable").as_deref() == Some("False")).then_some(())
    });
    let after = written.elapsed().as_secs_f64();
    assert!(after < 30.0, "Reachable=False only {after:.1} s after the last heartbeat");
    eprintln!("  Reachable=False {after:.1} s after the last (future-dated) heartbeat (grace 15 s)");
    clean_namespace(ZT);
    c.stop();
    push_ltu();
}

/// §5: link facts stamped in the future are not fresher than the hub's clock: once the monitor stops, they go
/// stale after `staleAfterSeconds` and the work moves to the data.
#[test]
fn future_link_facts_go_stale_on_the_hubs_clock() {
    attack("link reporter: observedAt ten minutes ahead, then silence");
    prepare(ZT);
    let c = controller(18099, &[]);
    let mon = e2e::fleet::LinkMonitor::start();
    let mut w = workload_json(ZT, "zt-link", "LTU", &["LTU", "POL"], safe_spec("registry.example.mil/ltu/fusion:1"));
    w["spec"]["placement"] = json!({"tiers": ["core", "edge"], "preferredNations": ["POL", "LTU"],
                                    "dataSource": {"cluster": "ltu-1", "maxRttMs": 50, "minBandwidthMbps": 20}});
    apply_json("hub", &w).expect("workload");
    wait_for("zt-link on pol-1/core", Duration::from_secs(90), || {
        (placements(&decided(ZT, "zt-link", 30)) == ["pol-1/core=1"]).then_some(())
    });
    mon.pause("ltu-1.pol-1");
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600);
    e2e::fleet::report_link(
        "ltu-1.pol-1",
        e2e::fleet::LinkFacts { state: "Up", rtt_ms: 12, bandwidth_mbps: 100 },
        future,
    );
    let stale_after =
        get("hub", &["clink", "ltu-1.pol-1"]).expect("link")["spec"]["staleAfterSeconds"].as_u64().unwrap_or(60);
    let t0 = Instant::now();
    wait_for("zt-link moves to ltu-1", Duration::from_secs(stale_after + 60), || {
        (placements(&decided(ZT, "zt-link", 30)) == ["ltu-1/edge=1"]).then_some(())
    });
    eprintln!(
        "  moved {:.1} s after the future-dated report (staleAfterSeconds {stale_after}, toleration 10 s)",
        t0.elapsed().as_secs_f64()
    );
    drop(mon);
    clean_namespace(ZT);
    c.stop();
}

/// §5: the agent dials only the probe addresses its host pinned; an address written by the hub is refused.
#[test]
fn probe_targets_are_pinned_by_the_host() {
    attack("hub: point ltu-1's link probes at an address the host did not pin");
    prepare(ZT);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let decoy = listener.local_addr().expect("addr").to_string();
    listener.set_nonblocking(true).expect("nonblocking");
    let pinned = env("MARSHAL_TB_PROXY_POL_1");
    let hub_kc = pull_ltu(&ltu_host(&format!("probes:\n  ltu-1.pol-1: \"{pinned}\"\n")));
    for link in ["ltu-1.pol-1", "ltu-1.deu-1"] {
        let p = json!({"spec": {"probe": {"address": decoy}}});
        kubectl("hub", &["patch", "clink", link, "--type=merge", "-p", &p.to_string()]).expect("probe address");
    }
    let agent = Agent::start(&hub_kc);
    let mut dialled = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        while listener.accept().is_ok() {
            dialled += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dialled, 0, "the agent dialled the hub's address {dialled} times");
    let metrics = agent.metrics().unwrap_or_default();
    assert!(metrics.lines().any(|l| l.starts_with("marshal_probe_refusals_total") && !l.ends_with(" 0")), "{metrics}");
    eprintln!("  hub-written address {decoy} never dialled; refusals counted");
    clean_namespace(ZT);
    agent.stop();
    push_ltu();
}

/// §5: the agent serves its metrics on loopback unless told otherwise.
#[test]
fn agent_metrics_bind_loopback_by_default() {
    attack("network: the agent's /metrics reachable from every interface");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_marshal")).args(["agent", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help.lines().skip_while(|l| !l.contains("--metrics-addr")).take(4).collect::<Vec<_>>().join(" ");
    assert!(line.contains("[default: 127.0.0.1:8081]"), "{line}");
    eprintln!("  {}", line.split_whitespace().collect::<Vec<_>>().join(" "));
}
