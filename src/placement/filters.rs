//! The eleven filters (DESIGN.md §4 plus the member's refusal), in order. The first failure is a candidate's
//! verdict.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::model::{ClusterFacts, LinkFacts, PolicyEntry, Request, Resources, Snapshot, WorkloadModel};
use crate::api::{CategoryType, ConfidentialityLabel, LinkState, RELEASABLE_TO, TaintEffect, TolerationOperator};

/// The filters, in evaluation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// Heartbeat within grace.
    Reachable,
    /// Taints tolerated.
    Taints,
    /// Accreditation not expired.
    Accredited,
    /// Access control (ACDF): policy, classification, categories.
    Sovereignty,
    /// Residency nations.
    Residency,
    /// Host nation admission.
    HostAdmission,
    /// The member's own re-check (it refused this workload's Assignment).
    MemberRefusal,
    /// clusterSelector.
    Selector,
    /// Allowed and offered tier.
    Tier,
    /// Path from the data source.
    Link,
    /// Free capacity.
    Capacity,
}

impl Filter {
    /// Name, safe as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::Reachable => "Reachable",
            Filter::Taints => "Taints",
            Filter::Accredited => "Accredited",
            Filter::Sovereignty => "Sovereignty",
            Filter::Residency => "Residency",
            Filter::HostAdmission => "HostAdmission",
            Filter::MemberRefusal => "MemberRefusal",
            Filter::Selector => "Selector",
            Filter::Tier => "Tier",
            Filter::Link => "Link",
            Filter::Capacity => "Capacity",
        }
    }
}

/// Verdict reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Reason {
    /// Passed every filter.
    Eligible,
    /// Heartbeat older than the grace period.
    Unreachable,
    /// An untolerated taint.
    Tainted,
    /// Clearance `reviewBy` has passed.
    AccreditationExpired,
    /// Neither the label nor an alternative is under the clearance's policy.
    PolicyMismatch,
    /// No SecurityPolicy (or contradictory ones) for the label's policy.
    PolicyUnknown,
    /// The label uses a classification or category its policy does not define.
    LabelInvalid,
    /// The classification is not in the clearance.
    ClassificationNotCleared,
    /// A Permissive category has no held value, or a Restrictive value is not held.
    NotReleasable,
    /// The cluster's nation is not in `residency`.
    ResidencyViolation,
    /// The host nation does not accept the owner or the classification.
    HostRefused,
    /// The member refused this workload's Assignment (its own clearance, or the Assignment's integrity).
    RefusedByMember,
    /// `clusterSelector` does not match.
    NotSelected,
    /// The tier is not allowed or not offered.
    TierNotAllowed,
    /// The link from the data source is missing, stale, not Up, or too slow.
    LinkInsufficient,
    /// The tier's free capacity is not reported.
    CapacityUnknown,
    /// Not enough free cpu for one replica.
    InsufficientCpu,
    /// Not enough free memory for one replica.
    InsufficientMemory,
    /// No free pod slot.
    InsufficientPods,
}

