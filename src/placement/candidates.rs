//! Runs the filters over every (cluster, tier) candidate and orders the usable ones.

use std::cmp::Reverse;

use jiff::Timestamp;

use super::Verdict;
use super::filters::{self, Fail, Reason};
use super::model::{History, Snapshot, WorkloadModel};

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
    /// Current placement riding out a transient failure.
    pub tolerated: bool,
    /// Replicas that fit (including what the workload already uses there).
    pub fit: u32,
    /// Replicas currently placed on this candidate.
    pub current: u32,
    /// Ordering key (lower is better).
    pub key: SortKey,
}

/// Candidates and verdicts of one workload.
pub struct Eval {
    /// Usable candidates (eligible or tolerated), sorted by key.
    pub cands: Vec<Cand>,
    /// Every verdict, sorted by (cluster, tier).
    pub verdicts: Vec<Verdict>,
    /// Current placements that sovereignty now forbids (taints, accreditation, access control, residency,
    /// host admission, the member's refusal), whatever the network says: removed even during a fleet freeze.
    pub revoked: Vec<(String, String)>,
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

fn add_s(t: Timestamp, s: i64) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond().saturating_add(s.saturating_mul(1000))).unwrap_or(t)
}

/// Evaluates every candidate.
pub fn evaluate(w: &WorkloadModel, snap: &Snapshot, hist: &History, now: Timestamp) -> Eval {
    let grace = snap.settings.cluster_grace_seconds;
    let toleration = i64::from(w.failover.toleration_seconds);
    let mut cands = Vec::new();
    let mut verdicts = Vec::with_capacity(snap.clusters.len() * 2);
    let mut tiers: Vec<&str> = Vec::with_capacity(4);
    let mut revoked = Vec::new();
    let source = w.placement.data_source.as_ref().map(|ds| snap.cluster_index(&ds.cluster));
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
    for (ci, c) in snap.clusters.iter().enumerate() {
        let current = hist.placements.iter().find(|p| p.cluster == c.name);
        let reach = filters::reachable(c, grace, now);
        let cluster_static = filters::accredited(c, now)
            .and_then(|_| filters::sovereignty(c, &w.label, snap))
            .and_then(|m| filters::residency(c, w).and_then(|_| filters::host_admission(c, &w.owner, &m)))
            .and_then(|_| filters::member_refusal(c, &hist.refused))
            .and_then(|_| filters::selector(c, w.selector.as_ref()));
        // The link is only looked at when the cheaper filters before it pass.
        let link = if reach.is_ok() && cluster_static.is_ok() {
            filters::link(ci, w, snap, source, now)
        } else {
            Ok(u32::MAX)
        };
        let nation_rank = w.preferred_nations.iter().position(|n| *n == c.nation).unwrap_or(w.preferred_nations.len());

        tiers.clear();
        tiers.extend(c.tiers.iter().map(String::as_str));
        for t in &w.placement.tiers {
            if !tiers.contains(&t.as_str()) {
                tiers.push(t);
            }
        }
        tiers.sort_unstable();
        for &t in &tiers {
            let cur_here = current.filter(|p| p.tier == t);
            let own = cur_here.map_or(0, |p| p.replicas);
            let taint = filters::taints(c, w, cur_here.is_some());
            let tier_ok = filters::tier(c, w, t);
            // Everything except the network: taints, accreditation, sovereignty, residency, admission,
            // selector and tier.
            let hard: Result<(), &Fail> =
                taint.as_ref().map(|_| ()).and(cluster_static.as_ref().map(|_| ())).and(tier_ok.as_ref().map(|_| ()));
            let sovereign = taint.as_ref().map(|_| ()).and(cluster_static.as_ref().map(|_| ()));
            if let (Some(_), Err(f)) = (cur_here, sovereign)
                && f.reason.filter() <= Some(filters::Filter::MemberRefusal)
            {
                revoked.push((c.name.clone(), t.to_string()));
            }
            let mut fit = 0;
            let first: Option<Fail> = if let Err(f) = &reach {
                Some(f.clone())
            } else if let Err(f) = hard {
                Some(f.clone())
            } else if let Err(f) = &link {
                Some(f.clone())
            } else {
                match filters::capacity(c.free.get(t), w.request, (own, cur_here.and_then(|p| p.ready)), t) {
                    Ok(n) => {
                        fit = n;
                        None
                    }
                    Err(f) => Some(f),
                }
            };
            let eligible = first.is_none();
            let (reason, message, observed_at) = match first {
                // No volatile figures here: a verdict that stays eligible must stay byte-identical in status.
                None => (Reason::Eligible, "passed every filter".to_string(), None),
                Some(f) => (f.reason, f.message, f.observed_at),
            };
            let prev = previous(&c.name, t);
            let cls = class(eligible, reason);
            let since = prev.filter(|p| class(p.eligible, p.reason) == cls).map_or(now, |p| p.since);

            // A current placement keeps its share through network failures for tolerationSeconds, as long
            // as nothing else rules the candidate out.
            let mut tolerated_until = None;
            if cur_here.is_some() && cls == Class::Transient && hard.is_ok() {
                let start = match (reason, c.heartbeat) {
                    (Reason::Unreachable, Some(hb)) => add_s(hb, i64::from(grace)),
                    _ => since,
                };
                let until = add_s(start, toleration);
                if now < until {
                    tolerated_until = Some(until);
                }
            }
            let tolerated = tolerated_until.is_some();
            if eligible || tolerated {
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
                    eligible,
                    tolerated,
                    fit,
                    current: own,
                    key: (nation_rank, tier_rank, u8::from(own == 0), rtt, Reverse(fit), ci, tier_index),
                });
            }
            verdicts.push(Verdict {
                cluster: c.name.clone(),
                tier: t.to_string(),
                eligible,
                reason,
                message,
                since,
                observed_at,
                tolerated_until,
            });
        }
    }
    cands.sort_by_key(|c| c.key);
    Eval { cands, verdicts, revoked }
}
