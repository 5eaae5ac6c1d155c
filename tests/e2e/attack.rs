//! The attackers of the zero-trust tests (`tests/e2e_zero_trust.rs`), with their own credentials: a planner who
//! may create MissionWorkloads, a writer in a hub namespace `marshal-<cluster>`, a pull-mode agent with its own
//! hub token, and a member admin. Plus the fixtures they work on: a pod spec that the default host workload
//! policy (restricted) admits, and variants that it must refuse.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::agent::{dir, env, kubectl_as, marshal};
use super::fleet::{EXAMPLES, apply_examples, prepare_hub, step};
use super::*;

/// Hub namespace of the zero-trust workloads.
pub const ZT: &str = "e2e-zt";
/// The signing Secret the tests create.
pub const SIGNING_SECRET: &str = "marshal-system/marshal-signing-key";

/// A pod spec the restricted Pod Security Standard admits: non-root, RuntimeDefault seccomp, no privilege
/// escalation, every capability dropped, no ServiceAccount token.
pub fn safe_spec(image: &str) -> Value {
    json!({
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app", "image": image,
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}
        }]
    })
}

/// A MissionWorkload owned by `owner`, RESTRICTED, releasable to `releasable`, one replica on the core tier.
pub fn workload_json(ns: &str, name: &str, owner: &str, releasable: &[&str], spec: Value) -> Value {
    json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "MissionWorkload",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "owner": owner,
            "confidentiality": {"policy": "NATO", "classification": "RESTRICTED",
                                "categories": [{"tagName": "Releasable To", "values": releasable}]},
            "replicas": 1,
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            "placement": {"tiers": ["core", "edge"]},
            "failover": {"tolerationSeconds": 10, "failbackAfterSeconds": 20}
        }
    })
}

/// A DEU workload that only deu-1 may hold.
pub fn deu_workload(ns: &str, name: &str, spec: Value) -> Value {
    workload_json(ns, name, "DEU", &["DEU"], spec)
}

/// Applies a JSON object to a cluster.
pub fn apply_json(cluster: &str, v: &Value) -> Result<String, String> {
    apply(cluster, &v.to_string())
}

/// The hub with the exercise's policy, clusters and links (no workloads) and the namespace `ns`.
pub fn prepare(ns: &str) {
    prepare_hub();
    apply_examples(&EXAMPLES[..4]);
    let _ = kubectl("hub", &["create", "namespace", ns]);
}

/// An Assignment on the hub.
pub fn assignment(cluster: &str, ns: &str, name: &str) -> Option<Value> {
    get("hub", &["asg", "-n", &format!("marshal-{cluster}"), &format!("{ns}.{name}")])
}

/// The status message of an Assignment once its phase is `phase`.
pub fn wait_phase(cluster: &str, ns: &str, name: &str, phase: &str, secs: u64) -> String {
    wait_for(&format!("{cluster} {ns}.{name} {phase}"), Duration::from_secs(secs), || {
        assignment(cluster, ns, name)
            .filter(|a| a["status"]["phase"] == phase)
            .map(|a| a["status"]["message"].as_str().unwrap_or_default().to_string())
    })
}

/// Polls for `secs` that the member never holds a Deployment `ns/name` (the attack's payload never lands).
pub fn never_deployed(cluster: &str, ns: &str, name: &str, secs: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some(d) = member_deployment(cluster, ns, name) {
            panic!("{cluster} holds Deployment {ns}/{name}: {}", d["spec"]["template"]["spec"]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A hub kubeconfig for a token of ServiceAccount `ns/sa` (server and CA from the admin kubeconfig).
pub fn token_kubeconfig(ns: &str, sa: &str, file: &str) -> String {
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig("hub")).expect("hub kc")).expect("hub kubeconfig");
    let cluster = &admin["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().expect("server");
    let ca = cluster["certificate-authority-data"].as_str().expect("CA data");
    let token = kubectl("hub", &["create", "token", sa, "-n", ns, "--duration=2h"]).expect("token");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: hub\nclusters:\n- name: hub\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: hub\n  \
         context: {{cluster: hub, user: u}}\n",
        token.trim()
    );
    let path = format!("{}/{file}", dir());
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// A writer in the hub namespace `marshal-<cluster>`: a ServiceAccount that may create, change and delete
/// Assignments there (spec and status), and nothing else. Returns its kubeconfig.
pub fn namespace_writer(cluster: &str) -> String {
    let ns = format!("marshal-{cluster}");
    let _ = kubectl("hub", &["create", "namespace", &ns]);
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "e2e-writer", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "e2e-writer", "namespace": ns},
         "rules": [{"apiGroups": ["marshal.dev"], "resources": ["assignments", "assignments/status"],
                    "verbs": ["get", "list", "create", "patch", "update", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "e2e-writer", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-writer"},
         "subjects": [{"kind": "ServiceAccount", "name": "e2e-writer", "namespace": ns}]}
    ]});
    apply_json("hub", &rbac).expect("writer RBAC");
    token_kubeconfig(&ns, "e2e-writer", &format!("writer-{cluster}.kubeconfig"))
}

