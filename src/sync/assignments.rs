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
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::apply::{ASSIGNMENT_ANNOTATION, DIGEST_ANNOTATION, MANAGED_BY_LABEL, assignment_key, build};
use super::error::{Error, is_not_found};
use super::freshness::{self, Tombstone, WORKLOAD_UID_ANNOTATION};
use super::host_policy::{self, WorkloadPolicy};
use super::member_objects::{self, Applied, Tombstones};
use super::recheck::{Refusal, authority, integrity, own_clearance, recheck};
use super::{SyncContext, drift};

mod removal;
use crate::api::{
    Assignment, AssignmentPhase, AssignmentStatus, MANAGED_BY, MEMBER_CLEARANCE_CONFIGMAP, MemberCluster,
    SYNCER_FIELD_MANAGER, SecurityPolicy, cluster_namespace,
};
use crate::reflect::{Unreadables, guarded};
pub use removal::{CONFIRM_ANNOTATION, MASS_DELETE_PERCENT, ORPHAN_GRACE, ORPHANS_HELD};

/// Seconds the member server keeps a watch open (under the client's read timeout).
const MEMBER_WATCH_TIMEOUT_S: u32 = 20;
/// Every Assignment is reconciled again this often (no writes when nothing changed).
const RESYNC: Duration = Duration::from_secs(60);
/// A write this recent is trusted over a store that has not seen it yet.
const RECENT: Duration = Duration::from_secs(10);
/// Upper bound of one reconcile.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a tombstone lives when the removed instruction's `notAfter` is not known (its Assignment vanished
/// while this syncer did not watch): longer than any validity the controller issues by default.
const UNKNOWN_VALIDITY: i64 = 7 * 86_400;

