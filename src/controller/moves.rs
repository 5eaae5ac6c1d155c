//! Pure: the move protocol (DESIGN.md §5). From the decision, the Assignments it wants, the ones that exist with
//! what their members reported, and which clusters are reachable, [`plan`] gives the changes to make, in order,
//! each with its reason; the reconcile only executes them. [`not_ready_facts`] and [`backoff`] turn a replacement
//! that does not become Ready into a fact the engine reads (`NotReadyOnMember`), never into the loss of the copy
//! that runs.
//!
//! The rules, in the order the changes are made:
//! 1. A refused Assignment whose cluster is out only because of that refusal is parked (kept with no replicas).
//! 2. A copy where a fact says no (a sovereignty verdict, a cluster that is gone) is removed at once.
//! 3. `BreakBeforeMake`: every other old copy is removed before anything new starts; the new Assignments wait
//!    while an old copy may still run (on a reachable member, or while its removal is under way).
//! 4. The desired Assignments are written (only when their content or signature changed).
//! 5. `MakeBeforeBreak`: an old copy goes only once the replicas it leaves for are Ready. One on an unreachable
//!    member stays until then too, so that a member that returns early does not drop the only copy that could
//!    run; with no replacement at all it stays (nothing is lost by an absence).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::build;
use crate::api::{Assignment, AssignmentPhase, BackoffStatus, MissionWorkload};
use crate::placement::{Decision, History, Reason};

/// How long a replacement may take to become Ready while another copy runs, from when it was issued
/// (`spec.sequence`, on the hub's clock, so that a controller restart does not restart it).
pub const REPLACEMENT_TIMEOUT_S: i64 = 120;
/// First backoff of a cluster where a replacement did not become Ready; it doubles with each one in a row.
pub const BACKOFF_BASE_S: i64 = 300;
/// Longest backoff.
pub const BACKOFF_MAX_S: i64 = 3600;
/// How long an ended backoff is remembered (so that the next one doubles).
pub const BACKOFF_MEMORY_S: i64 = 3600;

/// One change of a move.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write this Assignment (server-side apply).
    Apply(Box<Assignment>),
    /// Delete the existing Assignment on the change's cluster.
    Delete,
}

/// Why a change is made, or why nothing is done where something might be expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// The member refused it on clearance grounds: kept with no replicas, the standing question to its member.
    Park,
    /// A fact says no (sovereignty, a cluster that is gone): removed at once, replacement or not.
    Revoked,
    /// `BreakBeforeMake`: the old copy goes before a new one starts.
    BreakFirst,
    /// A new Assignment.
    Place,
    /// An Assignment whose content, signature or validity changed.
    Update,
    /// `BreakBeforeMake`: the new Assignment waits until no old copy may run (nothing written).
    WaitForOldGone,
    /// `MakeBeforeBreak`: the replacement is Ready, the old copy goes.
    Superseded,
    /// A kept old copy is issued again as it is (signed with the current key, renewed when due).
    Reissue,
    /// `MakeBeforeBreak`: the old copy stays until its replacement is Ready (nothing written).
    KeptUntilReady,
    /// The old copy is on an unreachable member: it stays until its replacement is Ready (nothing written).
    KeptUnreachable,
    /// Nothing replaces the old copy on an unreachable member: it stays (nothing written).
    KeptNoReplacement,
}

/// A change on one cluster: a step to execute (`None`: nothing is written, the reason says why).
#[derive(Clone, Debug)]
pub struct Change {
    /// The member cluster.
    pub cluster: String,
    /// What to do.
    pub step: Option<Step>,
    /// Why.
    pub why: Why,
}

/// The changes of one reconcile, in the order they are made.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Changes.
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether a move is under way (something waits for a member): look again soon.
    pub fn pending(&self) -> bool {
        self.changes.iter().any(|c| {
            matches!(c.why, Why::WaitForOldGone | Why::KeptUntilReady | Why::KeptUnreachable | Why::Superseded)
                || matches!(c.step, Some(Step::Delete))
        })
    }

    /// The reasons for `cluster`, in order.
    pub fn why(&self, cluster: &str) -> Vec<Why> {
        self.changes.iter().filter(|c| c.cluster == cluster).map(|c| c.why).collect()
    }
}

