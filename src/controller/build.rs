//! Pure: the Assignments a decision asks for, and the engine's history read back from status.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::{
    ASSIGNMENT_FINALIZER, Assignment, AssignmentPhase, AssignmentSpec, LABEL_CLUSTER, LABEL_WORKLOAD_NAME,
    LABEL_WORKLOAD_NAMESPACE, MissionWorkload, WorkloadRef, cluster_namespace,
};
use crate::placement::{Decision, History};
use crate::signing::{KEY_ID_ANNOTATION, SIGNATURE_ANNOTATION, Signer};

/// Name of a workload's Assignment in `marshal-<cluster>`: `<namespace>.<name>`.
pub fn assignment_name(mw: &MissionWorkload) -> String {
    format!("{}.{}", mw.namespace().unwrap_or_default(), mw.name_any())
}

/// Labels that tie an Assignment to its workload and cluster.
pub fn assignment_labels(mw: &MissionWorkload, cluster: &str) -> BTreeMap<String, String> {
    [
        (LABEL_WORKLOAD_NAMESPACE.to_string(), mw.namespace().unwrap_or_default()),
        (LABEL_WORKLOAD_NAME.to_string(), mw.name_any()),
        (LABEL_CLUSTER.to_string(), cluster.to_string()),
    ]
    .into()
}

/// Whether an Assignment is this workload's own: in `marshal-<spec.cluster>`, under the canonical name, for this
/// workload's UID. Any other Assignment that names the workload (a transplant, a copy, one of an earlier
/// workload of the same name) is ignored: it can neither refuse nor confirm anything for it.
pub fn belongs_to(a: &Assignment, mw: &MissionWorkload) -> bool {
    a.spec.workload.namespace == mw.namespace().unwrap_or_default()
        && a.spec.workload.name == mw.name_any()
        && super::janitor::classify(a, mw.metadata.uid.as_deref()).is_ok()
}

/// When and for how long instructions are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// The hub's clock now.
    pub now: Timestamp,
    /// How long a new instruction is valid (`notAfter` = now + this); it is renewed when less than half is left.
    pub validity_s: i64,
}

/// Default validity of an instruction: a day (renewed after twelve hours).
pub const DEFAULT_VALIDITY_S: i64 = 86_400;

/// A member refused this instruction as stale or expired: issue it again (a new sequence and `notAfter`),
/// at most once a minute.
const RENEW_AFTER_REFUSAL_MS: i64 = 60_000;

impl Issuance {
    /// Issuance at `now` with the default validity.
    pub fn at(now: Timestamp) -> Self {
        Issuance { now, validity_s: DEFAULT_VALIDITY_S }
    }

    /// When an instruction valid until `not_after` is due for renewal.
    pub fn renewal_due(&self, not_after: Timestamp) -> Timestamp {
        Timestamp::from_second(not_after.as_second().saturating_sub(self.validity_s / 2)).unwrap_or(not_after)
    }

    /// Sequence and `notAfter` for content that changed (or must be re-issued), after `previous`.
    fn fresh(&self, previous: Option<i64>) -> (i64, Time) {
        let now_ms = self.now.as_millisecond();
        let seq = previous.map_or(now_ms, |p| p.saturating_add(1).max(now_ms));
        let not_after = Timestamp::from_second(self.now.as_second().saturating_add(self.validity_s.max(1)))
            .unwrap_or(Timestamp::MAX);
        (seq, Time(not_after))
    }
}

/// The desired Assignments, one per placement, signed with the process's signing key if one is installed
/// (`marshal controller --signing-key-secret`, see [`crate::signing`]). `existing` are the workload's own
/// Assignments: unchanged content keeps its sequence and `notAfter` until renewal is due, so an unchanged
/// decision writes nothing.
pub fn assignments(mw: &MissionWorkload, d: &Decision, existing: &[&Assignment], at: &Issuance) -> Vec<Assignment> {
    assignments_signed(mw, d, existing, at, crate::signing::signer().as_deref())
}

