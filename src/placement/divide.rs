//! Division of replicas over the ordered candidates, with the stability rules: stickiness, toleration,
//! the failback window and the fleet freeze.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::candidates::{Cand, Eval};
use super::explain;
use super::model::{History, PendingFailback, Snapshot, WorkloadModel};
use super::{Decision, PlacementDecision};
use crate::api::{Phase, PlacementMode};

/// cluster index → (index into `cands`, replicas).
pub type Division = BTreeMap<usize, (usize, u32)>;

fn max_per_cluster(w: &WorkloadModel) -> u32 {
    w.placement.spread.as_ref().and_then(|s| s.max_replicas_per_cluster).unwrap_or(u32::MAX)
}

fn min_nations(w: &WorkloadModel) -> usize {
    w.placement.spread.as_ref().map_or(1, |s| s.min_nations.max(1) as usize)
}

/// How many replicas a candidate may hold. One riding out a failure keeps at most what it has.
fn cap(w: &WorkloadModel, c: &Cand) -> u32 {
    let per_copy = match w.placement.mode {
        PlacementMode::Divided => max_per_cluster(w),
        PlacementMode::Duplicated => w.replicas.min(max_per_cluster(w)),
    };
    if c.riding_out() { c.current.min(per_copy) } else { c.fit.min(per_copy) }
}

/// The placements kept from the current ones: still eligible (within capacity), tolerated or held. A workload
/// has one placement per cluster: of several current tiers on one cluster, the best-ordered usable one is kept.
fn kept(w: &WorkloadModel, cands: &[Cand]) -> Division {
    let mut out = Division::new();
    for (i, c) in cands.iter().enumerate() {
        if c.current == 0 || out.contains_key(&c.cluster) {
            continue;
        }
        let n = match w.placement.mode {
            PlacementMode::Divided => c.current.min(cap(w, c)),
            PlacementMode::Duplicated => cap(w, c),
        };
        if n > 0 {
            out.insert(c.cluster, (i, n));
        }
    }
    out
}

/// Cluster options in order: a kept cluster uses its kept candidate, any other cluster its best eligible one.
fn options(cands: &[Cand], base: &Division) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        let chosen = match base.get(&c.cluster) {
            Some(&(k, _)) => k == i,
            None => c.eligible && !seen.contains(&c.cluster),
        };
        if chosen {
            seen.insert(c.cluster);
            out.push(i);
        }
    }
    out
}

/// Divides the replicas starting from `base` (kept placements; empty for the ideal division).
pub fn divide(w: &WorkloadModel, snap: &Snapshot, cands: &[Cand], base: Division) -> Division {
    let opts = options(cands, &base);
    let mut div = base;
    match w.placement.mode {
        PlacementMode::Duplicated => {
            for &i in &opts {
                let c = &cands[i];
                div.entry(c.cluster).or_insert((i, cap(w, c)));
            }
            div.retain(|_, (_, n)| *n > 0);
        }
        PlacementMode::Divided => {
            let want = w.replicas;
            let mut total: u32 = placed(&div);
            // Scale down: trim the worst-ordered placements first.
            for &i in opts.iter().rev() {
                if total <= want {
                    break;
                }
                if let Some((_, n)) = div.get_mut(&cands[i].cluster) {
                    let cut = (*n).min(total - want);
                    *n -= cut;
                    total -= cut;
                }
            }
            div.retain(|_, (_, n)| *n > 0);
            // Spread: one replica in each new nation, in order, until minNations is met.
            let nation = |i: usize| snap.clusters[cands[i].cluster].nation.as_str();
            let mut nations: BTreeSet<&str> = div.values().map(|&(i, _)| nation(i)).collect();
            for &i in &opts {
                if nations.len() >= min_nations(w) || want == 0 {
                    break;
                }
                if nations.contains(nation(i)) || div.contains_key(&cands[i].cluster) {
                    continue;
                }
                if total < want {
                    total = total.saturating_add(1);
                } else {
                    // Take one from the fullest placement that can spare it (worst-ordered on ties).
                    let donor = opts
                        .iter()
                        .rev()
                        .filter_map(|&j| div.get(&cands[j].cluster).map(|&(_, n)| (n, cands[j].cluster)))
                        .filter(|&(n, _)| n > 1)
                        .max_by_key(|&(n, _)| n);
                    let Some((_, donor)) = donor else { break };
                    if let Some((_, n)) = div.get_mut(&donor) {
                        *n -= 1;
                    }
                }
                div.insert(cands[i].cluster, (i, 1));
                nations.insert(nation(i));
            }
            // Fill in order within capacity and maxReplicasPerCluster.
            for &i in &opts {
                if total >= want {
                    break;
                }
                let room = cap(w, &cands[i]);
                let entry = div.entry(cands[i].cluster).or_insert((i, 0));
                let add = room.saturating_sub(entry.1).min(want.saturating_sub(total));
                entry.1 = entry.1.saturating_add(add);
                total = total.saturating_add(add);
            }
            div.retain(|_, (_, n)| *n > 0);
        }
    }
    div
}