impl Reason {
    /// CamelCase name, as in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Eligible => "Eligible",
            Reason::Unreachable => "Unreachable",
            Reason::Tainted => "Tainted",
            Reason::AccreditationExpired => "AccreditationExpired",
            Reason::PolicyMismatch => "PolicyMismatch",
            Reason::PolicyUnknown => "PolicyUnknown",
            Reason::LabelInvalid => "LabelInvalid",
            Reason::ClassificationNotCleared => "ClassificationNotCleared",
            Reason::NotReleasable => "NotReleasable",
            Reason::ResidencyViolation => "ResidencyViolation",
            Reason::HostRefused => "HostRefused",
            Reason::RefusedByMember => "RefusedByMember",
            Reason::NotSelected => "NotSelected",
            Reason::TierNotAllowed => "TierNotAllowed",
            Reason::LinkInsufficient => "LinkInsufficient",
            Reason::CapacityUnknown => "CapacityUnknown",
            Reason::InsufficientCpu => "InsufficientCpu",
            Reason::InsufficientMemory => "InsufficientMemory",
            Reason::InsufficientPods => "InsufficientPods",
        }
    }

    /// The filter that gives this reason.
    pub fn filter(self) -> Option<Filter> {
        Some(match self {
            Reason::Eligible => return None,
            Reason::Unreachable => Filter::Reachable,
            Reason::Tainted => Filter::Taints,
            Reason::AccreditationExpired => Filter::Accredited,
            Reason::PolicyMismatch
            | Reason::PolicyUnknown
            | Reason::LabelInvalid
            | Reason::ClassificationNotCleared
            | Reason::NotReleasable => Filter::Sovereignty,
            Reason::ResidencyViolation => Filter::Residency,
            Reason::HostRefused => Filter::HostAdmission,
            Reason::RefusedByMember => Filter::MemberRefusal,
            Reason::NotSelected => Filter::Selector,
            Reason::TierNotAllowed => Filter::Tier,
            Reason::LinkInsufficient => Filter::Link,
            Reason::CapacityUnknown
            | Reason::InsufficientCpu
            | Reason::InsufficientMemory
            | Reason::InsufficientPods => Filter::Capacity,
        })
    }

    /// Failures of the network that existing placements ride out for `tolerationSeconds`.
    pub fn is_transient(self) -> bool {
        matches!(self, Reason::Unreachable | Reason::LinkInsufficient)
    }
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_REASONS.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown reason {s:?}"))
    }
}

/// Every reason, in filter order.
pub const ALL_REASONS: [Reason; 19] = [
    Reason::Eligible,
    Reason::Unreachable,
    Reason::Tainted,
    Reason::AccreditationExpired,
    Reason::PolicyMismatch,
    Reason::PolicyUnknown,
    Reason::LabelInvalid,
    Reason::ClassificationNotCleared,
    Reason::NotReleasable,
    Reason::ResidencyViolation,
    Reason::HostRefused,
    Reason::RefusedByMember,
    Reason::NotSelected,
    Reason::TierNotAllowed,
    Reason::LinkInsufficient,
    Reason::CapacityUnknown,
    Reason::InsufficientCpu,
    Reason::InsufficientMemory,
    Reason::InsufficientPods,
];

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed filter: reason, message, and the observation time of the deciding fact when it is frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    /// Reason.
    pub reason: Reason,
    /// Detail naming the fact.
    pub message: String,
    /// When the deciding fact was observed, if it no longer updates (last heartbeat, stale link).
    pub observed_at: Option<Timestamp>,
}

fn fail(reason: Reason, message: String) -> Fail {
    Fail { reason, message, observed_at: None }
}

fn age_s(now: Timestamp, then: Timestamp) -> i64 {
    (now.as_millisecond() - then.as_millisecond()).div_euclid(1000)
}

/// Filter 1: the heartbeat is younger than the grace period.
pub fn reachable(c: &ClusterFacts, grace_s: u32, now: Timestamp) -> Result<(), Fail> {
    match c.heartbeat {
        None => Err(fail(Reason::Unreachable, "no heartbeat ever received".into())),
        Some(hb) if now.as_millisecond() - hb.as_millisecond() > i64::from(grace_s) * 1000 => Err(Fail {
            reason: Reason::Unreachable,
            message: format!("no heartbeat since {hb} (grace {grace_s}s)"),
            observed_at: Some(hb),
        }),
        Some(_) => Ok(()),
    }
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
            return Err(fail(Reason::Tainted, format!("untolerated taint {}:{effect}", t.key)));
        }
    }
    Ok(())
}

/// Filter 3: the clearance's accreditation has not expired.
pub fn accredited(c: &ClusterFacts, now: Timestamp) -> Result<(), Fail> {
    if now >= c.clearance.review_by {
        return Err(fail(
            Reason::AccreditationExpired,
            format!("clearance reviewBy {} has passed", c.clearance.review_by),
        ));
    }
    Ok(())
}

