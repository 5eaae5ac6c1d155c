//! Removal of member objects. An Assignment seen deleted: its member objects go at once ([`Syncer::remove`]).
//!
//! Orphans: member Deployments whose Assignment is gone from the hub without this syncer having seen it deleted
//! (its link was down, a finalizer was forced off, or the hub lost its state: an etcd loss, an old snapshot
//! restored). Such an absence is not evidence (DESIGN.md §5): an orphan goes only after [`ORPHAN_GRACE`], with an
//! Event, and when more than [`MASS_DELETE_PERCENT`] % of the member's Marshal objects would go at once, nothing
//! goes: the MemberCluster says `OrphanRemovalHeld=True` until an admin confirms with
//! [`CONFIRM_ANNOTATION`]`=true` on it (or the Assignments come back).

use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::{Core, Error, Syncer, Tombstone, member_objects};
use crate::api::MemberCluster;
use crate::api::conditions::ConditionSpec;
use crate::api::{Assignment, AssignmentPhase};
use crate::sync::member_status;

/// How long an orphan waits before it is removed (its Assignment may be coming back).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(30);
/// More than this share of a member's Marshal objects orphaned at once holds every removal.
pub const MASS_DELETE_PERCENT: usize = 50;
/// Set to `true` on the MemberCluster to let held orphans go.
pub const CONFIRM_ANNOTATION: &str = "marshal.dev/confirm-orphan-removal";
/// The MemberCluster condition while orphan removal is held.
pub const ORPHANS_HELD: &str = "OrphanRemovalHeld";

/// What happens to an orphan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the grace period: kept for now.
    Wait,
    /// Too many at once: kept until confirmed.
    Held,
    /// Removed.
    Remove,
}

/// Pure: the verdict for an orphan first seen `waited` ago, when `orphans` of the member's `total` Marshal
/// objects are orphans.
pub fn judge(waited: Duration, orphans: usize, total: usize, confirmed: bool) -> Verdict {
    if waited < ORPHAN_GRACE {
        Verdict::Wait
    } else if !confirmed && orphans.saturating_mul(100) > total.saturating_mul(MASS_DELETE_PERCENT) {
        Verdict::Held
    } else {
        Verdict::Remove
    }
}

impl Syncer {
    /// Deletion: record the tombstone, remove the member Deployment, then say so in status (`Removed`); the
    /// controller releases the finalizer (it keeps every finalizer: the agent may only write status).
    pub(super) async fn remove(&self, a: &Assignment) -> Result<(), Error> {
        let name = a.name_any();
        let tomb: Vec<(String, Tombstone)> = self.tombstone_for(&name, Some(a)).into_iter().collect();
        self.record(&tomb).await;
        for d in self.deployments_of(&name) {
            if d.metadata.deletion_timestamp.is_none() {
                member_objects::delete_deployment(&self.member, &self.ctx.metrics, &d).await?;
            }
        }
        let core = Core {
            phase: AssignmentPhase::Removed,
            ready: 0,
            digest: String::new(),
            message: "member objects removed".into(),
        };
        self.report(a, core).await
    }

    /// A `DriftRepaired` Event on the Assignment: the member Deployment was changed by hand and is back to what
    /// the Assignment says.
    pub(super) async fn drift_repaired(&self, a: &Assignment, key: &str, what: &str) {
        info!(cluster = %self.cluster, deployment = %key, %what, "drift repaired");
        self.ctx.metrics.write("hub", "create", "events");
        let event = Event {
            type_: EventType::Warning,
            reason: "DriftRepaired".into(),
            note: Some(format!("member Deployment {key} had drifted ({what}); the Assignment's spec is applied again")),
            action: "Reapply".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &a.object_ref(&())).await {
            warn!(cluster = %self.cluster, error = %e, "event not published");
        }
    }