/// The desired Assignments, signed by `signer` (none: unsigned). Signing is deterministic (Ed25519), so an
/// unchanged decision gives byte-identical Assignments and nothing is written.
pub fn assignments_signed(
    mw: &MissionWorkload,
    d: &Decision,
    existing: &[&Assignment],
    at: &Issuance,
    signer: Option<&Signer>,
) -> Vec<Assignment> {
    d.placements
        .iter()
        .map(|p| {
            let current = existing.iter().copied().find(|a| a.spec.cluster == p.cluster);
            assignment(mw, &p.cluster, &p.tier, p.replicas, current, at, signer)
        })
        .collect()
}

/// A refused Assignment kept as the standing question to its member ("will you hold this label now?"), with
/// no replicas: when the member changes its clearance and accepts, it runs nothing until the engine places
/// replicas there again. It carries the current spec and signature, so the member answers for what the
/// workload is now.
pub fn parked(mw: &MissionWorkload, existing: &Assignment, at: &Issuance) -> Assignment {
    let (cluster, tier) = (&existing.spec.cluster, &existing.spec.tier);
    assignment(mw, cluster, tier, 0, Some(existing), at, crate::signing::signer().as_deref())
}

/// A kept Assignment (an old copy that stays until its replacement is Ready) issued again as it is: same
/// content, signed with the current key, its sequence and `notAfter` renewed when due. Unchanged it is
/// byte-identical, so nothing is written; the member never finds the instruction behind a copy it runs
/// unsigned or expired.
pub fn reissued(existing: &Assignment, at: &Issuance) -> Assignment {
    reissued_signed(existing, at, crate::signing::signer().as_deref())
}

/// [`reissued`], signed by `signer` (none: unsigned).
pub fn reissued_signed(existing: &Assignment, at: &Issuance, signer: Option<&Signer>) -> Assignment {
    let mut spec = existing.spec.clone();
    if spec.sequence <= 0 || at.now >= at.renewal_due(spec.not_after.0) {
        (spec.sequence, spec.not_after) = at.fresh(Some(spec.sequence).filter(|s| *s > 0));
    }
    let (ns, name) = (existing.namespace().unwrap_or_default(), existing.name_any());
    sealed(ns, name, existing.metadata.labels.clone().unwrap_or_default(), spec, signer)
}

/// An instruction ready to write: its digest over `spec` and where it lives, the finalizer, and the signature.
fn sealed(
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    mut spec: AssignmentSpec,
    signer: Option<&Signer>,
) -> Assignment {
    spec.digest = spec.digest_for(&namespace, &name);
    let mut a = Assignment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels),
            finalizers: Some(vec![ASSIGNMENT_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec,
        status: None,
    };
    if let Some(s) = signer {
        s.sign(&mut a);
    }
    a
}

fn assignment(
    mw: &MissionWorkload,
    cluster: &str,
    tier: &str,
    replicas: u32,
    current: Option<&Assignment>,
    at: &Issuance,
    signer: Option<&Signer>,
) -> Assignment {
    let mut spec = AssignmentSpec {
        cluster: cluster.to_string(),
        workload: WorkloadRef {
            namespace: mw.namespace().unwrap_or_default(),
            name: mw.name_any(),
            uid: mw.meta().uid.clone().unwrap_or_default(),
        },
        owner: mw.spec.owner.clone(),
        confidentiality: mw.spec.confidentiality.clone(),
        tier: tier.to_string(),
        replicas: i32::try_from(replicas).unwrap_or(i32::MAX),
        template: mw.spec.template.clone(),
        residency: mw.spec.residency.clone(),
        exclusive: mw.spec.failover.mode == crate::api::FailoverMode::BreakBeforeMake,
        sequence: 0,
        not_after: Time(Timestamp::UNIX_EPOCH),
        digest: String::new(),
    };
    // Unchanged content keeps its sequence and notAfter until renewal is due (or a member asked for it).
    let keep = current.filter(|c| {
        c.spec.sequence > 0
            && c.metadata.deletion_timestamp.is_none()
            && c.spec.content_digest() == spec.content_digest()
            && at.now < at.renewal_due(c.spec.not_after.0)
            && !(c.status.as_ref().is_some_and(|s| {
                s.phase == AssignmentPhase::Refused && crate::sync::recheck::refusal_wants_renewal(&s.message)
            }) && at.now.as_millisecond().saturating_sub(c.spec.sequence) > RENEW_AFTER_REFUSAL_MS)
    });
    (spec.sequence, spec.not_after) = match keep {
        Some(c) => (c.spec.sequence, c.spec.not_after.clone()),
        None => at.fresh(current.map(|c| c.spec.sequence)),
    };
    sealed(cluster_namespace(cluster), assignment_name(mw), assignment_labels(mw, cluster), spec, signer)
}

