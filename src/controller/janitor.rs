//! Every Assignment on the hub is the controller's own, or it goes. An Assignment counts as the controller's only
//! when it lies in `marshal-<spec.cluster>`, carries the canonical name `<workload namespace>.<workload name>`
//! and names the live workload's UID; the reconcile ignores every other one (see [`super::build::belongs_to`]),
//! and this loop reports it (`marshal_assignments_ignored_total{reason}`, an Event) and deletes it, as it
//! deletes Assignments whose workload is gone (`marshal_assignments_orphaned_total{reason}`). Deleting goes
//! through the members as usual: the syncer removes what the Assignment made (if anything) and says so in
//! status (`Removed`), and this loop then releases the finalizer — finalizers stay with the controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use crate::api::{ASSIGNMENT_FINALIZER, Assignment, AssignmentPhase, MissionWorkload, cluster_namespace};

/// An orphan must stay an orphan this long before it is deleted (a brand-new workload's watch event may lag).
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
/// The sweep runs at least this often (and soon after every Assignment change).
const SWEEP: Duration = Duration::from_secs(5);

/// Why an Assignment is not the controller's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// It does not lie in `marshal-<spec.cluster>` (a transplant).
    NamespaceMismatch,
    /// Its name is not `<workload namespace>.<workload name>`.
    NameMismatch,
    /// Its workload exists with another UID (an older workload of that name).
    WorkloadUidMismatch,
    /// Its workload does not exist.
    WorkloadGone,
}

impl Foreign {
    /// CamelCase, for metrics and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Foreign::NamespaceMismatch => "NamespaceMismatch",
            Foreign::NameMismatch => "NameMismatch",
            Foreign::WorkloadUidMismatch => "WorkloadUidMismatch",
            Foreign::WorkloadGone => "WorkloadGone",
        }
    }
}

/// Pure: whether an Assignment is the controller's own, given the UID of the live workload it names (`None`:
/// no such workload).
pub fn classify(a: &Assignment, live_uid: Option<&str>) -> Result<(), Foreign> {
    let ns = a.metadata.namespace.as_deref().unwrap_or_default();
    if ns != cluster_namespace(&a.spec.cluster) {
        return Err(Foreign::NamespaceMismatch);
    }
    let canonical = format!("{}.{}", a.spec.workload.namespace, a.spec.workload.name);
    if a.metadata.name.as_deref() != Some(canonical.as_str()) {
        return Err(Foreign::NameMismatch);
    }
    match live_uid {
        None => Err(Foreign::WorkloadGone),
        Some(uid) if uid != a.spec.workload.uid => Err(Foreign::WorkloadUidMismatch),
        Some(_) => Ok(()),
    }
}

/// Runs while the process lives; writes only while this replica leads.
pub async fn run(
    ctx: Arc<Context>,
    workloads: Store<PartialObjectMeta<MissionWorkload>>,
    poke: Arc<tokio::sync::Notify>,
) {
    ctx.wait_ready().await;
    let _ = workloads.wait_until_ready().await;
    let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        if ctx.is_leader() {
            sweep(&ctx, &workloads, &mut first_seen).await;
        }
        tokio::select! {
            _ = poke.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
            _ = tokio::time::sleep(SWEEP) => {}
        }
    }
}

async fn sweep(
    ctx: &Context,
    workloads: &Store<PartialObjectMeta<MissionWorkload>>,
    first_seen: &mut BTreeMap<String, Instant>,
) {
    let mut still = BTreeMap::new();
    for a in ctx.stores.assignments.state() {
        let key = format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any());
        if a.metadata.deletion_timestamp.is_some() {
            release_if_done(ctx, &a).await;
            continue;
        }
        let live = workloads.get(&ObjectRef::new(&a.spec.workload.name).within(&a.spec.workload.namespace));
        let Err(why) = classify(&a, live.as_ref().and_then(|w| w.metadata.uid.as_deref())) else { continue };
        let since = *first_seen.get(&key).unwrap_or(&Instant::now());
        still.insert(key.clone(), since);
        if since.elapsed() < ORPHAN_GRACE {
            continue;
        }
        let what = match why {
            Foreign::WorkloadGone => "its workload is gone",
            Foreign::WorkloadUidMismatch => "its workload is another one now",
            _ => "it is not the controller's own",
        };
        let note = format!(
            "Assignment {key} is deleted: {what} ({}): namespace {}, spec.cluster {}, workload {}/{} uid {}",
            why.as_str(),
            a.namespace().unwrap_or_default(),
            a.spec.cluster,
            a.spec.workload.namespace,
            a.spec.workload.name,
            a.spec.workload.uid
        );
        warn!(assignment = %key, reason = why.as_str(), "deleting an Assignment that is not the controller's own");
        if why != Foreign::WorkloadGone {
            ctx.metrics.assignments_ignored_total.with_label_values(&[why.as_str()]).inc();
        }
        if matches!(why, Foreign::WorkloadGone | Foreign::WorkloadUidMismatch) {
            ctx.metrics.assignments_orphaned_total.with_label_values(&[why.as_str()]).inc();
        }
        ctx.event(a.as_ref(), EventType::Warning, "Ignored", note).await;
        let api: Api<Assignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
        match api.delete(&a.name_any(), &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.write("hub", "delete", "assignments"),
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => warn!(assignment = %key, error = %e, "cannot delete"),
        }
        still.remove(&key);
    }
    *first_seen = still;
}

/// Releases the finalizer of a deleting Assignment once its member reported its objects removed, or once its
/// cluster has no MemberCluster any more (nobody is left to clean up).
async fn release_if_done(ctx: &Context, a: &Assignment) {
    if !a.finalizers().iter().any(|f| f == ASSIGNMENT_FINALIZER) {
        return;
    }
    let removed = a.status.as_ref().is_some_and(|s| s.phase == AssignmentPhase::Removed);
    let cluster_gone = ctx.stores.clusters.state().iter().all(|c| c.name_any() != a.spec.cluster);
    if !removed && !cluster_gone {
        return;
    }
    let keep: Vec<&String> = a.finalizers().iter().filter(|f| *f != ASSIGNMENT_FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": keep, "resourceVersion": a.resource_version()}});
    let api: Api<Assignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
    match api.patch(&a.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {
            ctx.metrics.write("hub", "patch", "assignments");
            info!(assignment = %a.name_any(), namespace = ?a.namespace(), cluster_gone, "member objects removed; finalizer released");
        }
        Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
        Err(e) => warn!(assignment = %a.name_any(), error = %e, "cannot release the finalizer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::tests::assignment;

    #[test]
    fn only_well_formed_assignments_of_live_workloads_are_the_controllers() {
        let a = assignment("SECRET");
        assert_eq!(classify(&a, Some("u")), Ok(()));
        assert_eq!(classify(&a, None), Err(Foreign::WorkloadGone));
        assert_eq!(classify(&a, Some("other")), Err(Foreign::WorkloadUidMismatch));
        let mut t = a.clone();
        t.metadata.namespace = Some("marshal-ltu-1".into());
        assert_eq!(classify(&t, Some("u")), Err(Foreign::NamespaceMismatch), "a transplant");
        let mut r = a.clone();
        r.metadata.name = Some("baltic.isr-copy".into());
        assert_eq!(classify(&r, Some("u")), Err(Foreign::NameMismatch), "a copy under another name");
    }
}
