//! Runs the filters over every (cluster, tier) candidate, and over every current placement, and orders the usable
//! candidates.
//!
//! Every current placement gets a verdict, whatever the path that follows (normal, fleet freeze, invalid spec):
//! several tiers on one cluster, a tier the cluster no longer offers or the workload no longer names, a cluster
//! that has no MemberCluster. A placement whose sovereignty filters say no is revoked at once, with the reason
//! that revokes it.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Verdict;
use super::access::LabelView;
use super::filters::{self, Fail, Hold, Reason, plus_s};
use super::model::{CurrentPlacement, History, Snapshot, WorkloadModel};

/// Ordering key: preferred-nation rank, tier rank, stickiness, link quality, free capacity, then names.
pub type SortKey = (usize, usize, u8, u32, Reverse<u32>, usize, usize);

/// A candidate the division may use.
#[derive(Clone, Debug)]
pub struct Cand {
    /// Index into `snapshot.clusters`.
    pub cluster: usize,
    /// Tier name.
    pub tier: String,
    /// Passed every filter.
    pub eligible: bool,
    /// Current placement riding out a network failure (within its toleration).
    pub tolerated: bool,
    /// Current placement held while a fact is missing, stale or contradictory.
    pub held: bool,
    /// Replicas that fit (including what the workload already uses there).
    pub fit: u32,
    /// Replicas currently placed on this candidate.
    pub current: u32,
    /// Ordering key (lower is better).
    pub key: SortKey,
}

impl Cand {
    /// Kept with at most its current replicas, never moved for a better option (its facts decide).
    pub fn riding_out(&self) -> bool {
        self.tolerated || self.held
    }
}

/// A current placement that sovereignty now forbids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// The sovereignty reason that revokes it (it may differ from the verdict, which names the first failing
    /// filter: an unreachable cluster whose accreditation expired is revoked for `AccreditationExpired`).
    pub reason: Reason,
}

/// Candidates and verdicts of one workload.
pub struct Eval {
    /// Usable candidates (eligible, tolerated or held), sorted by key.
    pub cands: Vec<Cand>,
    /// Every verdict, sorted by (cluster, tier): every candidate's and every current placement's.
    pub verdicts: Vec<Verdict>,
    /// Current placements that sovereignty now forbids, whatever the network says: removed even during a fleet
    /// freeze or while the spec is invalid.
    pub revoked: Vec<Revoked>,
    /// The current placements, one per (cluster, tier) (duplicates summed), sorted.
    pub current: Vec<CurrentPlacement>,
}

#[derive(PartialEq, Eq)]
enum Class {
    Eligible,
    Transient,
    Hard,
}

fn class(eligible: bool, reason: Reason) -> Class {
    if eligible {
        Class::Eligible
    } else if reason.is_transient() {
        Class::Transient
    } else {
        Class::Hard
    }
}

/// One entry per (cluster, tier), replicas summed (saturating), sorted; the earliest `since` and the first reason.
pub fn normalize(placements: &[CurrentPlacement]) -> Vec<CurrentPlacement> {
    let mut by_slot: BTreeMap<(&str, &str), CurrentPlacement> = BTreeMap::new();
    for p in placements {
        by_slot
            .entry((&p.cluster, &p.tier))
            .and_modify(|e| {
                e.replicas = e.replicas.saturating_add(p.replicas);
                e.since = e.since.min(p.since);
                e.ready = match (e.ready, p.ready) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    _ => None,
                };
            })
            .or_insert_with(|| p.clone());
    }
    by_slot.into_values().collect()
}

/// The verdict of `first` (or eligibility) for one candidate, with `since` carried over from the previous verdict
/// while the candidate stays in the same class.
fn verdict(cluster: &str, tier: &str, first: Option<&Fail>, prev: Option<&Verdict>, now: Timestamp) -> Verdict {
    let (eligible, reason, message, observed_at) = match first {
        // No volatile figures here: a verdict that stays eligible must stay byte-identical in status.
        None => (true, Reason::Eligible, "passed every filter".to_string(), None),
        Some(f) => (false, f.reason, f.message.clone(), f.observed_at),
    };
    let cls = class(eligible, reason);
    let since = prev.filter(|p| class(p.eligible, p.reason) == cls).map_or(now, |p| p.since);
    Verdict {
        cluster: cluster.to_string(),
        tier: tier.to_string(),
        eligible,
        reason,
        message,
        since,
        observed_at,
        tolerated_until: None,
        held: false,
    }
}