enum Trigger {
    One(String),
    All,
    WatchError(&'static str, String),
}

/// The syncer's view of one member and its hub namespace. The hub's objects are read through guarded
/// reflectors: one the syncer cannot parse is skipped, never taken for absent.
struct Stores {
    assignments: Store<Assignment>,
    unreadable: Unreadables,
    deployments: Store<Deployment>,
    clearance: Store<ConfigMap>,
    members: Store<MemberCluster>,
    policies: Store<SecurityPolicy>,
}

fn streams(
    cluster: &str,
    hub: &Client,
    member: &Client,
    reporter: &crate::reflect::Reporter,
) -> (Stores, BoxStream<'static, Trigger>) {
    let hub_ns = cluster_namespace(cluster);
    let (deployments, w2) = reflector::store();
    let (clearance, w3) = reflector::store();
    let member_cfg = watcher::Config::default().timeout(MEMBER_WATCH_TIMEOUT_S);
    let ns_prefix = format!("{hub_ns}/");
    let (assignments, unreadable, s1) = guarded(
        Api::<DeserializeGuard<Assignment>>::namespaced(hub.clone(), &hub_ns),
        watcher::Config::default(),
        reporter.clone(),
    );
    let s1 = s1.map(|a| Trigger::One(a.name_any())).boxed();
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
    let (members, _, s4) = guarded(
        Api::<DeserializeGuard<MemberCluster>>::all(hub.clone()),
        watcher::Config::default().fields(&format!("metadata.name={cluster}")),
        reporter.clone(),
    );
    let s4 = s4.map(|_| Trigger::All).boxed();
    let (policies, _, s5) = guarded(
        Api::<DeserializeGuard<SecurityPolicy>>::all(hub.clone()),
        watcher::Config::default(),
        reporter.clone(),
    );
    let s5 = s5.map(|_| Trigger::All).boxed();
    (
        Stores { assignments, unreadable, deployments, clearance, members, policies },
        select_all([s1, s2, s3, s4, s5]).boxed(),
    )
}

/// The Assignment loop. `member_up` is kept by the heartbeat: while the member does not answer, work waits.
pub async fn run(
    ctx: Arc<SyncContext>,
    cluster: String,
    member: Client,
    identity: String,
    member_up: Arc<AtomicBool>,
) -> Result<(), Error> {
    let (reporter, unreadable) = crate::reflect::Reporter::new(ctx.metrics.clone());
    let (stores, mut triggers) = streams(&cluster, &ctx.hub, &member, &reporter);
    let recorder = Recorder::new(
        ctx.hub.clone(),
        Reporter { controller: "marshal-syncer".into(), instance: Some(identity.clone()) },
    );
    let reports = tokio::spawn(crate::reflect::run_reporter(
        unreadable,
        recorder.clone(),
        ctx.metrics.clone(),
        Arc::new(AtomicBool::new(true)),
    ));
    let _stop_reports = AbortOnDrop(reports);
    let syncer = Syncer {
        ctx: ctx.clone(),
        cluster: cluster.clone(),
        tombstones: Tombstones::new(member.clone()),
        member,
        stores,
        recorder,
        recent: Default::default(),
        last_seen: Default::default(),
        generations: Default::default(),
        orphans: Default::default(),
    };

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
    let attempts = crate::retry::Attempts::default();
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
        // Tombstones of the whole batch's removals in one member write, before any of them is removed.
        syncer.record_removals(&pending).await;
        while let Some(name) = pending.pop_first() {
            let result = tokio::time::timeout(RECONCILE_TIMEOUT, syncer.reconcile(&name))
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(format!("reconcile {name}"))));
            match result {
                Ok(()) => attempts.succeeded(&name),
                Err(e) => {
                    let wait = attempts.failed(&name, e.retry_after());
                    warn!(%cluster, assignment = %name, error = %e, category = e.category(), retry_in = ?wait, "sync failed; retrying");
                    ctx.metrics.reconcile_errors_total.with_label_values(&["syncer", e.category()]).inc();
                    retry.insert(name, Instant::now() + wait);
                }
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

/// Aborts a task when dropped (the syncer's helpers end with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Syncer {
    ctx: Arc<SyncContext>,
    cluster: String,
    member: Client,
    stores: Stores,
    recorder: Recorder,
    /// Writes whose watch events may not have reached the stores yet: `(assignment, what)` → (value, when).
    recent: std::sync::Mutex<Recent>,
    /// The member's tombstones of removed workloads.
    tombstones: Tombstones,
    /// Per Assignment name, the highest sequence and latest `notAfter` seen (for the tombstone of an Assignment
    /// that vanished without this syncer seeing it deleted).
    last_seen: std::sync::Mutex<BTreeMap<String, (i64, jiff::Timestamp)>>,
    /// The generation Marshal's own last apply left on each member Deployment (drift detection).
    generations: super::drift::Generations,
    /// Orphan Assignments (gone from the hub without being seen deleted), with when this syncer first saw each.
    orphans: std::sync::Mutex<BTreeMap<String, Instant>>,
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

    /// The tombstone a removal of Assignment `name` leaves (`a`: the Assignment, if the store still has it), or
    /// `None` when nothing of it runs in the member.
    fn tombstone_for(&self, name: &str, a: Option<&Assignment>) -> Option<(String, Tombstone)> {
        let deployments = self.deployments_of(name);
        let d = deployments.first()?;
        let ann = d.annotations();
        let applied = freshness::applied_sequence(ann).unwrap_or(0);
        let seen = self.last_seen.lock().ok().and_then(|m| m.get(name).copied());
        let (seq, not_after) = match (a, seen) {
            (Some(a), _) => (a.spec.sequence, a.spec.not_after.0),
            (None, Some(seen)) => seen,
            (None, None) => {
                let later = jiff::Timestamp::now().as_second().saturating_add(UNKNOWN_VALIDITY);
                (0, jiff::Timestamp::from_second(later).unwrap_or(jiff::Timestamp::MAX))
            }
        };
        let uid = a.map_or_else(
            || ann.get(WORKLOAD_UID_ANNOTATION).cloned().unwrap_or_default(),
            |a| a.spec.workload.uid.clone(),
        );
        let key = freshness::key(&d.namespace().unwrap_or_default(), &d.name_any());
        Some((key, Tombstone { uid, sequence: seq.max(applied), not_after }))
    }

    /// Records, in one member write, the tombstones of every removal in `names` (Assignments being deleted or
    /// gone whose Deployments still run), before any of them is removed. A tombstone that cannot be written never
    /// holds a removal back (removing is the safe direction); it is logged and counted.
    async fn record_removals(&self, names: &BTreeSet<String>) {
        let mut new = Vec::new();
        for name in names {
            let key = ObjectRef::new(name).within(&self.hub_ns());
            if self.stores.unreadable.contains(Some(&self.hub_ns()), name) {
                continue;
            }
            let a = self.stores.assignments.get(&key);
            let removing = a.as_ref().is_none_or(|a| a.metadata.deletion_timestamp.is_some());
            if removing && let Some(t) = self.tombstone_for(name, a.as_deref()) {
                new.push(t);
            }
        }
        self.record(&new).await;
    }

    async fn record(&self, new: &[(String, Tombstone)]) {
        if let Err(e) = self.tombstones.record(&self.ctx.metrics, new).await {
            warn!(cluster = %self.cluster, error = %e, "tombstones not recorded: replays of these removed workloads' \
                  instructions are refused only once they expire");
            self.ctx.metrics.reconcile_errors_total.with_label_values(&["syncer", e.category()]).inc();
        }
    }

    async fn reconcile(&self, name: &str) -> Result<(), Error> {
        let key = ObjectRef::new(name).within(&self.hub_ns());
        let Some(a) = self.stores.assignments.get(&key) else {
            if self.stores.unreadable.contains(Some(&self.hub_ns()), name) {
                // It exists but cannot be read: it is not gone, and nothing it made is removed because of it.
                warn!(cluster = %self.cluster, assignment = %name, "Assignment cannot be read; the member keeps what runs");
                return Ok(());
            }
            // Orphans: the Assignment is gone without being seen deleted (see `orphans`).
            return self.orphaned(name).await;
        };
        self.forget_orphan(name);
        self.release_held().await?;
        if a.metadata.deletion_timestamp.is_some() {
            return self.remove(&a).await;
        }
        if let Ok(mut seen) = self.last_seen.lock() {
            let entry = seen.entry(name.to_string()).or_insert((a.spec.sequence, a.spec.not_after.0));
            *entry = (entry.0.max(a.spec.sequence), entry.1.max(a.spec.not_after.0));
        }
        // The host's configuration: its clearance, policies, workload policy and signature demand.
        let authority = authority();
        let configmap = self.stores.clearance.state().into_iter().find(|c| c.name_any() == MEMBER_CLEARANCE_CONFIGMAP);
        let own = own_clearance(&authority.clearance, configmap.as_deref());
        // Integrity first (cluster, digest, signature): with the keys the host names itself when it demands
        // signatures, else those of the process.
        let ring = match own.as_ref() {
            Some(Ok(c)) => match c.demanded_keys() {
                Ok(Some(ring)) => Ok(Some(ring)),
                Ok(None) => authority.trust.ring(),
                Err(e) => Err(e),
            },
            _ => authority.trust.ring(),
        };
        if let Err(refusal) = integrity(&a, &self.cluster, &ring) {
            return self.refuse(&a, refusal).await;
        }
        let Some(mc) = self.stores.members.get(&ObjectRef::new(&self.cluster)) else {
            return Err(Error::Watch(format!("MemberCluster {} not found on the hub", self.cluster)));
        };
        let policies: Vec<SecurityPolicy> = self.stores.policies.state().iter().map(|p| (**p).clone()).collect();
        let now = jiff::Timestamp::now();
        let accepted = match recheck(&a, &self.cluster, &mc, own.as_ref(), &policies, now) {
            Ok(accepted) => accepted,
            Err(refusal) => return self.refuse(&a, refusal).await,
        };
        let policy: WorkloadPolicy = match own.as_ref() {
            Some(Ok(c)) => c.workload_policy.clone(),
            _ => WorkloadPolicy::default(),
        };
        let (namespace, deployment) = match build(&a, &accepted, &policy) {
            Ok(objects) => objects,
            Err(message) => {
                let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                return self.report(&a, core).await;
            }
        };
        // What may run here is the host's call: its workload policy, whatever the hub signed.
        let template_annotations = a.spec.template.metadata.as_ref().map(|m| m.annotations.clone()).unwrap_or_default();
        let pod = deployment.spec.template.spec.clone().unwrap_or_default();
        let violations = host_policy::check_pod(&policy, &pod, &template_annotations);
        if !violations.is_empty() {
            let refusal = Refusal { reason: "HostPolicyViolation", message: host_policy::summary(&violations) };
            return self.refuse(&a, refusal).await;
        }
        let ns = a.spec.workload.namespace.clone();
        let dname = a.spec.workload.name.clone();
        let content = a.spec.content_digest();
        let existing = self.stores.deployments.get(&ObjectRef::new(&dname).within(&ns));
        let key = format!("{ns}/{dname}");
        // Scaled or edited by hand while it carries the current digest: re-applied below.
        let drifted =
            existing.as_ref().filter(|d| d.annotations().get(DIGEST_ANNOTATION) == Some(&content)).and_then(|d| {
                drift::drift(d, &deployment).or_else(|| {
                    self.generations
                        .changed_by_others(&key, d.metadata.generation)
                        .then(|| "its spec was changed by someone else".to_string())
                })
            });
        let current = match existing {
            Some(d) if d.annotations().get(ASSIGNMENT_ANNOTATION) != Some(&assignment_key(&a)) => {
                let message = format!("Deployment {ns}/{dname} in the member belongs to another Assignment");
                let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                return self.report(&a, core).await;
            }
            Some(d) if d.annotations().get(DIGEST_ANNOTATION) == Some(&content) && drifted.is_none() => (*d).clone(),
            stale if self.recently(name, "apply", &content) => stale.map(|d| (*d).clone()).unwrap_or_default(),
            stale => {
                // Something must be written: only from a fresh instruction (before notAfter, not older than
                // what runs or was removed here).
                let applied = stale.as_ref().and_then(|d| freshness::applied_sequence(d.annotations()));
                let tomb = self.tombstones.get(&freshness::key(&ns, &dname)).await?;
                if let Err(refusal) = freshness::check(&a, applied, tomb.as_ref(), now) {
                    return self.refuse(&a, refusal).await;
                }
                match member_objects::ensure_namespace(&self.member, &self.ctx.metrics, &namespace, &policy).await? {
                    Ok(()) => {}
                    Err(v) => {
                        let refusal = Refusal { reason: "HostPolicyViolation", message: v.to_string() };
                        return self.refuse(&a, refusal).await;
                    }
                }
                match member_objects::apply_deployment(&self.member, &self.ctx.metrics, &deployment).await? {
                    Applied::Done(d) => {
                        self.remember(name, "apply", content.clone());
                        let before = stale.as_ref().and_then(|s| s.metadata.generation);
                        self.generations.record(&key, d.metadata.generation);
                        if let Some(what) = drifted.filter(|_| d.metadata.generation != before) {
                            self.drift_repaired(&a, &key, &what).await;
                        }
                        *d
                    }
                    Applied::Failed(message) => {
                        let core = Core { phase: AssignmentPhase::Failed, ready: 0, digest: String::new(), message };
                        return self.report(&a, core).await;
                    }
                    Applied::Refused(v) => {
                        let refusal = Refusal { reason: "HostPolicyViolation", message: v.to_string() };
                        return self.refuse(&a, refusal).await;
                    }
                }
            }
        };
        let ready = current
            .status
            .as_ref()
            .map(|s| s.ready_replicas.unwrap_or(0).min(s.updated_replicas.unwrap_or(0)))
            .unwrap_or(0);
        let core = Core {
            phase: AssignmentPhase::Applied,
            ready: u32::try_from(ready).unwrap_or(0),
            digest: content,
            message: String::new(),
        };
        self.report(&a, core).await
    }

    /// Refuses an Assignment: status Refused, an Event and the refusal metric (once per refusal). A clearance
    /// refusal removes the member's copy; an integrity refusal (unsigned, unknown key, tampered) leaves the
    /// member exactly as it was, since an unauthentic instruction must not change anything.
    async fn refuse(&self, a: &Assignment, refusal: Refusal) -> Result<(), Error> {
        if !refusal.keeps_running() {
            for d in self.deployments_of(&a.name_any()) {
                member_objects::delete_deployment(&self.member, &self.ctx.metrics, &d).await?;
            }
        }
        let message = format!("{}: {}", refusal.reason, refusal.message);
        // What still runs here after a refusal that keeps it: the hub holds a placement only while it runs.
        let ready = if refusal.keeps_running() {
            self.deployments_of(&a.name_any())
                .iter()
                .filter_map(|d| d.status.as_ref().and_then(|s| s.ready_replicas))
                .fold(0u32, |n, r| n.saturating_add(u32::try_from(r).unwrap_or(0)))
        } else {
            0
        };
        let core = Core { phase: AssignmentPhase::Refused, ready, digest: String::new(), message: message.clone() };
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
