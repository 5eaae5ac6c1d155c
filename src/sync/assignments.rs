//! The Assignment loop of one member: watch the member's Assignments on the hub and the member's
//! Marshal-managed Deployments, and for each Assignment re-check, apply (only when the digest changed),
//! report status (only when it changed), clean up on deletion, and delete orphans.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, select_all};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::SyncContext;
use super::apply::{ASSIGNMENT_ANNOTATION, DIGEST_ANNOTATION, MANAGED_BY_LABEL, apply_body, assignment_key, build};
use super::error::{Error, is_conflict, is_not_found};
use super::recheck::{Refusal, authority, integrity, own_clearance, recheck};
use crate::api::{
    ASSIGNMENT_FINALIZER, Assignment, AssignmentPhase, AssignmentStatus, FIELD_MANAGER, MANAGED_BY,
    MEMBER_CLEARANCE_CONFIGMAP, MemberCluster, SYNCER_FIELD_MANAGER, SecurityPolicy, cluster_namespace,
};

/// Seconds the member server keeps a watch open (under the client's read timeout).
const MEMBER_WATCH_TIMEOUT_S: u32 = 20;
/// Every Assignment is reconciled again this often (no writes when nothing changed).
const RESYNC: Duration = Duration::from_secs(60);
/// Retry delay after a failed reconcile.
const RETRY: Duration = Duration::from_secs(5);
/// A write this recent is trusted over a store that has not seen it yet.
const RECENT: Duration = Duration::from_secs(10);
/// Upper bound of one reconcile.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(40);