/// Evaluates every candidate and every current placement.
pub fn evaluate(w: &WorkloadModel, snap: &Snapshot, hist: &History, now: Timestamp) -> Eval {
    let grace = snap.settings.cluster_grace_seconds;
    let toleration = i64::from(w.failover.toleration_seconds);
    let current = normalize(&hist.placements);
    let mut cands = Vec::new();
    let mut verdicts = Vec::with_capacity(snap.clusters.len() * 2 + current.len());
    let mut tiers: Vec<&str> = Vec::with_capacity(4);
    let mut revoked = Vec::new();
    let source = w.placement.data_source.as_ref().map(|ds| snap.cluster_index(&ds.cluster));
    let mut view = LabelView::new(&w.label, snap);
    // Previous verdicts come sorted by (cluster, tier), like the candidates below: walk both in step.
    let sorted = hist.verdicts.is_sorted_by(|a, b| (&a.cluster, &a.tier) <= (&b.cluster, &b.tier));
    let mut cursor = 0usize;
    let mut previous = |cluster: &str, tier: &str| -> Option<&Verdict> {
        if !sorted {
            return hist.verdicts.iter().find(|v| v.cluster == cluster && v.tier == tier);
        }
        while let Some(v) = hist.verdicts.get(cursor) {
            match (v.cluster.as_str(), v.tier.as_str()).cmp(&(cluster, tier)) {
                std::cmp::Ordering::Less => cursor += 1,
                std::cmp::Ordering::Equal => return Some(v),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    };

    // Placements on clusters that have no MemberCluster: nothing can be evaluated there, so they go at once.
    let mut unknown: Vec<Verdict> = Vec::new();
    for p in current.iter().filter(|p| snap.cluster_index(&p.cluster).is_none()) {
        let f = Fail::no(
            Reason::ClusterUnknown,
            format!("{} has no MemberCluster: its clearance cannot be evaluated (fail closed)", p.cluster),
        );
        revoked.push(Revoked { cluster: p.cluster.clone(), tier: p.tier.clone(), reason: f.reason });
        unknown.push(verdict(&p.cluster, &p.tier, Some(&f), None, now));
    }

    let mut at = 0usize; // current placements are sorted by cluster, like the snapshot's clusters
    for (ci, c) in snap.clusters.iter().enumerate() {
        while current.get(at).is_some_and(|p| p.cluster.as_str() < c.name.as_str()) {
            at += 1;
        }
        let here_end = current[at..].iter().take_while(|p| p.cluster == c.name).count() + at;
        let here = &current[at..here_end];
        let reach = filters::reachable(c, grace, now);
        // Every sovereignty filter except the taints (per tier: a NoSchedule taint spares what is placed). A policy
        // that is missing or contradictory holds what runs, but never hides a fact that says no: residency, the
        // owner's admission and the member's refusal need no policy and are asked all the same.
        let sovereign = match filters::accredited(c, now).and_then(|_| filters::sovereignty(c, &mut view)) {
            Ok(e) => filters::residency(c, w)
                .and_then(|_| filters::host_admission(c, &w.owner, &e))
                .and_then(|_| filters::member_refusal(c, &hist.refused)),
            Err(f) if f.hold == Hold::Keep => filters::residency(c, w)
                .and_then(|_| filters::owner_admitted(c, &w.owner))
                .and_then(|_| filters::member_refusal(c, &hist.refused))
                .and(Err(f)),
            Err(f) => Err(f),
        };
        let cluster_static = sovereign.clone().and_then(|_| filters::selector(c, w.selector.as_ref()));
        // The link is only looked at when the cheaper filters before it pass.
        let link = if reach.is_ok() && cluster_static.is_ok() {
            filters::link(ci, w, snap, source, now)
        } else {
            Ok(u32::MAX)
        };
        let nation_rank = w.preferred_nations.iter().position(|n| *n == c.nation).unwrap_or(w.preferred_nations.len());

        tiers.clear();
        tiers.extend(c.tiers.iter().map(String::as_str));
        for t in w.placement.tiers.iter().chain(here.iter().map(|p| &p.tier)) {
            if !tiers.contains(&t.as_str()) {
                tiers.push(t);
            }
        }
        tiers.sort_unstable();
        for &t in &tiers {
            let cur_here = here.iter().find(|p| p.tier == t);
            let own = cur_here.map_or(0, |p| p.replicas);
            let taint = filters::taints(c, w, cur_here.is_some());
            let tier_ok = filters::tier(c, w, t);
            // What sovereignty says of this candidate: the taints, then the cluster's sovereignty filters.
            let sovereign_here = taint.as_ref().map(|_| ()).and(sovereign.as_ref().map(|_| ()));
            if let (Some(_), Err(f)) = (cur_here, &sovereign_here)
                && f.revokes()
            {
                revoked.push(Revoked { cluster: c.name.clone(), tier: t.to_string(), reason: f.reason });
            }
            // Everything except the network: taints, sovereignty, selector and tier.
            let hard = sovereign_here.and(cluster_static.as_ref().map(|_| ())).and(tier_ok.as_ref().map(|_| ()));
            let mut fit = 0;
            let first: Option<Fail> = if let Err(f) = &reach {
                Some(f.clone())
            } else if let Err(f) = hard {
                Some(f.clone())
            } else if let Err(f) = &link {
                Some(f.clone())
            } else {
                let own_now = (own, cur_here.and_then(|p| p.ready));
                match filters::capacity(c, t, w.request, own_now, &snap.settings, now) {
                    Ok(n) => {
                        fit = n;
                        None
                    }
                    Err(f) => Some(f),
                }
            };
            let mut v = verdict(&c.name, t, first.as_ref(), previous(&c.name, t), now);
            let mut tolerated = false;
            let mut held = false;
            if let (Some(_), Some(f)) = (cur_here, &first) {
                // What the placement may do: the strictest hold of every filter that failed.
                let mut hold = f.hold;
                if let (Err(h), true) = (hard, reach.is_err()) {
                    hold = hold.and(h.hold);
                }
                match hold {
                    Hold::Go => {}
                    Hold::Keep => held = true,
                    Hold::Tolerate(anchor) => {
                        // From the moment the fact went bad, or when the engine first saw it bad.
                        let start = anchor.map_or(v.since, |a| a.min(v.since));
                        let until = plus_s(start, toleration);
                        if now < until {
                            tolerated = true;
                            v.tolerated_until = Some(until);
                        }
                    }
                }
            }
            v.held = held;
            if let Some(r) = revoked.iter().find(|r| r.cluster == c.name && r.tier == t)
                && r.reason != v.reason
            {
                v.message.push_str(&format!("; revoked: {}", sovereign_reason(&taint, &sovereign)));
            }
            if v.eligible || tolerated || held {
                let rtt = *link.as_ref().unwrap_or(&u32::MAX);
                let tier_rank = if w.placement.tiers.is_empty() {
                    c.tiers.iter().position(|x| x == t).unwrap_or(usize::MAX)
                } else {
                    w.placement.tiers.iter().position(|x| x == t).unwrap_or(usize::MAX)
                };
                let tier_index = c.tiers.iter().position(|x| x == t).unwrap_or(usize::MAX);
                cands.push(Cand {
                    cluster: ci,
                    tier: t.to_string(),
                    eligible: v.eligible,
                    tolerated,
                    held,
                    fit,
                    current: own,
                    key: (nation_rank, tier_rank, u8::from(own == 0), rtt, Reverse(fit), ci, tier_index),
                });
            }
            verdicts.push(v);
        }
        at = here_end;
    }
    if !unknown.is_empty() {
        verdicts.extend(unknown);
        verdicts.sort_by(|a, b| (&a.cluster, &a.tier).cmp(&(&b.cluster, &b.tier)));
    }
    cands.sort_by_key(|c| c.key);
    Eval { cands, verdicts, revoked, current }
}

/// The message of the sovereignty filter that failed (taints first), for a verdict whose first failure is another.
fn sovereign_reason<T>(taint: &Result<(), Fail>, sovereign: &Result<T, Fail>) -> String {
    match (taint, sovereign) {
        (Err(f), _) | (_, Err(f)) => format!("{} ({})", f.reason, f.message),
        _ => String::new(),
    }
}