/// What [`plan`] decides from.
pub struct Input<'a> {
    /// The workload is `BreakBeforeMake`.
    pub exclusive: bool,
    /// The engine's decision.
    pub decision: &'a Decision,
    /// The Assignments the decision asks for (see [`build::assignments`]).
    pub desired: &'a [Assignment],
    /// The workload's own Assignments as the hub has them, with their members' reports.
    pub existing: &'a [&'a Assignment],
    /// Clusters whose heartbeat is within grace.
    pub reachable: &'a BTreeSet<String>,
    /// The parked form of a refused Assignment (see [`build::parked`]).
    pub park: &'a dyn Fn(&Assignment) -> Assignment,
    /// A kept Assignment issued again as it is (see [`build::reissued`]).
    pub reissue: &'a dyn Fn(&Assignment) -> Assignment,
}

/// The changes to make, in order (see the module documentation for the rules).
pub fn plan(i: &Input<'_>) -> Plan {
    let d = i.decision;
    let wanted: BTreeSet<&str> = i.desired.iter().map(|w| w.spec.cluster.as_str()).collect();
    let leaving: Vec<&Assignment> =
        i.existing.iter().copied().filter(|a| !wanted.contains(a.spec.cluster.as_str())).collect();
    let reachable = |a: &Assignment| i.reachable.contains(&a.spec.cluster);
    let deleting = |a: &Assignment| a.metadata.deletion_timestamp.is_some();
    let mut changes = Vec::new();
    let mut change = |cluster: &str, step: Option<Step>, why: Why| {
        changes.push(Change { cluster: cluster.to_string(), step, why });
    };

    // BreakBeforeMake: an old copy that is not gone may still run (a clearance refusal removed it in the member).
    let old_may_run = leaving.iter().any(|a| !build::host_refused(a) && (reachable(a) || deleting(a)));
    let mut others: Vec<&Assignment> = Vec::new();
    for a in leaving.iter().copied().filter(|a| !deleting(a)) {
        let cluster = a.spec.cluster.as_str();
        if build::host_refused(a) && out_by_refusal(d, cluster) {
            let want = (i.park)(a);
            if !build::up_to_date(a, &want) {
                change(cluster, Some(Step::Apply(Box::new(want))), Why::Park);
            }
        } else if says_no(d, a) {
            change(cluster, Some(Step::Delete), Why::Revoked);
        } else if i.exclusive {
            change(cluster, Some(Step::Delete), Why::BreakFirst);
        } else {
            others.push(a);
        }
    }

    for w in i.desired {
        let current = i.existing.iter().copied().find(|a| a.spec.cluster == w.spec.cluster);
        if current.is_some_and(|c| build::up_to_date(c, w)) {
            continue;
        }
        let cluster = w.spec.cluster.as_str();
        if i.exclusive && old_may_run && current.is_none() {
            change(cluster, None, Why::WaitForOldGone);
            continue;
        }
        let why = if current.is_none() { Why::Place } else { Why::Update };
        change(cluster, Some(Step::Apply(Box::new(w.clone()))), why);
    }

    // Make-before-break: the replicas the old copies leave for are Ready for their current content.
    let ready_new: u32 = i
        .desired
        .iter()
        .filter_map(|w| i.existing.iter().find(|a| a.spec.cluster == w.spec.cluster))
        .filter_map(|a| a.status.as_ref().filter(|s| s.applied_digest == a.spec.content_digest()))
        .fold(0u32, |n, s| n.saturating_add(s.ready_replicas));
    let placed = d.placed();
    for a in others {
        let cluster = a.spec.cluster.as_str();
        let (step, why) = match (reachable(a), ready_new >= placed, placed > 0) {
            (_, true, true) | (true, true, false) => (Some(Step::Delete), Why::Superseded),
            (true, false, _) => (None, Why::KeptUntilReady),
            (false, false, _) => (None, Why::KeptUnreachable),
            (false, true, false) => (None, Why::KeptNoReplacement),
        };
        if step.is_none() {
            let want = (i.reissue)(a);
            if !build::up_to_date(a, &want) {
                change(cluster, Some(Step::Apply(Box::new(want))), Why::Reissue);
            }
        }
        change(cluster, step, why);
    }
    Plan { changes }
}