/// Whether the member refused this Assignment (and it is not being removed).
pub fn refused(a: &Assignment) -> bool {
    a.metadata.deletion_timestamp.is_none() && a.status.as_ref().is_some_and(|s| s.phase == AssignmentPhase::Refused)
}

/// Whether the member refused this Assignment because its own clearance forbids the label (its copy is gone).
/// Integrity refusals (unsigned, unknown key, tampered) are not: they are about the instruction, not the host,
/// the member keeps what it runs, and the controller answers them by writing its signed Assignment again.
///
/// A member that cannot verify (its own clearance or policy unreadable) keeps what it runs: that is a missing fact
/// while a copy runs there ([`unverified`]), and a refusal like any other when nothing runs there.
pub fn host_refused(a: &Assignment) -> bool {
    use crate::sync::recheck::{refusal_keeps_running, refusal_unverifiable};
    refused(a)
        && !a.status.as_ref().is_some_and(|s| {
            refusal_keeps_running(&s.message) && !(refusal_unverifiable(&s.message) && s.ready_replicas == 0)
        })
}

/// Whether the member cannot verify this Assignment but keeps the copy that runs there (a missing fact: the
/// placement is held, `Compliant=Unknown`).
pub fn unverified_running(a: &Assignment) -> bool {
    refused(a)
        && a.status
            .as_ref()
            .is_some_and(|s| s.ready_replicas > 0 && crate::sync::recheck::refusal_unverifiable(&s.message))
}

/// The engine's `refused` input: each cluster whose member refused the workload's label ([`host_refused`]), with
/// what it said.
pub fn refusals<'a>(assignments: impl IntoIterator<Item = &'a Assignment>) -> BTreeMap<String, String> {
    assignments
        .into_iter()
        .filter(|a| host_refused(a))
        .map(|a| (a.spec.cluster.clone(), a.status.as_ref().map(|s| s.message.clone()).unwrap_or_default()))
        .collect()
}

/// The engine's `unverified` input: each cluster whose member cannot check the workload's Assignment (its own
/// clearance or policy is unreadable), with what it said. What runs there stays; nothing new goes there.
pub fn unverified<'a>(assignments: impl IntoIterator<Item = &'a Assignment>) -> BTreeMap<String, String> {
    assignments
        .into_iter()
        .filter(|a| unverified_running(a))
        .filter_map(|a| a.status.as_ref().map(|s| (a.spec.cluster.clone(), s.message.clone())))
        .collect()
}

/// Whether an existing Assignment already says what the desired one says (then nothing is written).
pub fn up_to_date(existing: &Assignment, desired: &Assignment) -> bool {
    existing.spec == desired.spec
        && existing.metadata.deletion_timestamp.is_none()
        && desired.metadata.labels.iter().flatten().all(|(k, v)| existing.labels().get(k) == Some(v))
        && [SIGNATURE_ANNOTATION, KEY_ID_ANNOTATION]
            .iter()
            .all(|k| existing.annotations().get(*k) == desired.annotations().get(*k))
        && existing.finalizers().iter().any(|f| f == ASSIGNMENT_FINALIZER)
}

/// The engine's history from the workload's status (status is the controller's only memory).
pub fn history(mw: &MissionWorkload) -> History {
    History::from_status(mw.status.as_ref())
}
