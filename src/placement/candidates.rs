//! Runs the filters over every (cluster, tier) candidate, and over every current placement, and orders the usable
//! candidates.
//!
//! Every current placement gets a verdict, whatever the path that follows (normal, fleet freeze, invalid spec):
//! several tiers on one cluster, a tier the cluster no longer offers or the workload no longer names, a cluster
//! that has no MemberCluster. A placement whose sovereignty filters say no is revoked at once, with the reason
//! that revokes it.

use std::borrow::Cow;
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
pub struct Eval<'h> {
    /// Usable candidates (eligible, tolerated or held), sorted by key.
    pub cands: Vec<Cand>,
    /// Every verdict, sorted by (cluster, tier): every candidate's and every current placement's.
    pub verdicts: Vec<Verdict>,
    /// Current placements that sovereignty now forbids, whatever the network says: removed even during a fleet
    /// freeze or while the spec is invalid.
    pub revoked: Vec<Revoked>,
    /// The current placements, one per (cluster, tier) (duplicates summed), sorted.
    pub current: Cow<'h, [CurrentPlacement]>,
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
/// What the engine itself left behind is already so, and is borrowed as it is.
pub fn normalize(placements: &[CurrentPlacement]) -> Cow<'_, [CurrentPlacement]> {
    if placements.windows(2).all(|w| (&w[0].cluster, &w[0].tier) < (&w[1].cluster, &w[1].tier)) {
        return Cow::Borrowed(placements);
    }
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
    Cow::Owned(by_slot.into_values().collect())
}

/// The verdict of `first` (or eligibility) for one candidate, with `since` carried over from the previous verdict
/// while the candidate stays in the same class.
fn verdict(cluster: &str, tier: &str, first: Option<Fail>, prev: Option<&Verdict>, now: Timestamp) -> Verdict {
    let (eligible, reason, message, observed_at) = match first {
        // No volatile figures here: a verdict that stays eligible must stay byte-identical in status.
        None => (true, Reason::Eligible, "passed every filter".to_string(), None),
        Some(f) => (false, f.reason, f.message, f.observed_at),
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
pub fn evaluate<'h>(w: &WorkloadModel, snap: &Snapshot, hist: &'h History, now: Timestamp) -> Eval<'h> {
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
        unknown.push(verdict(&p.cluster, &p.tier, Some(f), None, now));
    }

    let mut at = 0usize; // current placements are sorted by cluster, like the snapshot's clusters
    for (ci, c) in snap.clusters.iter().enumerate() {
        while current.get(at).is_some_and(|p| p.cluster.as_str() < c.name.as_str()) {
            at += 1;
        }
        let here_end = current[at..].iter().take_while(|p| p.cluster == c.name).count() + at;
        let here = &current[at..here_end];
        let mut reach = filters::reachable(c, grace, now);
        // Every sovereignty filter except the taints (per tier: a NoSchedule taint spares what is placed). A policy
        // that is missing or contradictory holds what runs, but never hides a fact that says no: residency, the
        // owner's admission and the member's refusal need no policy and are asked all the same.
        let mut sovereign = match filters::accredited(c, now).and_then(|_| filters::sovereignty(c, &mut view)) {
            Ok(e) => filters::residency(c, w)
                .and_then(|_| filters::host_admission(c, &w.owner, &e))
                .and_then(|_| filters::member_refusal(c, hist)),
            Err(f) if f.hold == Hold::Keep => filters::residency(c, w)
                .and_then(|_| filters::owner_admitted(c, &w.owner))
                .and_then(|_| filters::member_refusal(c, hist))
                .and(Err(f)),
            Err(f) => Err(f),
        };
        let mut select = if sovereign.is_ok() { filters::selector(c, w.selector.as_ref()) } else { Ok(()) };
        // The link is only looked at when the cheaper filters before it pass.
        let mut link = if reach.is_ok() && sovereign.is_ok() && select.is_ok() {
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
        let reach_failed = reach.is_err();
        for (ti, &t) in tiers.iter().enumerate() {
            // A cluster's failure is reported by each of its tiers: the last takes its message, the others copy it.
            let last = ti + 1 == tiers.len();
            let cur_here = here.iter().find(|p| p.tier == t);
            let own = cur_here.map_or(0, |p| p.replicas);
            let mut taint = filters::taints(c, w, cur_here.is_some());
            let mut tier_ok = filters::tier(c, w, t);
            // What sovereignty says of this candidate: the taints, then the cluster's sovereignty filters.
            let sovereign_here = taint.as_ref().map(|_| ()).and(sovereign.as_ref().map(|_| ()));
            if let (Some(_), Err(f)) = (cur_here, &sovereign_here)
                && f.revokes()
            {
                revoked.push(Revoked { cluster: c.name.clone(), tier: t.to_string(), reason: f.reason });
            }
            // Everything except the network: taints, sovereignty, selector and tier (the first of them that fails).
            let hard_hold =
                [taint.as_ref().err(), sovereign.as_ref().err(), select.as_ref().err(), tier_ok.as_ref().err()]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|f| f.hold);
            let mut fit = 0;
            let first: Option<Fail> = if let Err(f) = &mut reach {
                Some(take(f, last))
            } else if let Err(f) = &mut taint {
                Some(take(f, true))
            } else if let Err(f) = &mut sovereign {
                Some(take(f, last))
            } else if let Err(f) = &mut select {
                Some(take(f, last))
            } else if let Err(f) = &mut tier_ok {
                Some(take(f, true))
            } else if let Err(f) = &mut link {
                Some(take(f, last))
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
            let first_hold = first.as_ref().map(|f| f.hold);
            let mut v = verdict(&c.name, t, first, previous(&c.name, t), now);
            let mut tolerated = false;
            let mut held = false;
            if let (Some(_), Some(first_hold)) = (cur_here, first_hold) {
                // What the placement may do: the strictest hold of every filter that failed.
                let mut hold = first_hold;
                if let (Some(h), true) = (hard_hold, reach_failed) {
                    hold = hold.and(h);
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

/// A failure for a verdict: its message moved out when `last` (the failure reports nothing more), copied otherwise.
fn take(f: &mut Fail, last: bool) -> Fail {
    let message = if last { std::mem::take(&mut f.message) } else { f.message.clone() };
    Fail { reason: f.reason, message, observed_at: f.observed_at, hold: f.hold }
}

/// The message of the sovereignty filter that failed (taints first), for a verdict whose first failure is another.
fn sovereign_reason<T>(taint: &Result<(), Fail>, sovereign: &Result<T, Fail>) -> String {
    match (taint, sovereign) {
        (Err(f), _) | (_, Err(f)) => format!("{} ({})", f.reason, f.message),
        _ => String::new(),
    }
}