/// The classification of the label variant that matches the cluster's clearance policy, after filter 4.
pub struct Matched<'a> {
    /// Classification under the clearance's policy.
    pub classification: &'a str,
    /// That policy's ordered classifications.
    pub policy: &'a crate::api::SecurityPolicySpec,
}

/// Filter 4: access control with STANAG 4774 semantics.
pub fn sovereignty<'a>(
    c: &ClusterFacts,
    label: &'a ConfidentialityLabel,
    snap: &'a Snapshot,
) -> Result<Matched<'a>, Fail> {
    let clearance = &c.clearance;
    let Some((classification, categories)) = label.under_policy(&clearance.policy) else {
        return Err(fail(
            Reason::PolicyMismatch,
            format!("label policy {} has no alternative under clearance policy {}", label.policy, clearance.policy),
        ));
    };
    let policy = match snap.policies.get(&clearance.policy) {
        Some(PolicyEntry::Known(p)) => p,
        Some(PolicyEntry::Contradictory(names)) => {
            return Err(fail(
                Reason::PolicyUnknown,
                format!("SecurityPolicies for {} disagree ({})", clearance.policy, names.join(", ")),
            ));
        }
        None => {
            return Err(fail(Reason::PolicyUnknown, format!("no SecurityPolicy with identifier {}", clearance.policy)));
        }
    };
    if policy.rank(classification).is_none() {
        return Err(fail(
            Reason::LabelInvalid,
            format!("classification {classification} is not defined by policy {}", clearance.policy),
        ));
    }
    if !clearance.classifications.contains(classification) {
        return Err(fail(
            Reason::ClassificationNotCleared,
            format!("{classification} is not in the clearance's classifications"),
        ));
    }
    for cat in categories {
        let Some(def) = policy.category(&cat.tag_name) else {
            return Err(fail(
                Reason::LabelInvalid,
                format!("category {:?} is not defined by policy {}", cat.tag_name, clearance.policy),
            ));
        };
        let held = clearance.categories.get(&cat.tag_name);
        let holds = |v: &str| held.is_some_and(|h| h.contains(v)) || (cat.tag_name == RELEASABLE_TO && v == c.nation);
        match def.type_ {
            CategoryType::Informative => {}
            CategoryType::Restrictive => {
                if let Some(missing) = cat.values.iter().find(|v| !holds(v)) {
                    return Err(fail(
                        Reason::NotReleasable,
                        format!("clearance does not hold {} value {missing}", cat.tag_name),
                    ));
                }
            }
            CategoryType::Permissive => {
                if !cat.values.iter().any(|v| holds(v)) {
                    return Err(fail(
                        Reason::NotReleasable,
                        format!("{} [{}] holds none of {}'s values", cat.tag_name, cat.values.join(", "), c.nation),
                    ));
                }
            }
        }
    }
    Ok(Matched { classification, policy })
}

/// Filter 5: residency.
pub fn residency(c: &ClusterFacts, w: &WorkloadModel) -> Result<(), Fail> {
    if !w.residency.is_empty() && !w.residency.contains(&c.nation) {
        return Err(fail(Reason::ResidencyViolation, format!("{} is not a residency nation", c.nation)));
    }
    Ok(())
}

/// Filter 6: host nation admission.
pub fn host_admission(c: &ClusterFacts, owner: &str, m: &Matched<'_>) -> Result<(), Fail> {
    if !c.owner_nations.contains("*") && !c.owner_nations.contains(owner) {
        return Err(fail(Reason::HostRefused, format!("host {} does not accept workloads owned by {owner}", c.nation)));
    }
    if let Some(max) = &c.max_classification {
        let label_rank = m.policy.rank(m.classification);
        match m.policy.rank(max) {
            Some(max_rank) if label_rank.is_some_and(|r| r <= max_rank) => {}
            Some(_) => {
                return Err(fail(
                    Reason::HostRefused,
                    format!("host {} accepts at most {max}, label is {}", c.nation, m.classification),
                ));
            }
            None => {
                return Err(fail(
                    Reason::HostRefused,
                    format!("admission.maxClassification {max} is not defined by the policy (fail closed)"),
                ));
            }
        }
    }
    Ok(())
}

