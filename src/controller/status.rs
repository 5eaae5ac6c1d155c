//! Pure: the MissionWorkload status for a decision. Deterministic: an unchanged decision gives a
//! byte-identical status, so the server-side apply is a no-op.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{ConditionSpec, merge};
use crate::api::{
    Assignment, AssignmentPhase, FailbackStatus, MissionWorkload, MissionWorkloadStatus, Phase, PlacementStatus,
    VerdictStatus,
};
use crate::placement::Decision;

/// A time as the API stores it: `Time` is written with whole seconds, so a status holding sub-second times
/// (a Lease's `renewTime` has microseconds) would never equal what the store reads back, and every reconcile
/// would rewrite it.
fn whole(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The status to write. `assignments` are the workload's Assignments as the hub has them (for readiness).
/// Every time in it is in whole seconds, so that it compares equal to itself read back from the API.
pub fn build(mw: &MissionWorkload, d: &Decision, assignments: &[Assignment], now: Time) -> MissionWorkloadStatus {
    let now = whole(now.0);
    let old = mw.status.clone().unwrap_or_default();
    // Replicas the member last reported ready. After a re-division changed an Assignment, the report can still
    // be for the earlier spec: it says what runs there (the engine keeps ready replicas on an overcommitted
    // tier from it), but it does not make the workload Ready (see `confirmed`).
    let ready_on = |cluster: &str, tier: &str| -> u32 {
        assignments
            .iter()
            .filter(|a| a.spec.cluster == cluster && a.spec.tier == tier)
            .filter_map(|a| a.status.as_ref())
            .filter(|s| s.phase == AssignmentPhase::Applied)
            .fold(0u32, |a, s| a.saturating_add(s.ready_replicas))
    };
    // Every placement's Assignment reported for its current spec (digest).
    let confirmed = d.placements.iter().all(|p| {
        assignments.iter().any(|a| {
            a.spec.cluster == p.cluster
                && a.spec.tier == p.tier
                && a.status.as_ref().is_some_and(|s| s.applied_digest == a.spec.content_digest())
        })
    });
    let placements: Vec<PlacementStatus> = d
        .placements
        .iter()
        .map(|p| PlacementStatus {
            cluster: p.cluster.clone(),
            tier: p.tier.clone(),
            replicas: p.replicas,
            ready_replicas: ready_on(&p.cluster, &p.tier).min(p.replicas),
            since: Some(whole(p.since)),
            reason: p.reason.to_string(),
        })
        .collect();
    let verdicts: Vec<VerdictStatus> = d
        .verdicts
        .iter()
        .map(|v| VerdictStatus {
            cluster: v.cluster.clone(),
            tier: v.tier.clone(),
            eligible: v.eligible,
            reason: v.reason.as_str().to_string(),
            message: v.message.clone(),
            since: Some(whole(v.since)),
            observed_at: v.observed_at.map(whole),
        })
        .collect();
    // Totals saturate: replicas in status come from members and earlier statuses and may add up beyond u32.
    let placed: u32 = placements.iter().fold(0u32, |a, p| a.saturating_add(p.replicas));
    let ready: u32 = placements.iter().fold(0u32, |a, p| a.saturating_add(p.ready_replicas));
    // A member that cannot verify is a missing fact, not a refusal: its placement is held (`Compliant=Unknown`).
    let refused: Vec<&Assignment> = assignments
        .iter()
        .filter(|a| {
            a.status.as_ref().is_some_and(|s| s.phase == AssignmentPhase::Refused)
                && !super::build::unverified_running(a)
        })
        .collect();

    let mut conds = vec![
        ConditionSpec {
            type_: "Placed",
            status: d.phase == Phase::Placed,
            reason: format!("{:?}", d.phase),
            message: d.message.clone(),
        },
        ConditionSpec {
            type_: "Ready",
            status: placed > 0 && ready >= placed && d.unplaced == 0 && confirmed || mw.spec.replicas == 0,
            reason: if ready >= placed && confirmed { "ReplicasReady".into() } else { "ReplicasNotReady".into() },
            message: if confirmed {
                format!("{ready}/{placed} placed replicas ready")
            } else {
                format!("{ready}/{placed} placed replicas ready; waiting for members to confirm the current spec")
            },
        },
        ConditionSpec {
            type_: "Compliant",
            status: refused.is_empty(),
            reason: if refused.is_empty() { "MembersAccepted".into() } else { "RefusedByMember".into() },
            message: if refused.is_empty() {
                "every member accepted its assignment".into()
            } else {
                refused
                    .iter()
                    .map(|a| {
                        let msg = a.status.as_ref().map(|s| s.message.as_str()).unwrap_or_default();
                        format!("{} refused: {msg}", a.spec.cluster)
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        },
    ];
    if let Some(why) = &d.invalid {
        conds.push(ConditionSpec {
            type_: "Invalid",
            status: true,
            reason: "InvalidTemplate".into(),
            message: why.clone(),
        });
    }
    let same_placements = old
        .placements
        .iter()
        .map(|p| (&p.cluster, &p.tier, p.replicas))
        .eq(placements.iter().map(|p| (&p.cluster, &p.tier, p.replicas)));
    let last_decision_time = if same_placements && old.last_decision_time.is_some() {
        old.last_decision_time.clone()
    } else {
        Some(now.clone())
    };
    let mut conditions = merge(&old.conditions, conds, mw.metadata.generation, now.clone());
    compliance_unknown(&mut conditions, &old.conditions, d, &now);
    MissionWorkloadStatus {
        observed_generation: mw.metadata.generation,
        phase: d.phase,
        desired_replicas: d.wanted,
        replicas: placed,
        ready_replicas: ready,
        clusters: placements.iter().map(|p| p.cluster.as_str()).collect::<Vec<_>>().join(","),
        placements,
        verdicts,
        conditions,
        failback: d.failback.as_ref().map(|f| FailbackStatus { since: whole(f.since), targets: f.targets.clone() }),
        // The reconcile sets the backoffs it decided with (see `moves::backoff`); unchanged they stay as they were.
        backoff: old.backoff.clone(),
        last_decision_time,
    }
}

/// A placement held because a fact is missing, stale or contradictory (a deleted SecurityPolicy, a capacity report
/// of unknown age) runs without a verdict that allows it: `Compliant` is then `Unknown`, with what is missing
/// (DESIGN.md §4, "lose nothing"), unless a member's refusal already makes it `False`.
fn compliance_unknown(
    conditions: &mut [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    d: &Decision,
    now: &Time,
) {
    let held: Vec<String> = d
        .verdicts
        .iter()
        .filter(|v| v.held && d.placements.iter().any(|p| p.cluster == v.cluster && p.tier == v.tier))
        .map(|v| format!("{}/{} held: {}", v.cluster, v.tier, v.message))
        .collect();
    let Some(c) = conditions.iter_mut().find(|c| c.type_ == "Compliant" && c.status == "True") else { return };
    if held.is_empty() {
        return;
    }
    c.status = "Unknown".into();
    c.reason = "FactsMissing".into();
    c.message = format!("{}; nothing new is placed there until the facts return", held.join("; "));
    c.last_transition_time = old
        .iter()
        .find(|o| o.type_ == "Compliant" && o.status == "Unknown")
        .map_or_else(|| now.clone(), |o| o.last_transition_time.clone());
}