/// Whether `cluster` is out only because its member refused (possibly hidden behind its being unreachable, the
/// one filter that runs first): then its refused Assignment is kept. Any other reason removes it.
pub fn out_by_refusal(d: &Decision, cluster: &str) -> bool {
    let mut of_cluster = d.verdicts.iter().filter(|v| v.cluster == cluster).peekable();
    of_cluster.peek().is_some() && of_cluster.all(|v| matches!(v.reason, Reason::RefusedByMember | Reason::Unreachable))
}

/// Whether a fact says no to the copy `a` holds: the decision revoked its placement on sovereignty grounds, its
/// cluster is gone, or (for a copy kept outside the placements, which the engine does not judge as current) its
/// verdict is one that never depends on what runs. A missing fact (`PolicyUnknown`, a member that cannot verify),
/// a `NoSchedule` taint or a network fact is not a "no".
fn says_no(d: &Decision, a: &Assignment) -> bool {
    let cluster = a.spec.cluster.as_str();
    let revoked = d.moves.iter().any(|m| {
        m.from.as_ref().is_some_and(|f| f.cluster == cluster)
            && m.reason.parse::<Reason>().is_ok_and(|r| r.is_sovereignty() && r != Reason::PolicyUnknown)
    });
    let verdict = d.verdicts.iter().find(|v| v.cluster == cluster && v.tier == a.spec.tier);
    let gone = !d.verdicts.iter().any(|v| v.cluster == cluster);
    let kept_says_no = verdict.is_some_and(|v| {
        matches!(
            v.reason,
            Reason::ClusterUnknown
                | Reason::AccreditationExpired
                | Reason::PolicyMismatch
                | Reason::LabelInvalid
                | Reason::ClassificationNotCleared
                | Reason::NotReleasable
                | Reason::ResidencyViolation
                | Reason::HostRefused
        ) || (v.reason == Reason::RefusedByMember && build::host_refused(a))
    });
    revoked || gone || kept_says_no
}

fn age_ms(now: Timestamp, since_ms: i64) -> i64 {
    now.as_millisecond().saturating_sub(since_ms)
}

/// Replacements that did not become Ready: cluster → what was seen. A copy the decision keeps (its cluster is in
/// `placed_before`, the previous decision's clusters) counts when its member reports `Failed`, or when, while a
/// move is under way (an old copy outside the placements still runs Ready), it is not Ready for its current
/// content [`REPLACEMENT_TIMEOUT_S`] after it was issued. A copy that ran well and has a bad moment is never
/// counted: nothing is moving then.
pub fn not_ready_facts(
    existing: &[&Assignment],
    placed_before: &BTreeSet<String>,
    now: Timestamp,
) -> BTreeMap<String, String> {
    let live = |a: &&&Assignment| a.metadata.deletion_timestamp.is_none();
    let moving = existing.iter().filter(live).any(|a| {
        !placed_before.contains(&a.spec.cluster)
            && a.status.as_ref().is_some_and(|s| s.phase == AssignmentPhase::Applied && s.ready_replicas > 0)
    });
    let mut facts = BTreeMap::new();
    for a in existing.iter().filter(live).filter(|a| placed_before.contains(&a.spec.cluster) && a.spec.replicas > 0) {
        let status = a.status.as_ref();
        if let Some(s) = status.filter(|s| s.phase == AssignmentPhase::Failed) {
            facts.insert(a.spec.cluster.clone(), format!("the member could not apply it: {}", s.message));
            continue;
        }
        let ready = status.is_some_and(|s| {
            s.applied_digest == a.spec.content_digest() && i64::from(s.ready_replicas) >= i64::from(a.spec.replicas)
        });
        let waited = age_ms(now, a.spec.sequence).div_euclid(1000);
        if moving && !ready && waited > REPLACEMENT_TIMEOUT_S {
            let seen = status.map_or(0, |s| s.ready_replicas);
            facts.insert(
                a.spec.cluster.clone(),
                format!(
                    "replacement not Ready {waited}s after it was issued ({seen}/{} ready); the running copy stays",
                    a.spec.replicas
                ),
            );
        }
    }
    facts
}