/// Filter 7: the member has not refused this workload. `refused` maps a cluster to what its syncer said when it
/// refused the workload's Assignment (the member re-checks every label against its own clearance). The hub's
/// view of a clearance can be wrong; the member's answer wins until it accepts again (fail closed).
pub fn member_refusal(c: &ClusterFacts, refused: &std::collections::BTreeMap<String, String>) -> Result<(), Fail> {
    match refused.get(&c.name) {
        Some(why) => Err(fail(Reason::RefusedByMember, format!("{} refused this workload: {why}", c.name))),
        None => Ok(()),
    }
}

/// Filter 8: the cluster selector.
pub fn selector(c: &ClusterFacts, sel: Option<&LabelSelector>) -> Result<(), Fail> {
    let Some(sel) = sel else { return Ok(()) };
    for (k, v) in sel.match_labels.iter().flatten() {
        if c.labels.get(k) != Some(v) {
            return Err(fail(Reason::NotSelected, format!("label {k}={v} does not match")));
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
                return Err(fail(Reason::NotSelected, format!("unknown selector operator {other:?} (fail closed)")));
            }
        };
        if !ok {
            return Err(fail(Reason::NotSelected, format!("expression {} {} does not match", e.key, e.operator)));
        }
    }
    Ok(())
}

/// Filter 9: the tier is allowed by the workload and offered by the cluster.
pub fn tier(c: &ClusterFacts, w: &WorkloadModel, tier: &str) -> Result<(), Fail> {
    if !w.placement.tiers.is_empty() && !w.placement.tiers.iter().any(|t| t == tier) {
        return Err(fail(Reason::TierNotAllowed, format!("tier {tier} is not in placement.tiers")));
    }
    if !c.tiers.iter().any(|t| t == tier) {
        return Err(fail(Reason::TierNotAllowed, format!("{} offers no {tier} tier", c.name)));
    }
    Ok(())
}

/// Filter 10: the path from the data source meets the workload's needs with fresh facts.
/// `source` is the data source's cluster index (`Some(None)` when the source is not a known cluster).
/// Returns the RTT used for scoring (0 at the source).
pub fn link(
    ci: usize,
    w: &WorkloadModel,
    snap: &Snapshot,
    source: Option<Option<usize>>,
    now: Timestamp,
) -> Result<u32, Fail> {
    let (Some(ds), Some(source)) = (&w.placement.data_source, source) else { return Ok(0) };
    let Some(src) = source else {
        return Err(fail(
            Reason::LinkInsufficient,
            format!("data source cluster {} is not a MemberCluster", ds.cluster),
        ));
    };
    if src == ci {
        return Ok(0);
    }
    let Some(((from, to), l)) = snap.link_between(src, ci) else {
        let name = format!("{}.{}", ds.cluster, snap.clusters[ci].name);
        return Err(fail(Reason::LinkInsufficient, format!("no ClusterLink {name} (or reverse)")));
    };
    check_link(l, from, to, ds.max_rtt_ms, ds.min_bandwidth_mbps, now)
}