fn placed(d: &Division) -> u32 {
    d.values().fold(0u32, |a, (_, n)| a.saturating_add(*n))
}

fn nations(d: &Division, snap: &Snapshot) -> usize {
    d.keys().map(|&c| snap.clusters[c].nation.as_str()).collect::<BTreeSet<_>>().len()
}

fn same(a: &Division, b: &Division, cands: &[Cand]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ca, (ia, na)), (cb, (ib, nb)))| ca == cb && na == nb && cands[*ia].tier == cands[*ib].tier)
}

fn targets(d: &Division, snap: &Snapshot, cands: &[Cand]) -> Vec<String> {
    d.iter().map(|(&c, &(i, _))| format!("{}/{}", snap.clusters[c].name, cands[i].tier)).collect()
}

fn add_s(t: Timestamp, s: u32) -> Timestamp {
    super::filters::plus_s(t, i64::from(s))
}

/// `t` rounded up to a whole second. Status times are stored with second precision; a window that starts at
/// the rounded-up second never ends early once the stored value is read back.
fn ceil_second(t: Timestamp) -> Timestamp {
    let ms = t.as_millisecond();
    Timestamp::from_second(ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)).unwrap_or(t)
}

/// Chooses between the sticky and the ideal division, and explains the result.
pub fn decide(w: &WorkloadModel, snap: &Snapshot, hist: &History, eval: Eval<'_>, now: Timestamp) -> Decision {
    let Eval { cands, verdicts, revoked, current } = eval;
    let frozen = super::fleet_frozen(snap, now);
    let mut failback = None;
    let mut failback_adopted = false;
    let division: Option<Division> = if frozen || w.invalid.is_some() {
        None
    } else {
        let kept = kept(w, &cands);
        // Tolerated and held placements are never moved for a better option: their facts decide.
        let tolerated: Division =
            kept.iter().filter(|(_, (i, _))| cands[*i].riding_out()).map(|(k, v)| (*k, *v)).collect();
        let sticky = divide(w, snap, &cands, kept);
        let ideal = divide(w, snap, &cands, tolerated);
        if same(&sticky, &ideal, &cands) {
            Some(sticky)
        } else if placed(&ideal) > placed(&sticky)
            || (nations(&ideal, snap) >= min_nations(w) && nations(&sticky, snap) < min_nations(w))
        {
            // Not an improvement but a repair: more replicas placed, or the spread restored.
            Some(ideal)
        } else {
            let t = targets(&ideal, snap, &cands);
            let since = hist.failback.as_ref().filter(|p| p.targets == t).map_or(ceil_second(now), |p| p.since);
            if add_s(since, w.failover.failback_after_seconds) <= now {
                failback_adopted = true;
                Some(ideal)
            } else {
                failback = Some(PendingFailback { since, targets: t });
                Some(sticky)
            }
        }
    };

    let placements: Vec<PlacementDecision> = match &division {
        None => current
            .iter()
            .filter(|p| !revoked.iter().any(|r| r.cluster == p.cluster && r.tier == p.tier))
            .map(|p| PlacementDecision {
                cluster: p.cluster.clone(),
                tier: p.tier.clone(),
                replicas: p.replicas,
                since: p.since,
                reason: lasting_reason(&p.reason).unwrap_or("Kept"),
            })
            .collect(),
        Some(d) => {
            let first = cands.iter().find(|c| c.eligible).map(|c| c.cluster);
            d.iter()
                .map(|(&ci, &(i, n))| {
                    let c = &cands[i];
                    let name = &snap.clusters[ci].name;
                    let cur = current.iter().find(|p| &p.cluster == name && p.tier == c.tier);
                    let fresh = if failback_adopted && c.current == 0 {
                        "Failback"
                    } else if Some(ci) == first {
                        "Preferred"
                    } else {
                        "Spill"
                    };
                    // A lasting placement keeps the reason it was made for, so status stays byte-identical.
                    let reason = if c.tolerated {
                        "Tolerated"
                    } else if c.held {
                        "Unverified"
                    } else {
                        cur.and_then(|p| lasting_reason(&p.reason)).unwrap_or(fresh)
                    };
                    PlacementDecision {
                        cluster: name.clone(),
                        tier: c.tier.clone(),
                        replicas: n,
                        since: cur.map_or(now, |p| p.since),
                        reason,
                    }
                })
                .collect()
        }
    };

    let mut next_review = failback.as_ref().map(|p| add_s(p.since, w.failover.failback_after_seconds));
    let mut review = |t: Timestamp| {
        if t > now && next_review.is_none_or(|n| t < n) {
            next_review = Some(t);
        }
    };
    for v in &verdicts {
        if let Some(t) = v.tolerated_until {
            review(t);
        }
    }
    for p in &placements {
        if let Some(i) = snap.cluster_index(&p.cluster) {
            review(snap.clusters[i].clearance.review_by);
        }
    }

    // Why each current slot may lose replicas: the revoking sovereignty reason, else the verdict that rules the
    // candidate out, else capacity, failback, a smaller spec, or a rebalance.
    let mut source_reasons = BTreeMap::new();
    let current_total = current.iter().fold(0u32, |a, p| a.saturating_add(p.replicas));
    for p in current.iter() {
        let v = verdicts
            .binary_search_by(|v| (v.cluster.as_str(), v.tier.as_str()).cmp(&(p.cluster.as_str(), p.tier.as_str())))
            .ok()
            .map(|i| &verdicts[i]);
        let ci = snap.cluster_index(&p.cluster);
        let c = cands.iter().find(|c| Some(c.cluster) == ci && c.tier == p.tier);
        let revoked_for = revoked.iter().find(|r| r.cluster == p.cluster && r.tier == p.tier).map(|r| r.reason);
        let reason = match (revoked_for, v, c) {
            (Some(r), _, _) => r.as_str().to_string(),
            (None, Some(v), None) => v.reason.as_str().to_string(),
            (_, _, Some(c)) if !c.riding_out() && cap(w, c) < p.replicas && c.fit < p.replicas => "Capacity".into(),
            _ if failback_adopted => "Failback".into(),
            _ if w.replicas < current_total => "Spec".into(),
            _ => "Rebalance".into(),
        };
        source_reasons.insert((p.cluster.clone(), p.tier.clone()), reason);
    }

    explain::finish(explain::Outcome {
        w,
        snap,
        current: &current,
        placements,
        verdicts,
        frozen,
        failback,
        next_review,
        source_reasons,
    })
}

/// The reason a lasting placement keeps (`Tolerated` ends with the toleration).
fn lasting_reason(r: &str) -> Option<&'static str> {
    match r {
        "Preferred" => Some("Preferred"),
        "Spill" => Some("Spill"),
        "Failback" => Some("Failback"),
        "Kept" => Some("Kept"),
        _ => None,
    }
}

/// The phase for a workload whose placements are known.
pub fn phase(w: &WorkloadModel, placed: u32, unplaced: u32, spread_met: bool) -> Phase {
    if w.replicas == 0 {
        Phase::Placed
    } else if placed == 0 {
        Phase::Unplaceable
    } else if unplaced > 0 || !spread_met {
        Phase::Degraded
    } else {
        Phase::Placed
    }
}
