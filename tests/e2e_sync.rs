//! The push-mode syncer against the local federation (real API servers, kwok nodes). Needs the federation
//! up and must run inside its network namespace:
//!
//! ```text
//! e2e/federation up
//! cargo test --features e2e --test e2e_sync --no-run
//! e2e/federation run cargo test --offline --features e2e --test e2e_sync -- --nocapture
//! ```
#![cfg(feature = "e2e")]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use marshal::api::{
    ASSIGNMENT_FINALIZER, Assignment, AssignmentPhase, AssignmentSpec, HEARTBEAT_LEASE, MemberCluster, SecurityPolicy,
    cluster_namespace,
};
use marshal::metrics::Metrics;
use marshal::sync::{SyncConfig, SyncContext, run_push};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const NS: &str = "e2e-sync";
const FM: &str = "e2e-sync-test";

async fn client(env: &str) -> Res<Client> {
    let path = std::env::var(env).map_err(|_| format!("{env} not set: run inside `e2e/federation run`"))?;
    let cfg = kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// Polls `f` every 500 ms until it returns `Some`, or fails after `secs`.
async fn wait<T, F, Fut>(what: &str, secs: u64, mut f: F) -> Res<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            println!("  ok after {:.1}s: {what}", start.elapsed().as_secs_f64());
            return Ok(v);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            return Err(format!("timed out after {secs}s waiting for: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn apply<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> Res<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply(FM).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

fn link(cluster: &str, mode: &str) -> Res<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/federation");
    let out = std::process::Command::new(script).args(["link", cluster, mode]).output()?;
    if !out.status.success() {
        return Err(format!("link {cluster} {mode}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn member_cluster(name: &str, nation: &str, tiers: &[&str], secret: &str) -> serde_json::Value {
    json!({
        "apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name},
        "spec": {
            "nation": nation,
            "connection": {"mode": "Push", "kubeconfigSecretRef": {"namespace": "marshal-system", "name": secret, "key": "kubeconfig"}},
            "clearance": {"policy": "NATO", "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"],
                          "categories": [{"tagName": "Releasable To", "values": [nation, "NATO"]}],
                          "reviewBy": "2099-01-01T00:00:00Z"},
            "admission": {"ownerNations": ["*"], "maxClassification": "SECRET"},
            "tiers": tiers
        }
    })
}

fn assignment(
    cluster: &str,
    name: &str,
    classification: &str,
    tier: &str,
    replicas: i32,
    finalizer: bool,
) -> Res<Assignment> {
    let mut spec: AssignmentSpec = serde_json::from_value(json!({
        "cluster": cluster,
        "workload": {"namespace": NS, "name": name, "uid": "e2e"},
        "owner": "POL",
        "confidentiality": {"policy": "NATO", "classification": classification,
                            "categories": [{"tagName": "Releasable To", "values": ["POL", "LTU", "DEU"]}]},
        "tier": tier,
        "replicas": replicas,
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"automountServiceAccountToken": false,
                              "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                              "containers": [{"name": "app", "image": "registry.local/app:1",
                                              "securityContext": {"allowPrivilegeEscalation": false,
                                                                  "capabilities": {"drop": ["ALL"]}},
                                              "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}},
        "sequence": jiff::Timestamp::now().as_millisecond(),
        "notAfter": (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"
    }))?;
    spec.digest = spec.digest_for(&cluster_namespace(cluster), &format!("{NS}.{name}"));
    let mut a = Assignment::new(&format!("{NS}.{name}"), spec);
    a.metadata.namespace = Some(cluster_namespace(cluster));
    if finalizer {
        a.metadata.finalizers = Some(vec![ASSIGNMENT_FINALIZER.into()]);
    }
    Ok(a)
}

/// Writes to the hub and members except heartbeat Lease renewals, and the renewals.
fn writes(m: &Metrics) -> (u64, u64) {
    use prometheus::core::Collector;
    let (mut other, mut renew) = (0, 0);
    for family in m.api_writes_total.collect() {
        for sample in family.get_metric() {
            let n = sample.get_counter().get_value() as u64;
            if sample.get_label().iter().any(|l| l.name() == "verb" && l.value() == "renew") {
                renew += n;
            } else {
                other += n;
            }
        }
    }
    (other, renew)
}

async fn lease_renew_time(hub: &Client, cluster: &str) -> Option<(String, jiff::Timestamp)> {
    let lease =
        Api::<Lease>::namespaced(hub.clone(), &cluster_namespace(cluster)).get_opt(HEARTBEAT_LEASE).await.ok()??;
    let spec = lease.spec?;
    Some((spec.holder_identity?, spec.renew_time?.0))
}

/// Whether a member node went NotReady since `since` (kwok nodes can flap when the machine is starved; the
/// members then really change and the syncer must report it).
async fn node_flapped(members: &[Client], since: jiff::Timestamp) -> Res<bool> {
    for m in members {
        let events = Api::<k8s_openapi::api::core::v1::Event>::all(m.clone()).list(&ListParams::default()).await?;
        for e in events.items {
            let at = e.last_timestamp.map(|t| t.0).or(e.event_time.map(|t| t.0));
            if e.reason.as_deref() == Some("NodeNotReady") && at.is_some_and(|t| t >= since) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Asserts that an idle window of `secs` makes no writes but heartbeat renewals. A window in which a kwok
/// node flapped (the member really changed, e.g. under CPU starvation) is not idle and is tried again.
async fn quiet_window(metrics: &Metrics, members: &[Client], secs: u64) -> Res<()> {
    for attempt in 1..=3 {
        // Pod readiness follows a node transition by a few seconds.
        let start = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(10);
        let (before, renew_before) = writes(metrics);
        let render_before = metrics.render();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (after, renew_after) = writes(metrics);
        println!("  idle {secs} s: {} writes, {} heartbeat renewals", after - before, renew_after - renew_before);
        assert!(renew_after - renew_before >= secs / 2, "heartbeats kept renewing");
        if after == before {
            return Ok(());
        }
        let flapped = node_flapped(members, start).await?;
        assert!(flapped, "writes in an idle window:\n{render_before}\n---\n{}", metrics.render());
        println!("  a member node changed Ready state during the window (attempt {attempt}); trying again");
    }
    Err("no quiet window: member nodes kept flapping".into())
}

fn start_syncer(hub: &Client, metrics: &Metrics) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let ctx = Arc::new(SyncContext {
        hub: hub.clone(),
        metrics: metrics.clone(),
        config: SyncConfig {
            heartbeat_interval: Duration::from_secs(2),
            cluster_grace: Duration::from_secs(6),
            capacity_interval: Duration::from_secs(2),
            ..SyncConfig::default()
        },
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        if let Err(e) = run_push(ctx, async move { rx.await.unwrap_or(()) }).await {
            eprintln!("run_push failed: {e}");
        }
    });
    (tx, handle)
}

/// Waits for an Event with `reason` on the Assignment `name` in `marshal-<cluster>`.
async fn event_on(hub: &Client, cluster: &str, reason: &str, name: &str, timeout_s: u64) -> Res<()> {
    let events: Api<Event> = Api::namespaced(hub.clone(), &cluster_namespace(cluster));
    wait(&format!("{reason} Event on {name}"), timeout_s, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                })
                .then_some(())
        }
    })
    .await
}

async fn condition(hub: &Client, cluster: &str, type_: &str) -> Option<(String, String, String)> {
    let mc = Api::<MemberCluster>::all(hub.clone()).get(cluster).await.ok()?;
    let c = mc.status?.conditions.into_iter().find(|c| c.type_ == type_)?;
    Some((c.status, c.reason, c.message))
}

async fn setup(hub: &Client, ltu: &Client, pol: &Client) -> Res<()> {
    // CRDs (server-side, as documented) and wait until established.
    let crds: Api<CustomResourceDefinition> = Api::all(hub.clone());
    for crd in marshal::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        apply(&crds, &name, serde_json::to_value(&crd)?).await?;
        let c = crds.clone();
        wait(&format!("CRD {name} established"), 30, || {
            let c = c.clone();
            let name = name.clone();
            async move {
                let crd = c.get(&name).await.ok()?;
                crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
            }
        })
        .await?;
    }
    let policy = json!({"apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "nato"},
        "spec": {"policyIdentifier": "NATO",
                 "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "COSMIC TOP SECRET"],
                 "categories": [{"tagName": "Releasable To", "type": "Permissive"}]}});
    apply(&Api::<SecurityPolicy>::all(hub.clone()), "nato", policy).await?;

    // Leftovers of an earlier run: Assignments (finalizers released), member objects, broken clusters.
    for cluster in ["pol-1", "ltu-1", "deu-1"] {
        let api: Api<Assignment> = Api::namespaced(hub.clone(), &cluster_namespace(cluster));
        if let Ok(list) = api.list(&ListParams::default()).await {
            for a in list.items {
                let name = a.metadata.name.clone().unwrap_or_default();
                let _ = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
                    .await;
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
    for member in [pol, ltu] {
        let ns: Api<Namespace> = Api::all(member.clone());
        if ns.get_opt(NS).await?.is_some() {
            let deps: Api<Deployment> = Api::namespaced(member.clone(), NS);
            deps.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
        }
    }
    let _ = Api::<ConfigMap>::namespaced(ltu.clone(), "marshal-system")
        .delete("marshal-clearance", &DeleteParams::default())
        .await;
    let mcs: Api<MemberCluster> = Api::all(hub.clone());
    for name in ["bad-missing", "bad-insecure"] {
        let _ = mcs.delete(name, &DeleteParams::default()).await;
    }

    // Members, plus one whose Secret is missing and one whose kubeconfig skips TLS verification.
    for (name, nation, tiers) in
        [("pol-1", "POL", vec!["core", "edge"]), ("deu-1", "DEU", vec!["core"]), ("ltu-1", "LTU", vec!["edge"])]
    {
        apply(&mcs, name, member_cluster(name, nation, &tiers, &format!("{name}-kubeconfig"))).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "marshal-system");
    let pol_secret = secrets.get("pol-1-kubeconfig").await?;
    let text = String::from_utf8(pol_secret.data.and_then(|d| d.get("kubeconfig").cloned()).ok_or("no kubeconfig")?.0)?;
    let insecure = text.replacen("    server:", "    insecure-skip-tls-verify: true\n    server:", 1);
    assert!(insecure.contains("insecure-skip-tls-verify: true"), "fixture");
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad-insecure-kubeconfig", "namespace": "marshal-system", "labels": {"marshal.dev/kubeconfig": "true"}},
                      "stringData": {"kubeconfig": insecure}});
    apply(&secrets, "bad-insecure-kubeconfig", body).await?;
    apply(&mcs, "bad-missing", member_cluster("bad-missing", "POL", &["core"], "bad-missing-kubeconfig")).await?;
    apply(&mcs, "bad-insecure", member_cluster("bad-insecure", "POL", &["core"], "bad-insecure-kubeconfig")).await?;
    for cluster in ["pol-1", "ltu-1", "deu-1"] {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster_namespace(cluster)}});
        apply(&Api::<Namespace>::all(hub.clone()), &cluster_namespace(cluster), ns).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_syncer_end_to_end() -> Res<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "marshal=info".into()))
        .try_init();
    let hub = client("KUBECONFIG_HUB").await?;
    let pol = client("KUBECONFIG_POL_1").await?;
    let ltu = client("KUBECONFIG_LTU_1").await?;
    println!("setup");
    setup(&hub, &ltu, &pol).await?;
    let metrics = Metrics::new()?;
    let (stop, task) = start_syncer(&hub, &metrics);

    println!("(f) broken members get CredentialsValid=False with a clear message");
    let (_, reason, message) =
        wait("bad-missing CredentialsValid=False", 30, || condition(&hub, "bad-missing", "CredentialsValid")).await?;
    assert_eq!(reason, "SecretNotFound");
    assert!(message.contains("marshal-system/bad-missing-kubeconfig not found"), "{message}");
    let (status, reason, message) =
        wait("bad-insecure CredentialsValid", 30, || condition(&hub, "bad-insecure", "CredentialsValid")).await?;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InsecureSkipTlsVerify"), "{message}");
    assert!(message.contains("insecure-skip-tls-verify"), "{message}");
    let events: Api<Event> = Api::namespaced(hub.clone(), "default");
    wait("Event on bad-insecure", 20, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("InsecureSkipTlsVerify")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad-insecure")
                })
                .then_some(())
        }
    })
    .await?;
    for cluster in ["pol-1", "deu-1", "ltu-1"] {
        let (status, _, _) =
            wait(&format!("{cluster} CredentialsValid"), 30, || condition(&hub, cluster, "CredentialsValid")).await?;
        assert_eq!(status, "True", "{cluster}");
    }

    println!("(a) heartbeat Leases renewed by the syncers");
    for cluster in ["pol-1", "deu-1", "ltu-1"] {
        let (holder, first) = wait(&format!("{cluster} Lease"), 30, || lease_renew_time(&hub, cluster)).await?;
        assert_eq!(holder, format!("syncer/{cluster}"));
        let h = &hub;
        wait(&format!("{cluster} Lease renewed"), 10, || async move {
            lease_renew_time(h, cluster).await.filter(|(_, t)| *t > first).map(|_| ())
        })
        .await?;
    }

    println!("(b) capacity per tier from the kwok nodes");
    let mcs: Api<MemberCluster> = Api::all(hub.clone());
    let cap = wait("pol-1 capacity", 30, || {
        let mcs = mcs.clone();
        async move { mcs.get("pol-1").await.ok()?.status.filter(|s| s.capacity.len() == 2) }
    })
    .await?;
    assert!(cap.observed_at.is_some());
    let core = &cap.capacity["core"];
    assert_eq!((core.nodes, core.ready_nodes), (2, 2));
    assert_eq!(core.allocatable.cpu.as_deref(), Some("16000m"));
    assert_eq!(core.allocatable.memory.as_deref(), Some(&*(64u64 << 30).to_string()));
    assert_eq!(core.allocatable.pods.as_deref(), Some("220"));
    let edge = &cap.capacity["edge"];
    assert_eq!((edge.nodes, edge.ready_nodes, edge.allocatable.cpu.as_deref()), (1, 1, Some("2000m")));
    let ltu_cap = wait("ltu-1 capacity", 30, || {
        let mcs = mcs.clone();
        async move { mcs.get("ltu-1").await.ok()?.status.filter(|s| !s.capacity.is_empty()) }
    })
    .await?;
    assert_eq!(ltu_cap.capacity["edge"].allocatable.cpu.as_deref(), Some("4000m"));

    println!("(c) an Assignment becomes a Ready Deployment in the member");
    let pol_asg: Api<Assignment> = Api::namespaced(hub.clone(), &cluster_namespace("pol-1"));
    let web = assignment("pol-1", "web", "RESTRICTED", "core", 2, true)?;
    pol_asg.create(&PostParams::default(), &web).await?;
    let pol_deps: Api<Deployment> = Api::namespaced(pol.clone(), NS);
    let dep = wait("member Deployment web", 30, || {
        let d = pol_deps.clone();
        async move { d.get_opt("web").await.ok()? }
    })
    .await?;
    let labels = dep.metadata.labels.clone().unwrap_or_default();
    let ann = dep.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "marshal");
    assert_eq!(labels["marshal.dev/owner"], "POL");
    assert_eq!(labels["marshal.dev/classification"], "RESTRICTED");
    assert_eq!(ann["marshal.dev/digest"], web.spec.content_digest());
    assert_eq!(ann["marshal.dev/sequence"], web.spec.sequence.to_string());
    assert_eq!(ann["marshal.dev/assignment"], "marshal-pol-1/e2e-sync.web");
    assert!(ann["marshal.dev/confidentiality"].contains("RESTRICTED"));
    let pod_spec = dep.spec.template.spec.clone().ok_or("no pod spec")?;
    assert_eq!(pod_spec.node_selector.unwrap_or_default()["marshal.dev/tier"], "core");
    assert_eq!(dep.spec.replicas, Some(2));
    let status = wait("Assignment web Applied with 2 ready", 90, || {
        let a = pol_asg.clone();
        async move {
            a.get("e2e-sync.web")
                .await
                .ok()?
                .status
                .filter(|s| s.phase == AssignmentPhase::Applied && s.ready_replicas == 2)
        }
    })
    .await?;
    assert_eq!(status.applied_digest, web.spec.content_digest());
    assert!(status.synced_at.is_some());
    wait("pol-1 core free capacity drops by 200m", 30, || {
        let mcs = mcs.clone();
        async move {
            let s = mcs.get("pol-1").await.ok()?.status?;
            (s.capacity.get("core")?.free.cpu.as_deref() == Some("15800m")).then_some(())
        }
    })
    .await?;

    println!("(d) a SECRET Assignment is refused by ltu-1's own RESTRICTED clearance");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "marshal-clearance", "namespace": "marshal-system"},
        "data": {"clearance.yaml": "nation: LTU\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  categories: [{tagName: Releasable To, values: [LTU, NATO]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\npolicies:\n- {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, COSMIC TOP SECRET], categories: [{tagName: Releasable To, type: Permissive}, {tagName: Special Handling, type: Restrictive, values: [ATOMAL, CRYPTO]}]}\n"}});
    apply(&Api::<ConfigMap>::namespaced(ltu.clone(), "marshal-system"), "marshal-clearance", cm).await?;
    let ltu_asg: Api<Assignment> = Api::namespaced(hub.clone(), &cluster_namespace("ltu-1"));
    ltu_asg.create(&PostParams::default(), &assignment("ltu-1", "secret", "SECRET", "edge", 1, true)?).await?;
    let refused = wait("Assignment secret Refused", 30, || {
        let a = ltu_asg.clone();
        async move { a.get("e2e-sync.secret").await.ok()?.status.filter(|s| s.phase == AssignmentPhase::Refused) }
    })
    .await?;
    assert!(refused.message.contains("ClassificationNotCleared"), "{}", refused.message);
    assert!(refused.message.contains("member clearance"), "{}", refused.message);
    event_on(&hub, "ltu-1", "Refused", "e2e-sync.secret", 20).await?;
    assert_eq!(metrics.assignment_refusals_total.with_label_values(&["ltu-1", "ClassificationNotCleared"]).get(), 1);
    assert!(
        Api::<Deployment>::namespaced(ltu.clone(), NS).get_opt("secret").await?.is_none(),
        "nothing created in ltu-1"
    );
    assert!(Api::<Namespace>::all(ltu.clone()).get_opt(NS).await?.is_none(), "no namespace created in ltu-1");
    // A tampered digest is refused too.
    let mut tampered = assignment("pol-1", "tampered", "RESTRICTED", "core", 1, true)?;
    tampered.spec.replicas = 5;
    pol_asg.create(&PostParams::default(), &tampered).await?;
    let t = wait("tampered Assignment Refused", 30, || {
        let a = pol_asg.clone();
        async move { a.get("e2e-sync.tampered").await.ok()?.status.filter(|s| s.phase == AssignmentPhase::Refused) }
    })
    .await?;
    assert!(t.message.starts_with("DigestMismatch"), "{}", t.message);
    assert!(pol_deps.get_opt("tampered").await?.is_none());

    println!("(g) nothing changed: no writes but heartbeats, also after a restart");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let members = [pol.clone(), ltu.clone(), client("KUBECONFIG_DEU_1").await?];
    quiet_window(&metrics, &members, 65).await?;
    let _ = stop.send(());
    task.await?;
    let metrics2 = Metrics::new()?;
    let (stop, task) = start_syncer(&hub, &metrics2);
    quiet_window(&metrics2, &members, 20).await?;

    println!("(h) drift: the member Deployment scaled and re-imaged by hand is re-applied, with a DriftRepaired Event");
    for (what, patch) in [
        ("scaled to 5", json!({"spec": {"replicas": 5}})),
        (
            "re-imaged",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/evil:1"}]}}}}),
        ),
    ] {
        pol_deps.patch("web", &PatchParams::default(), &Patch::Strategic(patch)).await?;
        let t = std::time::Instant::now();
        wait(&format!("web {what} by hand is repaired"), 60, || {
            let d = pol_deps.clone();
            async move {
                let dep = d.get("web").await.ok()?;
                let pod = dep.spec.template.spec?;
                let image = pod.containers.first()?.image.clone()?;
                (dep.spec.replicas == Some(2) && image != "registry.example/evil:1").then_some(())
            }
        })
        .await?;
        println!("  {what}: repaired after {:.1}s", t.elapsed().as_secs_f64());
    }
    event_on(&hub, "pol-1", "DriftRepaired", "e2e-sync.web", 30).await?;

    println!("(a) link pol-1 down: heartbeat stops, deu-1 keeps beating; a stale copy is removed when it returns");
    pol_asg.create(&PostParams::default(), &assignment("pol-1", "orphan", "RESTRICTED", "edge", 1, false)?).await?;
    wait("member Deployment orphan", 30, || {
        let d = pol_deps.clone();
        async move { d.get_opt("orphan").await.ok()? }
    })
    .await?;
    link("pol-1", "down")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, frozen) = lease_renew_time(&hub, "pol-1").await.ok_or("pol-1 lease")?;
    let (_, deu_before) = lease_renew_time(&hub, "deu-1").await.ok_or("deu-1 lease")?;
    pol_asg.delete("e2e-sync.orphan", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, still) = lease_renew_time(&hub, "pol-1").await.ok_or("pol-1 lease")?;
    assert_eq!(still, frozen, "pol-1 Lease must not be renewed while its link is down");
    let (_, deu_now) = lease_renew_time(&hub, "deu-1").await.ok_or("deu-1 lease")?;
    assert!(deu_now > deu_before, "deu-1 keeps its heartbeat");
    assert!(pol_deps.get_opt("orphan").await?.is_some(), "member unreachable: the copy is still there");
    link("pol-1", "up")?;
    let h = &hub;
    wait("pol-1 Lease renewed after the link returns", 30, || async move {
        lease_renew_time(h, "pol-1").await.filter(|(_, t)| *t > frozen).map(|_| ())
    })
    .await?;
    wait("stale copy orphan deleted (after the orphan grace)", 150, || {
        let d = pol_deps.clone();
        async move { d.get_opt("orphan").await.ok()?.is_none().then_some(()) }
    })
    .await?;

    println!("(i) a blank hub: 3 of pol-1's 4 Assignments vanish unseen; nothing is removed until an admin confirms");
    let bulk = ["bulk-0", "bulk-1", "bulk-2"];
    for b in bulk {
        pol_asg.create(&PostParams::default(), &assignment("pol-1", b, "RESTRICTED", "core", 1, false)?).await?;
    }
    for b in bulk {
        wait(&format!("member Deployment {b}"), 60, || {
            let d = pol_deps.clone();
            async move { d.get_opt(b).await.ok()? }
        })
        .await?;
    }
    for b in bulk {
        pol_asg.delete(&format!("{NS}.{b}"), &DeleteParams::default()).await?;
    }
    let t = std::time::Instant::now();
    let (_, reason, message) = wait("OrphanRemovalHeld=True on pol-1", 180, || {
        let h = hub.clone();
        async move { condition(&h, "pol-1", "OrphanRemovalHeld").await.filter(|(s, _, _)| s == "True") }
    })
    .await?;
    println!("  held after {:.1}s: {reason}: {message}", t.elapsed().as_secs_f64());
    assert!(message.contains("3 of 4"), "{message}");
    for b in bulk {
        assert!(pol_deps.get_opt(b).await?.is_some(), "{b} must not be removed while held");
    }
    let confirm = json!({"metadata": {"annotations": {"marshal.dev/confirm-orphan-removal": "true"}}});
    mcs.patch("pol-1", &PatchParams::default(), &Patch::Merge(confirm)).await?;
    for b in bulk {
        wait(&format!("{b} removed once confirmed"), 150, || {
            let d = pol_deps.clone();
            async move { d.get_opt(b).await.ok()?.is_none().then_some(()) }
        })
        .await?;
    }
    wait("OrphanRemovalHeld=False on pol-1", 150, || {
        let h = hub.clone();
        async move { condition(&h, "pol-1", "OrphanRemovalHeld").await.filter(|(s, _, _)| s == "False") }
    })
    .await?;
    let unconfirm = json!({"metadata": {"annotations": {"marshal.dev/confirm-orphan-removal": null}}});
    mcs.patch("pol-1", &PatchParams::default(), &Patch::Merge(unconfirm)).await?;
    assert!(pol_deps.get_opt("web").await?.is_some(), "web's Assignment exists: it stays");

    println!("(e) deleting the Assignment removes the member Deployment; the syncer says so in status (Removed)");
    println!("    and leaves the finalizer to the controller, which this test plays");
    pol_asg.delete("e2e-sync.web", &DeleteParams::default()).await?;
    wait("member Deployment web deleted", 30, || {
        let d = pol_deps.clone();
        async move { d.get_opt("web").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    let removed = |api: Api<Assignment>, name: &'static str| async move {
        wait(&format!("Assignment {name} Removed, finalizer kept"), 30, || {
            let a = api.clone();
            async move {
                let a = a.get_opt(name).await.ok()??;
                (a.status.as_ref()?.phase == AssignmentPhase::Removed && !a.finalizers().is_empty()).then_some(())
            }
        })
        .await
    };
    removed(pol_asg.clone(), "e2e-sync.web").await?;
    // A tombstone in the member records the removal (a replay of this instruction is refused).
    let tombstones = Api::<ConfigMap>::namespaced(pol.clone(), "marshal-system").get("marshal-removed").await?;
    assert!(tombstones.data.unwrap_or_default().contains_key("e2e-sync.web"), "tombstone of e2e-sync.web");
    pol_asg.delete("e2e-sync.tampered", &DeleteParams::default()).await?;
    ltu_asg.delete("e2e-sync.secret", &DeleteParams::default()).await?;
    removed(pol_asg.clone(), "e2e-sync.tampered").await?;
    removed(ltu_asg.clone(), "e2e-sync.secret").await?;
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    for (api, name) in [(&pol_asg, "e2e-sync.web"), (&pol_asg, "e2e-sync.tampered"), (&ltu_asg, "e2e-sync.secret")] {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&release)).await?;
    }
    let _ = stop.send(());
    task.await?;
    // The broken members never heartbeat: leave none behind for later tests (they would count towards a
    // fleet freeze).
    let mcs: Api<MemberCluster> = Api::all(hub.clone());
    for name in ["bad-missing", "bad-insecure"] {
        let _ = mcs.delete(name, &DeleteParams::default()).await;
    }
    Ok(())
}