fn check_link(
    l: &LinkFacts,
    from: &str,
    to: &str,
    max_rtt: Option<u32>,
    min_bw: Option<u32>,
    now: Timestamp,
) -> Result<u32, Fail> {
    let Some(at) = l.observed_at else {
        return Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} has never been measured")));
    };
    let age = age_s(now, at);
    if age > i64::from(l.stale_after_seconds) {
        return Err(Fail {
            reason: Reason::LinkInsufficient,
            message: format!(
                "link {from}.{to} facts from {at} are stale (staleAfterSeconds {})",
                l.stale_after_seconds
            ),
            observed_at: Some(at),
        });
    }
    if l.state != LinkState::Up {
        return Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} is {:?}", l.state)));
    }
    let rtt = match (l.rtt_ms, max_rtt) {
        (Some(r), Some(max)) if r > max => {
            return Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} rtt {r}ms > maxRttMs {max}")));
        }
        (None, Some(_)) => return Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} rtt unknown"))),
        (r, _) => r.unwrap_or(0),
    };
    match (l.bandwidth_mbps, min_bw) {
        (Some(b), Some(min)) if b < min => {
            Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} bandwidth {b}Mbps < minBandwidthMbps {min}")))
        }
        (None, Some(_)) => Err(fail(Reason::LinkInsufficient, format!("link {from}.{to} bandwidth unknown"))),
        _ => Ok(rtt),
    }
}

/// Filter 11: how many replicas fit in the tier's free capacity (plus what this workload already uses
/// there). At least one must fit. `own` is this workload's replicas there and how many of them the member
/// reports ready. In an overcommitted tier (negative free: its pods request more than its ready nodes offer)
/// the ready replicas keep their place and the unready ones are those that no longer fit: each workload gives
/// up only its own stranded replicas, instead of every workload in the tier moving the whole shortfall.
pub fn capacity(free: Option<&Resources>, req: Request, own: (u32, Option<u32>), tier: &str) -> Result<u32, Fail> {
    let Some(free) = free else {
        return Err(fail(Reason::CapacityUnknown, format!("no capacity reported for tier {tier}")));
    };
    let (own_replicas, ready) = own;
    let over = [
        (req.cpu_milli, free.cpu_milli, Reason::InsufficientCpu, "cpu"),
        (req.memory_bytes, free.memory_bytes, Reason::InsufficientMemory, "memory"),
        (1, free.pods, Reason::InsufficientPods, "pods"),
    ]
    .into_iter()
    .find(|(need, have, _, _)| *need > 0 && have.is_some_and(|h| h < 0));
    if let (Some((_, _, reason, name)), Some(ready)) = (over, ready)
        && own_replicas > 0
    {
        let keep = ready.min(own_replicas);
        if keep == 0 {
            return Err(fail(reason, format!("tier {tier} is short of {name} and none of these replicas is ready")));
        }
        return Ok(keep);
    }
    let own = i64::from(own_replicas);
    let mut fit = i64::MAX;
    let checks = [
        (req.cpu_milli, free.cpu_milli, Reason::InsufficientCpu, "cpu"),
        (req.memory_bytes, free.memory_bytes, Reason::InsufficientMemory, "memory"),
        (1, free.pods, Reason::InsufficientPods, "pods"),
    ];
    let mut short = None;
    for (need, have, reason, name) in checks {
        if need == 0 {
            continue;
        }
        let Some(have) = have else {
            return Err(fail(Reason::CapacityUnknown, format!("free {name} unknown in tier {tier}")));
        };
        let n = (have + own * need).max(0) / need;
        if n < fit {
            fit = n;
        }
        if n == 0 && short.is_none() {
            short = Some((reason, name));
        }
    }
    if let Some((reason, name)) = short {
        return Err(fail(reason, format!("free {name} in tier {tier} fits no replica")));
    }
    Ok(u32::try_from(fit).unwrap_or(u32::MAX))
}

/// The member's own re-check of an Assignment (zero trust: the member does not trust the hub): accreditation,
/// access control and host admission against the member's clearance.
pub fn member_recheck(
    c: &ClusterFacts,
    label: &ConfidentialityLabel,
    owner: &str,
    snap: &Snapshot,
    now: Timestamp,
) -> Result<(), Fail> {
    accredited(c, now)?;
    let m = sovereignty(c, label, snap)?;
    host_admission(c, owner, &m)
}