/// Removes the namespace writer.
pub fn remove_namespace_writer(cluster: &str) {
    let ns = format!("marshal-{cluster}");
    let _ =
        kubectl("hub", &["delete", "-n", &ns, "serviceaccount,role,rolebinding", "e2e-writer", "--ignore-not-found"]);
}

/// kubectl with a kubeconfig file and `input` on stdin.
pub fn kubectl_as_stdin(kc: &str, args: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("stdin");
    let out = child.wait_with_output().expect("kubectl ran");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Pull mode for ltu-1 without an agent process yet: the hub holds no credentials for it, the agent's hub RBAC
/// (`marshal agent rbac`) is applied, a signing key exists (its Secret on the hub, its public key trusted by the
/// agent) and `host` is the agent's host configuration (clearance file). Returns the agent's hub kubeconfig.
pub fn pull_ltu(host: &str) -> String {
    let d = dir();
    let secret = marshal(&["keygen", "--public-out", &format!("{d}/key-a.pub")]).expect("keygen");
    apply("hub", &secret).expect("signing Secret");
    std::fs::copy(format!("{d}/key-a.pub"), format!("{d}/trusted.pub")).expect("trust key a");
    std::fs::write(format!("{d}/clearance.yaml"), host).expect("host configuration");
    let patch = r#"{"spec":{"connection":{"mode":"Pull","kubeconfigSecretRef":null}}}"#;
    kubectl("hub", &["patch", "mc", "ltu-1", "--type=merge", "-p", patch]).expect("ltu-1 Pull");
    let _ = kubectl("hub", &["delete", "secret", "-n", "marshal-system", "ltu-1-kubeconfig", "--ignore-not-found"]);
    let rbac = marshal(&["agent", "rbac", "--cluster", "ltu-1", "--links-from-hub"]).expect("agent rbac");
    apply("hub", &rbac).expect("apply agent rbac");
    token_kubeconfig("marshal-ltu-1", "marshal-agent", "hub.kubeconfig")
}

/// Puts ltu-1 back into push mode and removes the agent's hub identity and the signing key.
pub fn push_ltu() {
    for what in ["serviceaccount", "role", "rolebinding"] {
        let _ = kubectl("hub", &["delete", what, "-n", "marshal-ltu-1", "marshal-agent", "--ignore-not-found"]);
    }
    let _ = kubectl("hub", &["delete", "clusterrole,clusterrolebinding", "marshal-agent-ltu-1", "--ignore-not-found"]);
    let secret = std::fs::read_to_string(env("MARSHAL_TB_SECRET_LTU_1")).expect("ltu-1 Secret manifest");
    apply("hub", &secret).expect("restore ltu-1 kubeconfig Secret");
    apply("hub", &super::fleet::file("examples/baltic/10-member-clusters.yaml")).expect("ltu-1 back to Push");
    apply("hub", &super::fleet::file("examples/baltic/20-cluster-links.yaml")).expect("links restored");
    let _ = kubectl("hub", &["delete", "secret", "-n", "marshal-system", "marshal-signing-key", "--ignore-not-found"]);
}

/// Deletes the workloads of `ns` (while a controller still runs: it removes their finalizers once the members
/// cleaned up) and waits until they and their Assignments are gone; what is left after a minute (a member that
/// cannot clean up) loses its finalizers. Then removes `ns` from the hub, waiting until it is gone (the next test
/// creates it again), and from the members.
pub fn clean_namespace(ns: &str) {
    let _ = kubectl("hub", &["delete", "mw", "-n", ns, "--all", "--wait=false"]);
    let selector = format!("marshal.dev/workload-namespace={ns}");
    let gone = wait_for_opt(Duration::from_secs(60), || {
        let left = kubectl("hub", &["get", "asg", "-A", "-o", "name", "-l", &selector]).unwrap_or_default();
        let mws = kubectl("hub", &["get", "mw", "-n", ns, "-o", "name"]).unwrap_or_default();
        (left.trim().is_empty() && mws.trim().is_empty()).then_some(())
    });
    if gone.is_none() {
        eprintln!("  cleanup: workloads of {ns} not gone after 60 s; removing their finalizers");
        let strip = r#"{"metadata":{"finalizers":null}}"#;
        for a in kubectl(
            "hub",
            &[
                "get",
                "asg",
                "-A",
                "-l",
                &selector,
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
            ],
        )
        .unwrap_or_default()
        .lines()
        {
            if let Some((n, name)) = a.split_once('/') {
                let _ = kubectl("hub", &["patch", "asg", "-n", n, name, "--type=merge", "-p", strip]);
            }
        }
        for w in kubectl("hub", &["get", "mw", "-n", ns, "-o", "name"]).unwrap_or_default().lines() {
            let _ = kubectl("hub", &["patch", "-n", ns, w, "--type=merge", "-p", strip]);
        }
    }
    for c in MEMBERS {
        let _ = kubectl(c, &["delete", "namespace", ns, "--wait=false", "--ignore-not-found"]);
    }
    let _ = kubectl("hub", &["delete", "namespace", ns, "--wait=false", "--ignore-not-found"]);
    // The next test uses the same namespace names: wait until they are gone everywhere.
    let deleted = wait_for_opt(Duration::from_secs(90), || {
        (get("hub", &["namespace", ns]).is_none() && MEMBERS.iter().all(|c| get(c, &["namespace", ns]).is_none()))
            .then_some(())
    });
    if deleted.is_none() {
        eprintln!("  warning: namespace {ns} still terminating after 90 s");
    }
}

/// Writes a member's own host configuration (`marshal-system/marshal-clearance`), as its admin does.
pub fn host_configmap(cluster: &str, yaml: &str) {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "marshal-clearance", "namespace": "marshal-system"},
                    "data": {"clearance.yaml": yaml}});
    let _ = kubectl(cluster, &["create", "namespace", "marshal-system"]);
    apply_json(cluster, &cm).expect("host ConfigMap");
}

