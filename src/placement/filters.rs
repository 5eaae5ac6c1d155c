//! The filters of DESIGN.md §4 (plus the member's refusal), in order; the first failure is a candidate's verdict.
//! Access control is in [`super::access`], the link filter in [`super::link`]; reasons and holds in
//! [`super::reasons`].
//!
//! Every fact's time is read as the hub's "now" at most: a heartbeat, link or capacity report dated in the future
//! never makes a fact fresher than one observed just now.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub use super::access::{Expressed, LabelView, acdf, member_recheck, sovereignty};
pub use super::link::link;
use super::model::{ClusterFacts, Request, Settings, WorkloadModel};
pub use super::reasons::{ALL_REASONS, Fail, Filter, Hold, Reason};
use crate::api::{TaintEffect, TolerationOperator};

/// `t`, or `now` if `t` lies in the future.
pub fn at_most(t: Timestamp, now: Timestamp) -> Timestamp {
    t.min(now)
}

/// `t + s` seconds, saturating at the end of time.
pub fn plus_s(t: Timestamp, s: i64) -> Timestamp {
    let ms = t.as_millisecond().saturating_add(s.saturating_mul(1000));
    Timestamp::from_millisecond(ms).unwrap_or(if s < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Whole seconds from `then` to `now` (negative when `then` is later).
pub fn age_s(now: Timestamp, then: Timestamp) -> i64 {
    (now.as_millisecond().saturating_sub(then.as_millisecond())).div_euclid(1000)
}

/// Filter 1: the heartbeat is younger than the grace period. A cluster whose heartbeat went stale rides out its
/// toleration from the moment it went bad (last heartbeat plus grace); one never heard from has nothing to
/// tolerate.
pub fn reachable(c: &ClusterFacts, grace_s: u32, now: Timestamp) -> Result<(), Fail> {
    let Some(hb) = c.heartbeat.map(|h| at_most(h, now)) else {
        return Err(Fail::no(Reason::Unreachable, "no heartbeat ever received: nothing to tolerate".into()));
    };
    if now.as_millisecond().saturating_sub(hb.as_millisecond()) > i64::from(grace_s) * 1000 {
        return Err(Fail {
            reason: Reason::Unreachable,
            message: format!("no heartbeat since {hb} (grace {grace_s}s)"),
            observed_at: Some(hb),
            hold: Hold::Tolerate(Some(plus_s(hb, i64::from(grace_s)))),
        });
    }
    Ok(())
}

/// Filter 2: every NoExecute taint is tolerated, and for new placements every NoSchedule taint too.
pub fn taints(c: &ClusterFacts, w: &WorkloadModel, already_placed: bool) -> Result<(), Fail> {
    for t in &c.taints {
        if t.effect == TaintEffect::NoSchedule && already_placed {
            continue;
        }
        let tolerated = w.placement.tolerations.iter().any(|tol| {
            tol.key == t.key
                && tol.effect.is_none_or(|e| e == t.effect)
                && match tol.operator {
                    TolerationOperator::Exists => true,
                    TolerationOperator::Equal => tol.value == t.value,
                }
        });
        if !tolerated {
            let effect = match t.effect {
                TaintEffect::NoSchedule => "NoSchedule",
                TaintEffect::NoExecute => "NoExecute",
            };
            return Err(Fail::no(Reason::Tainted, format!("untolerated taint {}:{effect}", t.key)));
        }
    }
    Ok(())
}

/// Filter 3: the clearance's accreditation has not expired.
pub fn accredited(c: &ClusterFacts, now: Timestamp) -> Result<(), Fail> {
    if now >= c.clearance.review_by {
        return Err(Fail::no(
            Reason::AccreditationExpired,
            format!("clearance reviewBy {} has passed", c.clearance.review_by),
        ));
    }
    Ok(())
}

/// Filter 5: residency.
pub fn residency(c: &ClusterFacts, w: &WorkloadModel) -> Result<(), Fail> {
    if !w.residency.is_empty() && !w.residency.contains(&c.nation) {
        let mut m = format!("{} is not a residency nation (residency: ", c.nation);
        for (i, n) in w.residency.iter().enumerate() {
            if i > 0 {
                m.push_str(", ");
            }
            m.push_str(n);
        }
        m.push(')');
        return Err(Fail::no(Reason::ResidencyViolation, m));
    }
    Ok(())
}

/// Filter 6, first half: the host accepts workloads of this owner (needs no policy).
pub fn owner_admitted(c: &ClusterFacts, owner: &str) -> Result<(), Fail> {
    if !c.owner_nations.contains("*") && !c.owner_nations.contains(owner) {
        return Err(Fail::no(
            Reason::HostRefused,
            format!("host {} does not accept workloads owned by {owner}", c.nation),
        ));
    }
    Ok(())
}

/// Filter 6: host nation admission, with the classification as the clearance's policy names it.
pub fn host_admission(c: &ClusterFacts, owner: &str, e: &Expressed<'_>) -> Result<(), Fail> {
    owner_admitted(c, owner)?;
    if let Some(max) = &c.max_classification {
        let label_rank = e.policy.rank(&e.classification);
        match e.policy.rank(max) {
            Some(max_rank) if label_rank.is_some_and(|r| r <= max_rank) => {}
            Some(_) => {
                return Err(Fail::no(
                    Reason::HostRefused,
                    format!("host {} accepts at most {max}, label is {}", c.nation, e.classification),
                ));
            }
            None => {
                return Err(Fail::no(
                    Reason::HostRefused,
                    format!("admission.maxClassification {max} is not defined by the policy (fail closed)"),
                ));
            }
        }
    }
    Ok(())
}

/// Filter 7: the member's own answer. `hist.refused` maps a cluster to what its syncer said when it refused the
/// workload's Assignment (the member re-checks every label against its own clearance): the hub's view of a
/// clearance can be wrong, and the member's "no" wins until it accepts again. `hist.unverified` are members that
/// cannot check (their own clearance or policy is unreadable): a missing fact, so what runs there is held and
/// nothing new goes there. `hist.not_ready` are members where a replacement did not become Ready in time.
pub fn member_refusal(c: &ClusterFacts, hist: &super::model::History) -> Result<(), Fail> {
    if let Some(why) = hist.refused.get(&c.name) {
        return Err(Fail::no(Reason::RefusedByMember, format!("{} refused this workload: {why}", c.name)));
    }
    if let Some(why) = hist.unverified.get(&c.name) {
        return Err(Fail::unknown(
            Reason::RefusedByMember,
            format!("{} cannot verify this workload (what runs there is kept, nothing new goes there): {why}", c.name),
        ));
    }
    if let Some(why) = hist.not_ready.get(&c.name) {
        return Err(Fail::no(Reason::NotReadyOnMember, format!("{}: {why}", c.name)));
    }
    Ok(())
}

/// Filter 8: the cluster selector.
pub fn selector(c: &ClusterFacts, sel: Option<&LabelSelector>) -> Result<(), Fail> {
    let Some(sel) = sel else { return Ok(()) };
    for (k, v) in sel.match_labels.iter().flatten() {
        if c.labels.get(k) != Some(v) {
            return Err(Fail::no(Reason::NotSelected, format!("label {k}={v} does not match")));
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let value = c.labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(Fail::no(
                    Reason::NotSelected,
                    format!("unknown selector operator {other:?} (fail closed)"),
                ));
            }
        };
        if !ok {
            return Err(Fail::no(Reason::NotSelected, format!("expression {} {} does not match", e.key, e.operator)));
        }
    }
    Ok(())
}

/// Filter 9: the tier is allowed by the workload and offered by the cluster.
pub fn tier(c: &ClusterFacts, w: &WorkloadModel, tier: &str) -> Result<(), Fail> {
    if !w.placement.tiers.is_empty() && !w.placement.tiers.iter().any(|t| t == tier) {
        return Err(Fail::no(Reason::TierNotAllowed, format!("tier {tier} is not in placement.tiers")));
    }
    if !c.tiers.iter().any(|t| t == tier) {
        return Err(Fail::no(Reason::TierNotAllowed, format!("{} offers no {tier} tier", c.name)));
    }
    Ok(())
}

/// Filter 11: how many replicas fit in the tier's free capacity (plus what this workload already uses there). At
/// least one must fit. `own` is this workload's replicas there and how many of them the member reports ready.
///
/// The report must be fresh: capacity never reported, without `observedAt`, or older than
/// `settings.capacity_stale_seconds` is `CapacityUnknown` (a current placement keeps its replicas, nothing new is
/// placed). A fresh report without the tier says the tier has no nodes. In an overcommitted tier (negative free:
/// its pods request more than its ready nodes offer) the ready replicas keep their place and the unready ones
/// are those that no longer fit: each workload gives up only its own stranded replicas.
pub fn capacity(
    c: &ClusterFacts,
    tier: &str,
    req: Request,
    own: (u32, Option<u32>),
    settings: &Settings,
    now: Timestamp,
) -> Result<u32, Fail> {
    let observed = c.capacity_observed_at.map(|t| at_most(t, now));
    let Some(at) = observed else {
        let why = if c.free.is_empty() { "no capacity reported" } else { "capacity reported without observedAt" };
        return Err(Fail::unknown(Reason::CapacityUnknown, format!("{why} by {}: its age is unknown", c.name)));
    };
    if age_s(now, at) > i64::from(settings.capacity_stale_seconds) {
        return Err(Fail {
            reason: Reason::CapacityUnknown,
            message: format!(
                "capacity reported at {at} is older than the capacity bound ({}s)",
                settings.capacity_stale_seconds
            ),
            observed_at: Some(at),
            hold: Hold::Keep,
        });
    }
    let Some(free) = c.free.get(tier) else {
        return Err(Fail::no(
            Reason::InsufficientPods,
            format!("tier {tier} has no nodes in {}'s capacity report", c.name),
        ));
    };
    let (own_replicas, ready) = own;
    let checks = [
        (req.cpu_milli, free.cpu_milli, Reason::InsufficientCpu, "cpu"),
        (req.memory_bytes, free.memory_bytes, Reason::InsufficientMemory, "memory"),
        (1, free.pods, Reason::InsufficientPods, "pods"),
    ];
    let over = checks.iter().find(|(need, have, _, _)| *need > 0 && have.is_some_and(|h| h < 0));
    if let (Some((_, _, reason, name)), Some(ready)) = (over, ready)
        && own_replicas > 0
    {
        let keep = ready.min(own_replicas);
        if keep == 0 {
            return Err(Fail::no(
                *reason,
                format!("tier {tier} is short of {name} and none of these replicas is ready"),
            ));
        }
        return Ok(keep);
    }
    let own = i128::from(own_replicas);
    let mut fit = i128::MAX;
    let mut short = None;
    for (need, have, reason, name) in checks {
        if need == 0 {
            continue;
        }
        let Some(have) = have else {
            return Err(Fail::unknown(Reason::CapacityUnknown, format!("free {name} unknown in tier {tier}")));
        };
        let (need, have) = (i128::from(need), i128::from(have));
        let n = (have + own * need).max(0) / need;
        fit = fit.min(n);
        if n == 0 && short.is_none() {
            short = Some((reason, name));
        }
    }
    if let Some((reason, name)) = short {
        return Err(Fail::no(reason, format!("free {name} in tier {tier} fits no replica")));
    }
    Ok(u32::try_from(fit).unwrap_or(u32::MAX))
}
