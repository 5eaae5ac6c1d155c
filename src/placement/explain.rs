//! Explanations: moves, the verdict summary and the phase message.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::divide::phase;
use super::model::{CurrentPlacement, PendingFailback, Snapshot, WorkloadModel};
use super::{Decision, Move, PlacementDecision, Reason, Slot, Verdict};
use crate::api::{Phase, PlacementMode};

/// Everything `finish` needs.
pub struct Outcome<'a> {
    pub w: &'a WorkloadModel,
    pub snap: &'a Snapshot,
    pub current: &'a [CurrentPlacement],
    pub placements: Vec<PlacementDecision>,
    pub verdicts: Vec<Verdict>,
    pub frozen: bool,
    pub failback: Option<PendingFailback>,
    pub next_review: Option<Timestamp>,
    pub source_reasons: BTreeMap<(String, String), String>,
}

/// `N/M clusters eligible: 3 NotReleasable, 1 Unreachable`: a cluster counts as eligible when one of its
/// tiers is; otherwise under the reason of the candidate that got furthest through the filters.
pub fn summary(verdicts: &[Verdict]) -> String {
    // Verdicts are sorted by cluster: one pass groups them.
    let mut per_cluster: Vec<(&str, Option<Reason>)> = Vec::new();
    for v in verdicts {
        match per_cluster.last_mut() {
            Some((c, entry)) if *c == v.cluster => match (*entry, v.eligible) {
                (None, _) => {}
                (_, true) => *entry = None,
                (Some(r), false) => {
                    if v.reason.filter() > r.filter() {
                        *entry = Some(v.reason);
                    }
                }
            },
            _ => per_cluster.push((&v.cluster, if v.eligible { None } else { Some(v.reason) })),
        }
    }
    let eligible = per_cluster.iter().filter(|(_, r)| r.is_none()).count();
    let mut counts: BTreeMap<Reason, usize> = BTreeMap::new();
    for r in per_cluster.iter().filter_map(|(_, r)| *r) {
        *counts.entry(r).or_default() += 1;
    }
    let mut counts: Vec<(Reason, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
    let mut out = format!("{eligible}/{} clusters eligible", per_cluster.len());
    if !counts.is_empty() {
        let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        out.push_str(": ");
        out.push_str(&parts.join(", "));
    }
    out
}

/// Pairs replicas leaving slots with replicas arriving, in slot order.
pub fn moves(
    current: &[CurrentPlacement],
    placements: &[PlacementDecision],
    source_reasons: &BTreeMap<(String, String), String>,
) -> Vec<Move> {
    let mut delta: BTreeMap<Slot, i64> = BTreeMap::new();
    for p in current {
        *delta.entry(Slot { cluster: p.cluster.clone(), tier: p.tier.clone() }).or_default() -= i64::from(p.replicas);
    }
    for p in placements {
        *delta.entry(Slot { cluster: p.cluster.clone(), tier: p.tier.clone() }).or_default() += i64::from(p.replicas);
    }
    let mut sources: Vec<(Slot, u32)> = Vec::new();
    let mut sinks: Vec<(Slot, u32)> = Vec::new();
    for (slot, d) in delta {
        let n = u32::try_from(d.unsigned_abs()).unwrap_or(u32::MAX);
        if d < 0 {
            sources.push((slot, n));
        } else if d > 0 {
            sinks.push((slot, n));
        }
    }
    let mut out = Vec::new();
    let mut sink = sinks.into_iter().peekable();
    let mut sink_left = 0u32;
    let mut sink_slot: Option<Slot> = None;
    for (slot, mut n) in sources {
        let reason = source_reasons
            .get(&(slot.cluster.clone(), slot.tier.clone()))
            .cloned()
            .unwrap_or_else(|| "Rebalance".into());
        while n > 0 {
            if sink_left == 0 {
                match sink.next() {
                    Some((s, m)) => {
                        sink_slot = Some(s);
                        sink_left = m;
                    }
                    None => {
                        sink_slot = None;
                    }
                }
            }
            let Some(to) = sink_slot.clone().filter(|_| sink_left > 0) else {
                out.push(Move { from: Some(slot.clone()), to: None, replicas: n, reason: reason.clone() });
                break;
            };
            let k = n.min(sink_left);
            out.push(Move { from: Some(slot.clone()), to: Some(to), replicas: k, reason: reason.clone() });
            n -= k;
            sink_left -= k;
        }
    }
    if sink_left > 0 {
        out.push(Move { from: None, to: sink_slot, replicas: sink_left, reason: "Placed".into() });
    }
    for (s, m) in sink {
        out.push(Move { from: None, to: Some(s), replicas: m, reason: "Placed".into() });
    }
    out
}

/// `, except what sovereignty revokes (2 from pol-1/core: AccreditationExpired)` when the engine moved nothing
/// else (fleet freeze, invalid spec): every move then is a revocation.
fn revocations(moves: &[Move]) -> String {
    if moves.is_empty() {
        return String::new();
    }
    let list: Vec<String> =
        moves.iter().map(|m| format!("{} from {}: {}", m.replicas, slot(&m.from), m.reason)).collect();
    format!(", except what sovereignty revokes ({})", list.join("; "))
}

fn slot(s: &Option<Slot>) -> String {
    s.as_ref().map_or_else(|| "-".to_string(), |s| format!("{}/{}", s.cluster, s.tier))
}

/// Builds the final decision.
pub fn finish(o: Outcome<'_>) -> Decision {
    let Outcome { w, snap, current, placements, verdicts, frozen, failback, next_review, source_reasons } = o;
    let placed: u32 = placements.iter().fold(0u32, |a, p| a.saturating_add(p.replicas));
    let wanted = match w.placement.mode {
        PlacementMode::Divided => w.replicas,
        PlacementMode::Duplicated => {
            let copies = u32::try_from(placements.len().max(1)).unwrap_or(u32::MAX);
            w.replicas
                .min(w.placement.spread.as_ref().and_then(|s| s.max_replicas_per_cluster).unwrap_or(u32::MAX))
                .saturating_mul(copies)
        }
    };
    let unplaced = wanted.saturating_sub(placed);
    let nations: BTreeSet<&str> = placements
        .iter()
        .filter_map(|p| snap.cluster_index(&p.cluster).map(|i| snap.clusters[i].nation.as_str()))
        .collect();
    let min_nations = w.placement.spread.as_ref().map_or(1, |s| s.min_nations.max(1) as usize);
    // Divided spreads its replicas (it cannot spread over more nations than it has replicas); Duplicated puts a
    // copy in each cluster, so it needs copies in `minNations` nations. Both report an unmet spread alike.
    let reachable_nations = match w.placement.mode {
        PlacementMode::Divided => min_nations.min(w.replicas as usize),
        PlacementMode::Duplicated => min_nations,
    };
    let spread_met = nations.len() >= reachable_nations;
    let summary = summary(&verdicts);
    let moves = moves(current, &placements, &source_reasons);

    let (phase, message) = if frozen {
        let down = verdicts
            .iter()
            .filter(|v| v.reason == Reason::Unreachable)
            .map(|v| v.cluster.as_str())
            .collect::<BTreeSet<_>>()
            .len();
        let mut m =
            format!("fleet freeze: {down}/{} clusters unreachable together; nothing moves", snap.clusters.len());
        m.push_str(&revocations(&moves));
        (Phase::Frozen, m)
    } else if let Some(why) = &w.invalid {
        let mut m = format!("invalid: {why}; placements stay as they are");
        m.push_str(&revocations(&moves));
        (phase(w, placed, unplaced, spread_met), m)
    } else {
        let ph = phase(w, placed, unplaced, spread_met);
        let list: Vec<String> = placements.iter().map(|p| format!("{}/{}={}", p.cluster, p.tier, p.replicas)).collect();
        let mut m = format!("{placed}/{wanted} replicas placed");
        if !list.is_empty() {
            m.push_str(&format!(" ({})", list.join(", ")));
        }
        if !spread_met && placed > 0 {
            m.push_str(&format!("; spread.minNations {min_nations} not met ({} nations)", nations.len()));
        }
        if let Some(f) = &failback {
            m.push_str(&format!("; failback to {} pending since {}", f.targets.join(", "), f.since));
        }
        m.push_str("; ");
        m.push_str(&summary);
        (ph, m)
    };
    Decision {
        phase,
        wanted,
        placements,
        verdicts,
        moves,
        summary,
        message,
        unplaced,
        failback,
        next_review,
        frozen,
        invalid: w.invalid.clone(),
    }
}