    /// The member objects of the orphan Assignment `name`: kept, held or removed (see the module documentation).
    pub(super) async fn orphaned(&self, name: &str) -> Result<(), Error> {
        let deployments = self.deployments_of(name);
        if deployments.is_empty() {
            self.forget_orphan(name);
            return Ok(());
        }
        let waited = {
            let mut seen = self.orphans.lock().unwrap_or_else(|p| p.into_inner());
            seen.entry(name.to_string()).or_insert_with(Instant::now).elapsed()
        };
        // The member's Marshal objects: Assignments with Deployments in the member (refused ones have none).
        let names: Vec<String> = self.all_names().into_iter().filter(|n| !self.deployments_of(n).is_empty()).collect();
        let store = &self.stores.assignments;
        let hub_ns = self.hub_ns();
        let orphans = names.iter().filter(|n| store.get(&ObjectRef::new(n).within(&hub_ns)).is_none()).count();
        let mc = self.stores.members.get(&ObjectRef::new(&self.cluster));
        let confirmed =
            mc.as_ref().is_some_and(|m| m.annotations().get(CONFIRM_ANNOTATION).is_some_and(|v| v == "true"));
        match judge(waited, orphans, names.len(), confirmed) {
            Verdict::Wait => Ok(()),
            Verdict::Held => {
                let message = format!(
                    "{orphans} of {} Marshal objects in the member have no Assignment on the hub; more than {MASS_DELETE_PERCENT}% \
                     at once, so none is removed (the hub may have lost its state). Restore the Assignments, or \
                     confirm with `kubectl annotate mc {} {CONFIRM_ANNOTATION}=true`",
                    names.len(),
                    self.cluster
                );
                warn!(cluster = %self.cluster, orphans, total = names.len(), "orphan removal held");
                let held = i64::try_from(orphans).unwrap_or(i64::MAX);
                self.ctx.metrics.orphans_held.with_label_values(&[&self.cluster]).set(held);
                self.hold_orphans(Some(message)).await
            }
            Verdict::Remove => {
                let tomb: Vec<(String, Tombstone)> = self.tombstone_for(name, None).into_iter().collect();
                self.record(&tomb).await;
                for d in &deployments {
                    info!(cluster = %self.cluster, assignment = %name, "deleting orphaned member Deployment");
                    member_objects::delete_deployment(&self.member, &self.ctx.metrics, d).await?;
                }
                self.orphan_event(name, waited).await;
                self.forget_orphan(name);
                self.release_held().await
            }
        }
    }

    /// Orphans whose member objects are not already being removed, other than `except`.
    fn live_orphans(&self, except: &str) -> usize {
        let hub_ns = self.hub_ns();
        self.all_names()
            .iter()
            .filter(|n| n.as_str() != except)
            .filter(|n| self.stores.assignments.get(&ObjectRef::new(n).within(&hub_ns)).is_none())
            .filter(|n| self.deployments_of(n).iter().any(|d| d.metadata.deletion_timestamp.is_none()))
            .count()
    }

    /// Clears `OrphanRemovalHeld` once no orphan is left (no write when it is not shown).
    pub(super) async fn release_held(&self) -> Result<(), Error> {
        if self.live_orphans("") > 0 {
            return Ok(());
        }
        self.ctx.metrics.orphans_held.with_label_values(&[&self.cluster]).set(0);
        self.hold_orphans(None).await
    }

    /// An Assignment that exists again is no orphan.
    pub(super) fn forget_orphan(&self, name: &str) {
        if let Ok(mut seen) = self.orphans.lock() {
            seen.remove(name);
        }
    }

    /// Sets `OrphanRemovalHeld` (True with `message`, or False once nothing is held); writes only on a change.
    pub(super) async fn hold_orphans(&self, message: Option<String>) -> Result<(), Error> {
        let held = message.is_some();
        let shown = |mc: &MemberCluster| {
            mc.status.iter().flat_map(|s| s.conditions.iter()).any(|c| c.type_ == ORPHANS_HELD && c.status == "True")
        };
        let mc = self.stores.members.get(&ObjectRef::new(&self.cluster));
        if !held && !mc.as_deref().is_some_and(shown) {
            return Ok(());
        }
        let spec = ConditionSpec {
            type_: ORPHANS_HELD,
            status: held,
            reason: if held { "MassDeletion".into() } else { "NothingHeld".into() },
            message: message.unwrap_or_else(|| "no orphan removal is held".into()),
        };
        member_status::update(&self.ctx, &self.cluster, |s, mc| {
            s.set_condition(spec, mc.metadata.generation, member_status::now())
        })
        .await?;
        Ok(())
    }

    async fn orphan_event(&self, name: &str, waited: Duration) {
        let Some(mc) = self.stores.members.get(&ObjectRef::new(&self.cluster)) else { return };
        let event = Event {
            type_: EventType::Warning,
            reason: "OrphanRemoved".into(),
            note: Some(format!(
                "removed the member objects of Assignment {}/{name}: it was gone from the hub for {}s without being \
                 seen deleted",
                self.hub_ns(),
                waited.as_secs()
            )),
            action: "Remove".into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &mc.object_ref(&())).await {
            Ok(()) => self.ctx.metrics.write("hub", "create", "events"),
            Err(e) => warn!(cluster = %self.cluster, error = %e, "event not published"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absence_waits_and_a_mass_deletion_is_held() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(judge(s(5), 1, 4, false), Verdict::Wait, "within the grace period");
        assert_eq!(judge(s(31), 1, 4, false), Verdict::Remove);
        assert_eq!(judge(s(31), 2, 4, false), Verdict::Remove, "half is not more than half");
        assert_eq!(judge(s(31), 3, 4, false), Verdict::Held, "a blank hub would remove everything");
        assert_eq!(judge(s(31), 1, 1, false), Verdict::Held);
        assert_eq!(judge(s(31), 3, 4, true), Verdict::Remove, "confirmed by an admin");
        assert_eq!(judge(s(5), 3, 4, true), Verdict::Wait, "even confirmed, the grace period holds");
    }
}