/// Removes a member's host configuration.
pub fn remove_host_configmap(cluster: &str) {
    let _ =
        kubectl(cluster, &["delete", "configmap", "-n", "marshal-system", "marshal-clearance", "--ignore-not-found"]);
}

/// Events on the hub about object `name` in namespace `ns` (core/v1 view), as `reason: message` lines.
pub fn events_about(ns: &str, name: &str) -> Vec<String> {
    let out = kubectl(
        "hub",
        &["get", "events", "-n", ns, "--field-selector", &format!("involvedObject.name={name}"), "-o", "json"],
    )
    .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the controller decided a workload (status for its current generation) and returns it.
pub fn decided(ns: &str, name: &str, secs: u64) -> Value {
    wait_for(&format!("{ns}/{name} decided"), Duration::from_secs(secs), || {
        get("hub", &["mw", "-n", ns, name]).filter(|w| w["status"]["observedGeneration"] == w["metadata"]["generation"])
    })
}

/// A condition's message.
pub fn condition_message(obj: &Value, type_: &str) -> String {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Prints a step header (re-exported for the tests).
pub fn attack(name: &str) {
    step(&format!("attack: {name}"));
}

/// kubectl as a kubeconfig (re-exported).
pub fn as_user(kc: &str, args: &[&str]) -> Result<String, String> {
    kubectl_as(kc, args)
}

/// Runs its closure when dropped: a test's repair of what it broke on the federation, also when it fails.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
