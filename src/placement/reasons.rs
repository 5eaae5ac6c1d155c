//! Filters and verdict reasons: what the engine says about a candidate, and what a current placement on a
//! failing candidate may do ([`Hold`]).

use jiff::Timestamp;

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
    /// The member's own answer: it refused this workload's Assignment, cannot verify it, or a replacement there
    /// did not become Ready.
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
    /// A current placement names a cluster that has no MemberCluster: nothing can be evaluated (fail closed).
    ClusterUnknown,
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
    /// A replacement on this member was not Ready in time, or failed there, while another copy runs: the cluster
    /// is passed over until its backoff ends (the running copy is never given up for it).
    NotReadyOnMember,
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
            Reason::ClusterUnknown => "ClusterUnknown",
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
            Reason::NotReadyOnMember => "NotReadyOnMember",
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
            Reason::ClusterUnknown | Reason::Unreachable => Filter::Reachable,
            Reason::Tainted => Filter::Taints,
            Reason::AccreditationExpired => Filter::Accredited,
            Reason::PolicyMismatch
            | Reason::PolicyUnknown
            | Reason::LabelInvalid
            | Reason::ClassificationNotCleared
            | Reason::NotReleasable => Filter::Sovereignty,
            Reason::ResidencyViolation => Filter::Residency,
            Reason::HostRefused => Filter::HostAdmission,
            Reason::RefusedByMember | Reason::NotReadyOnMember => Filter::MemberRefusal,
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

    /// Reasons of the sovereignty filters (DESIGN.md §4): when one of them says no, a current placement is revoked
    /// at once, in every path (normal, fleet freeze, invalid spec). `PolicyUnknown` is among them, but a policy
    /// that is missing or contradictory holds what runs instead ([`Hold::Keep`]); see [`Fail::hold`].
    pub fn is_sovereignty(self) -> bool {
        matches!(
            self,
            Reason::ClusterUnknown
                | Reason::Tainted
                | Reason::AccreditationExpired
                | Reason::PolicyMismatch
                | Reason::PolicyUnknown
                | Reason::LabelInvalid
                | Reason::ClassificationNotCleared
                | Reason::NotReleasable
                | Reason::ResidencyViolation
                | Reason::HostRefused
                | Reason::RefusedByMember
        )
    }
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_REASONS.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown reason {s:?}"))
    }
}

/// Every reason, in filter order.
pub const ALL_REASONS: [Reason; 21] = [
    Reason::Eligible,
    Reason::ClusterUnknown,
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
    Reason::NotReadyOnMember,
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

/// What a current placement on a candidate that fails a filter may do (DESIGN.md §4, "fail closed, and lose
/// nothing").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Nothing: the fact says no, or there is no fact to tolerate (a cluster never heard from). The placement goes
    /// (during a fleet freeze only when a sovereignty filter failed).
    Go,
    /// A network fact went bad: the placement keeps its replicas for `tolerationSeconds` from the moment the fact
    /// went bad (`Some`: the last heartbeat plus grace, a link's `observedAt` plus `staleAfterSeconds`; `None`: the
    /// fact is current and bad, so from the moment the engine first saw it so).
    Tolerate(Option<Timestamp>),
    /// A fact is missing, stale or contradictory (a SecurityPolicy, a capacity report): no new placement and no
    /// growth, but the placement keeps its replicas until the fact returns or another filter decides.
    Keep,
}

impl Hold {
    /// The stricter of two holds (`Go` over `Tolerate` over `Keep`; of two tolerations the earlier start).
    pub fn and(self, other: Hold) -> Hold {
        match (self, other) {
            (Hold::Go, _) | (_, Hold::Go) => Hold::Go,
            (Hold::Tolerate(a), Hold::Tolerate(b)) => Hold::Tolerate(match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }),
            (t @ Hold::Tolerate(_), Hold::Keep) | (Hold::Keep, t @ Hold::Tolerate(_)) => t,
            (Hold::Keep, Hold::Keep) => Hold::Keep,
        }
    }
}

/// A failed filter: reason, message, the observation time of the deciding fact when it is frozen, and what a
/// current placement may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    /// Reason.
    pub reason: Reason,
    /// Detail naming the fact.
    pub message: String,
    /// When the deciding fact was observed, if it no longer updates (last heartbeat, stale link).
    pub observed_at: Option<Timestamp>,
    /// What a current placement may do.
    pub hold: Hold,
}

impl Fail {
    /// A fact that says no: a current placement goes.
    pub fn no(reason: Reason, message: String) -> Fail {
        Fail { reason, message, observed_at: None, hold: Hold::Go }
    }

    /// A fact that is missing, stale or contradictory: a current placement is held.
    pub fn unknown(reason: Reason, message: String) -> Fail {
        Fail { reason, message, observed_at: None, hold: Hold::Keep }
    }

    /// Whether this failure revokes a current placement at once, in every path.
    pub fn revokes(&self) -> bool {
        self.reason.is_sovereignty() && self.hold == Hold::Go
    }
}
