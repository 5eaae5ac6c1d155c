//! The placement engine: pure, deterministic, explainable. No client, no async, no clock: `now` is an input.
//!
//! `decide(workload, snapshot, history, now)` evaluates every (cluster, tier) candidate, and every current
//! placement, through the ten filters of DESIGN.md §4 and the member's own refusal, orders the eligible ones,
//! divides the replicas, applies the stability rules (stickiness, toleration, failback window, fleet freeze) and
//! explains the result.

pub mod access;
mod candidates;
mod divide;
mod explain;
pub mod filters;
pub mod link;
pub mod model;
pub mod quantity;
pub mod reasons;
pub mod translate;
pub mod validity;

use jiff::Timestamp;
use serde::Serialize;

pub use candidates::normalize;
pub use filters::{Filter, Hold, Reason};
pub use model::{
    ClusterFacts, CurrentPlacement, History, LinkFacts, PendingFailback, PolicyEntry, Request, Resources, Settings,
    Snapshot, WorkloadModel,
};

use crate::api::Phase;

/// One candidate's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// True exactly when every filter passed.
    pub eligible: bool,
    /// The first failing filter's reason, or `Eligible`.
    pub reason: Reason,
    /// Detail.
    pub message: String,
    /// When the candidate entered its current state (eligible, failing transiently, failing).
    pub since: Timestamp,
    /// When the deciding fact was observed, if it is frozen (last heartbeat, stale link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Timestamp>,
    /// For a placement riding out a transient failure: when its toleration ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerated_until: Option<Timestamp>,
    /// For a placement whose facts are missing, stale or contradictory: it is held (keeps its replicas, nothing
    /// new is placed there) until the facts return.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// A placement decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecision {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// Replicas.
    pub replicas: u32,
    /// When the placement started.
    pub since: Timestamp,
    /// Why it was made: `Preferred` (the best option), `Spill` (beyond the best option), `Failback`, `Tolerated`
    /// (riding out a network failure) or `Unverified` (held while its facts are missing or stale); `Kept` when the
    /// engine changed nothing (fleet freeze, invalid spec).
    pub reason: &'static str,
}

/// A (cluster, tier) slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Slot {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
}

/// Replicas leaving one slot for another (`from: None` = newly placed; `to: None` = removed or unplaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move {
    /// Source.
    pub from: Option<Slot>,
    /// Destination.
    pub to: Option<Slot>,
    /// Replicas.
    pub replicas: u32,
    /// Why: a verdict reason of the source (`Unreachable`, `LinkInsufficient`, ...), `Failback`, `Capacity`,
    /// `Spec` (replicas changed) or `Placed` (new).
    pub reason: String,
}

/// What the engine decided for one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Phase.
    pub phase: Phase,
    /// Replicas wanted in total (`replicas`, or in Duplicated mode `replicas` on each placed cluster).
    pub wanted: u32,
    /// Placements, sorted by cluster.
    pub placements: Vec<PlacementDecision>,
    /// Every candidate's verdict, sorted by (cluster, tier).
    pub verdicts: Vec<Verdict>,
    /// Differences from the current placements.
    pub moves: Vec<Move>,
    /// `N/M clusters eligible: ...`.
    pub summary: String,
    /// Phase message: what is placed, what is not and why.
    pub message: String,
    /// Replicas not placed.
    pub unplaced: u32,
    /// A better placement the engine waits for (failback window).
    pub failback: Option<PendingFailback>,
    /// When the decision may change with time alone (toleration ends, failback due, accreditation expires).
    pub next_review: Option<Timestamp>,
    /// Fleet freeze in force.
    pub frozen: bool,
    /// Why the workload is invalid, naming the field.
    pub invalid: Option<String>,
}

impl Decision {
    /// Total replicas placed.
    pub fn placed(&self) -> u32 {
        self.placements.iter().fold(0u32, |a, p| a.saturating_add(p.replicas))
    }

    /// When the link facts behind this decision's placements go stale (`observedAt + staleAfterSeconds`): the
    /// controller looks again just after, because no watch event announces facts getting old. (The planner
    /// simulates a monitor that keeps reporting, so it does not step to these moments.)
    pub fn links_stale_at(&self, w: &WorkloadModel, snap: &Snapshot) -> Option<Timestamp> {
        let src = w.placement.data_source.as_ref().and_then(|ds| snap.cluster_index(&ds.cluster))?;
        self.placements
            .iter()
            .filter_map(|p| snap.cluster_index(&p.cluster).filter(|ci| *ci != src))
            .filter_map(|ci| snap.link_between(src, ci))
            .filter_map(|(_, l)| {
                let at = l.observed_at?;
                Some(filters::plus_s(at, i64::from(l.stale_after_seconds) + 1))
            })
            .min()
    }

    /// The history this decision leaves for the next one (what the controller keeps in status).
    pub fn history(&self) -> History {
        History {
            placements: self
                .placements
                .iter()
                .map(|p| CurrentPlacement {
                    cluster: p.cluster.clone(),
                    tier: p.tier.clone(),
                    replicas: p.replicas,
                    since: p.since,
                    reason: p.reason.to_string(),
                    ready: None,
                })
                .collect(),
            verdicts: self.verdicts.clone(),
            failback: self.failback.clone(),
            ..Default::default()
        }
    }
}

/// Decides one workload's placement. Pure and deterministic.
pub fn decide(w: &WorkloadModel, snap: &Snapshot, hist: &History, now: Timestamp) -> Decision {
    let eval = candidates::evaluate(w, snap, hist, now);
    divide::decide(w, snap, hist, eval, now)
}

/// Whether more than half of the clusters are unreachable at `now` (fleet freeze).
pub fn fleet_frozen(snap: &Snapshot, now: Timestamp) -> bool {
    let grace = snap.settings.cluster_grace_seconds;
    let down = snap.clusters.iter().filter(|c| filters::reachable(c, grace, now).is_err()).count();
    !snap.clusters.is_empty() && down * 2 > snap.clusters.len()
}