enum Trigger {
    One(String),
    All,
    WatchError(&'static str, String),
}

/// The syncer's view of one member and its hub namespace.
struct Stores {
    assignments: Store<Assignment>,
    deployments: Store<Deployment>,
    clearance: Store<ConfigMap>,
    members: Store<MemberCluster>,
    policies: Store<SecurityPolicy>,
}

fn streams(cluster: &str, hub: &Client, member: &Client) -> (Stores, BoxStream<'static, Trigger>) {
    let hub_ns = cluster_namespace(cluster);
    let (assignments, w1) = reflector::store();
    let (deployments, w2) = reflector::store();
    let (clearance, w3) = reflector::store();
    let (members, w4) = reflector::store();
    let (policies, w5) = reflector::store();
    let member_cfg = watcher::Config::default().timeout(MEMBER_WATCH_TIMEOUT_S);
    let ns_prefix = format!("{hub_ns}/");
    let s1 = watcher(Api::<Assignment>::namespaced(hub.clone(), &hub_ns), watcher::Config::default())
        .default_backoff()
        .reflect(w1)
        .touched_objects()
        .map(|r| match r {
            Ok(a) => Trigger::One(a.name_any()),
            Err(e) => Trigger::WatchError("hub assignments", e.to_string()),
        })
        .boxed();
    let s2 = watcher(
        Api::<Deployment>::all(member.clone()),
        member_cfg.clone().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .default_backoff()
    .reflect(w2)
    .touched_objects()
    .map(move |r| match r {
        Ok(d) => match d.annotations().get(ASSIGNMENT_ANNOTATION).and_then(|k| k.strip_prefix(&ns_prefix)) {
            Some(name) => Trigger::One(name.to_string()),
            None => Trigger::All,
        },
        Err(e) => Trigger::WatchError("member deployments", e.to_string()),
    })
    .boxed();
    let s3 = watcher(
        Api::<ConfigMap>::namespaced(member.clone(), "marshal-system"),
        member_cfg.fields(&format!("metadata.name={MEMBER_CLEARANCE_CONFIGMAP}")),
    )
    .default_backoff()
    .reflect(w3)
    .touched_objects()
    .map(|r| r.map_or_else(|e| Trigger::WatchError("member clearance", e.to_string()), |_| Trigger::All))
    .boxed();
    let s4 = watcher(
        Api::<MemberCluster>::all(hub.clone()),
        watcher::Config::default().fields(&format!("metadata.name={cluster}")),
    )
    .default_backoff()
    .reflect(w4)
    .touched_objects()
    .map(|r| r.map_or_else(|e| Trigger::WatchError("hub membercluster", e.to_string()), |_| Trigger::All))
    .boxed();
    let s5 = watcher(Api::<SecurityPolicy>::all(hub.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(w5)
        .touched_objects()
        .map(|r| r.map_or_else(|e| Trigger::WatchError("hub securitypolicies", e.to_string()), |_| Trigger::All))
        .boxed();
    (Stores { assignments, deployments, clearance, members, policies }, select_all([s1, s2, s3, s4, s5]).boxed())
}

/// The Assignment loop. `member_up` is kept by the heartbeat: while the member does not answer, work waits.
pub async fn run(
    ctx: Arc<SyncContext>,
    cluster: String,
    member: Client,
    identity: String,
    member_up: Arc<AtomicBool>,
) -> Result<(), Error> {
    let (stores, mut triggers) = streams(&cluster, &ctx.hub, &member);
    let recorder = Recorder::new(
        ctx.hub.clone(),
        Reporter { controller: "marshal-syncer".into(), instance: Some(identity.clone()) },
    );
    let syncer =
        Syncer { ctx: ctx.clone(), cluster: cluster.clone(), member, stores, recorder, recent: Default::default() };

    // Wait for every store to hold a full list before acting on anything (orphans in particular).
    {
        let s = &syncer.stores;
        let ready = futures::future::join5(
            s.assignments.wait_until_ready(),
            s.deployments.wait_until_ready(),
            s.clearance.wait_until_ready(),
            s.members.wait_until_ready(),
            s.policies.wait_until_ready(),
        );
        tokio::pin!(ready);
        loop {
            tokio::select! {
                _ = &mut ready => break,
                t = triggers.next() => match t {
                    Some(Trigger::WatchError(what, e)) => warn!(%cluster, what, error = %e, "watch failed; retrying"),
                    Some(_) => {}
                    None => return Err(Error::Watch("watch streams ended".into())),
                },
            }
        }
    }
    info!(%cluster, "syncer stores ready");

    let mut pending: BTreeSet<String> = syncer.all_names();
    let mut retry: BTreeMap<String, Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_resync = Instant::now();
    loop {
        tokio::select! {
            t = triggers.next() => match t {
                Some(t) => add(&syncer, &mut pending, t),
                None => return Err(Error::Watch("watch streams ended".into())),
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let due: Vec<String> = retry.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
                for n in due {
                    retry.remove(&n);
                    pending.insert(n);
                }
                if now.duration_since(last_resync) >= RESYNC {
                    last_resync = now;
                    pending.extend(syncer.all_names());
                }
            }
        }
        // Take whatever else is already queued, then work through the batch.
        while let Some(Some(t)) = triggers.next().now_or_never() {
            add(&syncer, &mut pending, t);
        }
        if !member_up.load(Ordering::Relaxed) {
            continue;
        }
        while let Some(name) = pending.pop_first() {
            let result = tokio::time::timeout(RECONCILE_TIMEOUT, syncer.reconcile(&name))
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(format!("reconcile {name}"))));
            if let Err(e) = result {
                warn!(%cluster, assignment = %name, error = %e, category = e.category(), "sync failed; retrying");
                ctx.metrics.reconcile_errors_total.with_label_values(&["syncer", e.category()]).inc();
                retry.insert(name, Instant::now() + RETRY);
            }
            // Keep the reflectors moving while a long batch is worked through: they advance only when their
            // streams are polled, and a store that lags behind our own writes would make us write again
            // (measured: 5 applies per Deployment during a 200-workload storm before this).
            while let Some(Some(t)) = triggers.next().now_or_never() {
                add(&syncer, &mut pending, t);
            }
        }
    }
}

fn add(s: &Syncer, pending: &mut BTreeSet<String>, t: Trigger) {
    match t {
        Trigger::One(n) => {
            pending.insert(n);
        }
        Trigger::All => pending.extend(s.all_names()),
        Trigger::WatchError(what, e) => debug!(cluster = %s.cluster, what, error = %e, "watch error; retrying"),
    }
}

/// `(assignment, what)` → (value written, when).
type Recent = BTreeMap<(String, &'static str), (String, Instant)>;

struct Syncer {
    ctx: Arc<SyncContext>,
    cluster: String,
    member: Client,
    stores: Stores,
    recorder: Recorder,
    /// Writes whose watch events may not have reached the stores yet: `(assignment, what)` → (value, when).
    recent: std::sync::Mutex<Recent>,
}

/// What the status should say.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Core {
    phase: AssignmentPhase,
    ready: u32,
    digest: String,
    message: String,
}

impl Syncer {
    /// Whether `value` was written for `(name, what)` within [`RECENT`].
    fn recently(&self, name: &str, what: &'static str, value: &str) -> bool {
        let Ok(recent) = self.recent.lock() else { return false };
        recent.get(&(name.to_string(), what)).is_some_and(|(v, at)| v == value && at.elapsed() < RECENT)
    }

    fn remember(&self, name: &str, what: &'static str, value: String) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.retain(|_, (_, at)| at.elapsed() < RECENT);
            recent.insert((name.to_string(), what), (value, Instant::now()));
        }
    }

    fn hub_ns(&self) -> String {
        cluster_namespace(&self.cluster)
    }

    /// Every Assignment in the store and every one a member Deployment names.
    fn all_names(&self) -> BTreeSet<String> {
        let prefix = format!("{}/", self.hub_ns());
        let mut names: BTreeSet<String> = self.stores.assignments.state().iter().map(|a| a.name_any()).collect();
        for d in self.stores.deployments.state() {
            if let Some(n) = d.annotations().get(ASSIGNMENT_ANNOTATION).and_then(|k| k.strip_prefix(&prefix)) {
                names.insert(n.to_string());
            }
        }
        names
    }

    /// Member Deployments that come from the Assignment `<hub ns>/<name>`.
    fn deployments_of(&self, name: &str) -> Vec<Arc<Deployment>> {
        let key = format!("{}/{name}", self.hub_ns());
        self.stores
            .deployments
            .state()
            .into_iter()
            .filter(|d| d.annotations().get(ASSIGNMENT_ANNOTATION) == Some(&key))
            .collect()
    }

    async fn reconcile(&self, name: &str) -> Result<(), Error> {
        let key = ObjectRef::new(name).within(&self.hub_ns());
        let Some(a) = self.stores.assignments.get(&key) else {
            // Orphans: the Assignment is gone (stale copies after a link comes back).
            for d in self.deployments_of(name) {
                info!(cluster = %self.cluster, assignment = %name, "deleting orphaned member Deployment");
                self.delete_deployment(&d).await?;
            }
            return Ok(());
        };
        if a.metadata.deletion_timestamp.is_some() {
            return self.remove(&a).await;
        }
        // Integrity first (cluster, digest, signature), then the member's own clearance.
        let authority = authority();
        if let Err(refusal) = integrity(&a, &self.cluster, &authority.trust.ring()) {
            return self.refuse(&a, refusal).await;
        }
        let configmap = self.stores.clearance.state().into_iter().find(|c| c.name_any() == MEMBER_CLEARANCE_CONFIGMAP);
        let own = own_clearance(&authority.clearance, configmap.as_deref());
        let Some(mc) = self.stores.members.get(&ObjectRef::new(&self.cluster)) else {
            return Err(Error::Watch(format!("MemberCluster {} not found on the hub", self.cluster)));
        };
        let policies: Vec<SecurityPolicy> = self.stores.policies.state().iter().map(|p| (**p).clone()).collect();
        if let Err(refusal) = recheck(&a, &self.cluster, &mc, own.as_ref(), &policies, jiff::Timestamp::now()) {
            return self.refuse(&a, refusal).await;
        }
        let (namespace, deployment) = match build(&a) {
            Ok(objects) => objects,
            Err(message) => {
                let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                return self.report(&a, core).await;
            }
        };
        let ns = a.spec.workload.namespace.clone();
        let dname = a.spec.workload.name.clone();
        let existing = self.stores.deployments.get(&ObjectRef::new(&dname).within(&ns));
        let current = match existing {
            Some(d) if d.annotations().get(ASSIGNMENT_ANNOTATION) != Some(&assignment_key(&a)) => {
                let message = format!("Deployment {ns}/{dname} in the member belongs to another Assignment");
                let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                return self.report(&a, core).await;
            }
            Some(d) if d.annotations().get(DIGEST_ANNOTATION) == Some(&a.spec.digest) => (*d).clone(),
            stale if self.recently(name, "apply", &a.spec.digest) => stale.map(|d| (*d).clone()).unwrap_or_default(),
            _ => match self.apply(&namespace, &deployment).await? {
                Ok(d) => {
                    self.remember(name, "apply", a.spec.digest.clone());
                    d
                }
                Err(message) => {
                    let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                    return self.report(&a, core).await;
                }
            },
        };
        let ready = current
            .status
            .as_ref()
            .map(|s| s.ready_replicas.unwrap_or(0).min(s.updated_replicas.unwrap_or(0)))
            .unwrap_or(0);
        let core = Core {
            phase: AssignmentPhase::Applied,
            ready: u32::try_from(ready).unwrap_or(0),
            digest: a.spec.digest.clone(),
            message: String::new(),
        };
        self.report(&a, core).await
    }

    /// Creates the Namespace if missing and applies the Deployment. `Ok(Err)`: a conflict to report as Failed.
    async fn apply(&self, namespace: &Namespace, d: &Deployment) -> Result<Result<Deployment, String>, Error> {
        let ns = namespace.name_any();
        let name = d.name_any();
        let ns_api: Api<Namespace> = Api::all(self.member.clone());
        if ns_api.get_opt(&ns).await.map_err(Error::member(format!("read Namespace {ns}")))?.is_none() {
            match ns_api.create(&PostParams::default(), namespace).await {
                Ok(_) => self.ctx.metrics.write("member", "create", "namespaces"),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(Error::member(format!("create Namespace {ns}"))(e)),
            }
        }
        let api: Api<Deployment> = Api::namespaced(self.member.clone(), &ns);
        // A Deployment that Marshal does not manage is never taken over.
        if let Some(other) = api.get_opt(&name).await.map_err(Error::member(format!("read Deployment {ns}/{name}")))?
            && other.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
        {
            return Ok(Err(format!("Deployment {ns}/{name} exists in the member and is not managed by Marshal")));
        }
        let body = apply_body(d).map_err(Error::InvalidAssignment)?;
        let applied = api
            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await
            .map_err(Error::member(format!("apply Deployment {ns}/{name}")))?;
        self.ctx.metrics.write("member", "apply", "deployments");
        info!(cluster = %self.cluster, deployment = %format!("{ns}/{name}"), "applied");
        Ok(Ok(applied))
    }

    async fn delete_deployment(&self, d: &Deployment) -> Result<(), Error> {
        let ns = d.namespace().unwrap_or_default();
        let name = d.name_any();
        let api: Api<Deployment> = Api::namespaced(self.member.clone(), &ns);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {
                self.ctx.metrics.write("member", "delete", "deployments");
                info!(cluster = %self.cluster, deployment = %format!("{ns}/{name}"), "deleted");
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::member(format!("delete Deployment {ns}/{name}"))(e)),
        }
    }