fn at(now: Timestamp, s: i64) -> Time {
    let t = Timestamp::from_second(now.as_second().saturating_add(s)).unwrap_or(Timestamp::MAX);
    Time(t)
}

/// The backoffs after this reconcile: `prev` (from status) less those forgotten, with a backoff for each fact
/// whose cluster has none running. One that ended less than [`BACKOFF_MEMORY_S`] ago doubles (up to
/// [`BACKOFF_MAX_S`]). Deterministic: unchanged facts give identical entries.
pub fn backoff(prev: &[BackoffStatus], facts: &BTreeMap<String, String>, now: Timestamp) -> Vec<BackoffStatus> {
    let now_s = now.as_second();
    let mut out: BTreeMap<String, BackoffStatus> = prev
        .iter()
        .filter(|b| b.until.0.as_second().saturating_add(BACKOFF_MEMORY_S) > now_s)
        .map(|b| (b.cluster.clone(), b.clone()))
        .collect();
    for (cluster, message) in facts {
        let count = match out.get(cluster) {
            Some(b) if b.until.0.as_second() > now_s => continue,
            Some(b) => b.count.saturating_add(1),
            None => 1,
        };
        let wait = BACKOFF_BASE_S.saturating_mul(1i64 << count.saturating_sub(1).min(8)).min(BACKOFF_MAX_S);
        out.insert(
            cluster.clone(),
            BackoffStatus {
                cluster: cluster.clone(),
                reason: Reason::NotReadyOnMember.as_str().to_string(),
                message: message.clone(),
                until: at(now, wait),
                count,
            },
        );
    }
    out.into_values().collect()
}

/// The clusters whose backoff runs at `now`, with what was seen (the engine's `not_ready` input).
pub fn active(backoff: &[BackoffStatus], now: Timestamp) -> BTreeMap<String, String> {
    backoff
        .iter()
        .filter(|b| b.until.0 > now)
        .map(|b| {
            let message = format!("passed over until {} (backoff {}): {}", b.until.0, b.count, b.message);
            (b.cluster.clone(), message)
        })
        .collect()
}

/// When the first running backoff ends (the decision may change then).
pub fn next_end(backoff: &[BackoffStatus], now: Timestamp) -> Option<Timestamp> {
    backoff.iter().map(|b| b.until.0).filter(|t| *t > now).min()
}

/// The backoffs to decide with: those in status, and one for each replacement that did not become Ready.
pub fn backoffs(mw: &MissionWorkload, existing: &[&Assignment], now: Timestamp) -> Vec<BackoffStatus> {
    let status = mw.status.as_ref();
    let placed: BTreeSet<String> = status.iter().flat_map(|s| s.placements.iter()).map(|p| p.cluster.clone()).collect();
    let prev = status.map(|s| s.backoff.as_slice()).unwrap_or_default();
    backoff(prev, &not_ready_facts(existing, &placed, now), now)
}

/// The engine's history for a reconcile: what status remembers, the members' refusals and the members that
/// cannot verify (from the Assignments), and the clusters passed over while their backoff runs.
pub fn history(mw: &MissionWorkload, existing: &[&Assignment], backoff: &[BackoffStatus], now: Timestamp) -> History {
    let mut hist = build::history(mw);
    hist.refused = build::refusals(existing.iter().copied());
    hist.unverified = build::unverified(existing.iter().copied());
    hist.not_ready = active(backoff, now);
    hist
}