    /// Deletion: remove the member Deployment, then the finalizer.
    async fn remove(&self, a: &Assignment) -> Result<(), Error> {
        let name = a.name_any();
        for d in self.deployments_of(&name) {
            if d.metadata.deletion_timestamp.is_none() {
                self.delete_deployment(&d).await?;
            }
        }
        let finalizers = a.finalizers();
        if !finalizers.iter().any(|f| f == ASSIGNMENT_FINALIZER) {
            return Ok(());
        }
        let rest: Vec<&String> = finalizers.iter().filter(|f| *f != ASSIGNMENT_FINALIZER).collect();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": a.resource_version()}});
        let api: Api<Assignment> = Api::namespaced(self.ctx.hub.clone(), &self.hub_ns());
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                self.ctx.metrics.write("hub", "patch", "assignments");
                info!(cluster = %self.cluster, assignment = %name, "member objects removed; finalizer released");
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::hub(format!("remove finalizer of Assignment {name}"))(e)),
        }
    }

    /// Refuses an Assignment: status Refused, an Event and the refusal metric (once per refusal). A clearance
    /// refusal removes the member's copy; an integrity refusal (unsigned, unknown key, tampered) leaves the
    /// member exactly as it was, since an unauthentic instruction must not change anything.
    async fn refuse(&self, a: &Assignment, refusal: Refusal) -> Result<(), Error> {
        if !refusal.keeps_running() {
            for d in self.deployments_of(&a.name_any()) {
                self.delete_deployment(&d).await?;
            }
        }
        let message = format!("{}: {}", refusal.reason, refusal.message);
        let core = Core { phase: AssignmentPhase::Refused, ready: 0, digest: String::new(), message: message.clone() };
        if current_core(a) == core {
            return Ok(());
        }
        warn!(cluster = %self.cluster, assignment = %a.name_any(), reason = refusal.reason, %message, "refused");
        self.ctx.metrics.assignment_refusals_total.with_label_values(&[&self.cluster, refusal.reason]).inc();
        let event = Event {
            type_: EventType::Warning,
            reason: "Refused".into(),
            note: Some(message.chars().take(1000).collect()),
            // The refusal reason as the action keeps refusals of different kinds apart (the recorder folds
            // Events with the same reason and action into one series, keeping the first note).
            action: refusal.reason.into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &a.object_ref(&())).await {
            Ok(()) => self.ctx.metrics.write("hub", "create", "events"),
            Err(e) => warn!(cluster = %self.cluster, error = %e, "event not published"),
        }
        self.report(a, core).await
    }

    /// Writes the status when phase, readyReplicas, appliedDigest or message changed.
    async fn report(&self, a: &Assignment, core: Core) -> Result<(), Error> {
        let name = a.name_any();
        let fingerprint = format!("{core:?}");
        if current_core(a) == core || self.recently(&name, "status", &fingerprint) {
            return Ok(());
        }
        let status = AssignmentStatus {
            phase: core.phase,
            ready_replicas: core.ready,
            message: core.message,
            applied_digest: core.digest,
            synced_at: Some(super::member_status::now()),
            conditions: Vec::new(),
        };
        debug!(cluster = %self.cluster, assignment = %name, old = ?current_core(a), new = ?status, "writing Assignment status");
        let body = json!({
            "apiVersion": Assignment::api_version(&()),
            "kind": Assignment::kind(&()),
            "metadata": {"name": name, "namespace": self.hub_ns()},
            "status": status,
        });
        let api: Api<Assignment> = Api::namespaced(self.ctx.hub.clone(), &self.hub_ns());
        match api.patch_status(&name, &PatchParams::apply(SYNCER_FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
            Ok(_) => {
                self.ctx.metrics.write("hub", "apply", "assignments/status");
                self.remember(&name, "status", fingerprint);
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::hub(format!("apply Assignment {name} status"))(e)),
        }
    }
}

fn current_core(a: &Assignment) -> Core {
    let s = a.status.clone().unwrap_or_default();
    Core { phase: s.phase, ready: s.ready_replicas, digest: s.applied_digest, message: s.message }
}
