//! The engine's inputs: a snapshot of clusters, links and policies, and one workload, pre-parsed once
//! so that deciding is cheap. Built from the CRD objects; no client, no clock.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::quantity::{parse_milli, parse_signed_milli, parse_signed_units, parse_units};
use crate::api::{
    ClusterLink, ClusterTaint, ConfidentialityLabel, Failover, LinkState, MemberCluster, MissionWorkload, Placement,
    ResourceAmounts, SecurityPolicy, SecurityPolicySpec,
};

/// cpu (millicores), memory (bytes) and pods. `None` is an unknown amount (fails closed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu_milli: Option<i64>,
    /// Bytes.
    pub memory_bytes: Option<i64>,
    /// Pod slots.
    pub pods: Option<i64>,
}

impl Resources {
    /// Parses reported amounts; a missing or malformed amount is unknown. Free amounts are negative when the
    /// tier is overcommitted (its pods request more than its ready nodes offer).
    pub fn from_amounts(a: &ResourceAmounts) -> Self {
        Resources {
            cpu_milli: a.cpu.as_deref().and_then(parse_signed_milli),
            memory_bytes: a.memory.as_deref().and_then(parse_signed_units),
            pods: a.pods.as_deref().and_then(parse_signed_units),
        }
    }
}

/// A replica's requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Millicores per replica.
    pub cpu_milli: i64,
    /// Bytes per replica.
    pub memory_bytes: i64,
}

/// The clearance of a cluster, with category values as sets.
#[derive(Clone, Debug, PartialEq)]
pub struct ClearanceFacts {
    /// Policy identifier.
    pub policy: String,
    /// Cleared classifications.
    pub classifications: BTreeSet<String>,
    /// Held values per category tag.
    pub categories: BTreeMap<String, BTreeSet<String>>,
    /// Accreditation expiry.
    pub review_by: Timestamp,
    /// Why the clearance cannot be trusted (a category listed twice, which the API server refuses): the cluster
    /// is then not eligible, and what runs there is held (contradictory facts fail closed, and lose nothing).
    pub defect: Option<String>,
}

/// Everything the engine knows about one member cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterFacts {
    /// MemberCluster name.
    pub name: String,
    /// Host nation.
    pub nation: String,
    /// MemberCluster labels (for `clusterSelector`).
    pub labels: BTreeMap<String, String>,
    /// Clearance.
    pub clearance: ClearanceFacts,
    /// Owners the host accepts; `*` accepts all.
    pub owner_nations: BTreeSet<String>,
    /// Highest classification the host accepts.
    pub max_classification: Option<String>,
    /// Tiers offered, in the cluster's order.
    pub tiers: Vec<String>,
    /// Cluster taints.
    pub taints: Vec<ClusterTaint>,
    /// Last heartbeat; `None` = never seen (unreachable).
    pub heartbeat: Option<Timestamp>,
    /// Free capacity per tier, as reported (it includes the pods of workloads already placed there).
    pub free: BTreeMap<String, Resources>,
    /// When the capacity was reported (`status.observedAt`); `None`: never, or its age is unknown.
    pub capacity_observed_at: Option<Timestamp>,
}

impl ClusterFacts {
    /// Facts from a MemberCluster object. `heartbeat` comes from the heartbeat Lease (controller) or the
    /// status (planner).
    pub fn from_crd(mc: &MemberCluster, heartbeat: Option<Timestamp>) -> Self {
        let spec = &mc.spec;
        let status = mc.status.clone().unwrap_or_default();
        let mut tags: Vec<&str> = spec.clearance.categories.iter().map(|c| c.tag_name.as_str()).collect();
        tags.sort_unstable();
        let defect = tags
            .windows(2)
            .find(|w| w[0] == w[1])
            .map(|w| format!("spec.clearance.categories lists {:?} more than once", w[0]));
        ClusterFacts {
            name: mc.metadata.name.clone().unwrap_or_default(),
            nation: spec.nation.clone(),
            labels: mc.metadata.labels.clone().unwrap_or_default(),
            clearance: ClearanceFacts {
                policy: spec.clearance.policy.clone(),
                classifications: spec.clearance.classifications.iter().cloned().collect(),
                categories: spec
                    .clearance
                    .categories
                    .iter()
                    .map(|c| (c.tag_name.clone(), c.values.iter().cloned().collect()))
                    .collect(),
                review_by: spec.clearance.review_by.0,
                defect,
            },
            owner_nations: spec.admission.owner_nations.iter().cloned().collect(),
            max_classification: spec.admission.max_classification.clone(),
            tiers: spec.tiers.clone(),
            taints: spec.taints.clone(),
            heartbeat,
            free: status
                .capacity
                .iter()
                .map(|(tier, cap)| (tier.clone(), Resources::from_amounts(&cap.free)))
                .collect(),
            capacity_observed_at: status.observed_at.map(|t| t.0),
        }
    }
}

/// Measured facts of one link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkFacts {
    /// State.
    pub state: LinkState,
    /// Round-trip time.
    pub rtt_ms: Option<u32>,
    /// Bandwidth.
    pub bandwidth_mbps: Option<u32>,
    /// Observation time; `None` = never measured.
    pub observed_at: Option<Timestamp>,
    /// Facts older than this are unknown.
    pub stale_after_seconds: u32,
}

impl LinkFacts {
    /// Facts from a ClusterLink object.
    pub fn from_crd(link: &ClusterLink) -> Self {
        let status = link.status.clone().unwrap_or_default();
        LinkFacts {
            state: status.state,
            rtt_ms: status.rtt_ms,
            bandwidth_mbps: status.bandwidth_mbps,
            observed_at: status.observed_at.map(|t| t.0),
            stale_after_seconds: link.spec.stale_after_seconds,
        }
    }
}

/// A policy as known to the engine: its spec, or why it cannot be trusted.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyEntry {
    /// One SecurityPolicy with this identifier.
    Known(SecurityPolicySpec),
    /// Several SecurityPolicies with this identifier disagree (fail closed).
    Contradictory(Vec<String>),
    /// The SecurityPolicy holds what the API server refuses (a classification listed twice, ...): never trusted.
    Invalid {
        /// Its name.
        name: String,
        /// What is wrong, naming each field.
        problems: Vec<String>,
    },
}

/// Engine settings that are not per workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A heartbeat older than this makes the cluster unreachable.
    pub cluster_grace_seconds: u32,
    /// A capacity report older than this is unknown (`CapacityUnknown`): three capacity intervals by default.
    pub capacity_stale_seconds: u32,
}

/// Default of `--capacity-stale`: three of the syncers' default 10 s capacity intervals.
pub const DEFAULT_CAPACITY_STALE_SECONDS: u32 = 30;

impl Default for Settings {
    fn default() -> Self {
        Settings { cluster_grace_seconds: 15, capacity_stale_seconds: DEFAULT_CAPACITY_STALE_SECONDS }
    }
}

/// The federation as the engine sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Policies by identifier.
    pub policies: BTreeMap<String, PolicyEntry>,
    /// Clusters, sorted by name.
    pub clusters: Vec<ClusterFacts>,
    /// Links by (from, to).
    pub links: BTreeMap<(String, String), LinkFacts>,
    /// The key of `links` for each pair of cluster indexes, in both directions (`from → to` wins).
    pub link_index: std::collections::HashMap<(usize, usize), (String, String)>,
    /// Settings.
    pub settings: Settings,
}

impl Snapshot {
    /// Builds a snapshot; clusters are sorted by name so the input order never matters.
    pub fn new(
        policies: &[SecurityPolicy],
        mut clusters: Vec<ClusterFacts>,
        links: &[ClusterLink],
        settings: Settings,
    ) -> Self {
        // Per identifier: an invalid policy is never trusted; several that disagree are contradictory. Decided
        // after reading them all, so the order of the inputs never matters.
        let mut grouped: BTreeMap<String, Vec<(String, &SecurityPolicySpec)>> = BTreeMap::new();
        for p in policies {
            let name = p.metadata.name.clone().unwrap_or_default();
            grouped.entry(p.spec.policy_identifier.clone()).or_default().push((name, &p.spec));
        }
        let mut by_id: BTreeMap<String, PolicyEntry> = BTreeMap::new();
        for (id, mut list) in grouped {
            list.sort_by(|a, b| a.0.cmp(&b.0));
            let invalid = list.iter().find_map(|(name, spec)| {
                let problems = spec.duplicates();
                (!problems.is_empty()).then(|| PolicyEntry::Invalid { name: name.clone(), problems })
            });
            let entry = match invalid {
                Some(e) => e,
                None if list.windows(2).all(|w| w[0].1 == w[1].1) => PolicyEntry::Known(list[0].1.clone()),
                None => PolicyEntry::Contradictory(list.into_iter().map(|(n, _)| n).collect()),
            };
            by_id.insert(id, entry);
        }
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let links: BTreeMap<(String, String), LinkFacts> =
            links.iter().map(|l| ((l.spec.from.clone(), l.spec.to.clone()), LinkFacts::from_crd(l))).collect();
        let mut snap = Snapshot { policies: by_id, clusters, links, link_index: Default::default(), settings };
        let mut index = std::collections::HashMap::new();
        for (from, to) in snap.links.keys() {
            if let (Some(a), Some(b)) = (snap.cluster_index(from), snap.cluster_index(to)) {
                index.insert((a, b), (from.clone(), to.clone()));
                index.entry((b, a)).or_insert_with(|| (from.clone(), to.clone()));
            }
        }
        snap.link_index = index;
        snap
    }

    /// The link between two clusters: `from → to`, falling back to `to → from`.
    pub fn link(&self, from: &str, to: &str) -> Option<&LinkFacts> {
        self.links
            .get(&(from.to_string(), to.to_string()))
            .or_else(|| self.links.get(&(to.to_string(), from.to_string())))
    }

    /// The link between two clusters by index (`from → to`, falling back to `to → from`), with its key.
    pub fn link_between(&self, from: usize, to: usize) -> Option<(&(String, String), &LinkFacts)> {
        let key = self.link_index.get(&(from, to))?;
        Some((key, self.links.get(key)?))
    }

    /// Index of a cluster by name.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.binary_search_by(|c| c.name.as_str().cmp(name)).ok()
    }
}

/// One workload as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadModel {
    /// `namespace/name`.
    pub key: String,
    /// Owner nation.
    pub owner: String,
    /// Label.
    pub label: ConfidentialityLabel,
    /// Residency nations (empty = any).
    pub residency: BTreeSet<String>,
    /// Desired replicas.
    pub replicas: u32,
    /// Placement rules.
    pub placement: Placement,
    /// Failover rules.
    pub failover: Failover,
    /// Requests of one replica.
    pub request: Request,
    /// Why the template is invalid, naming the field.
    pub invalid: Option<String>,
    /// Preferred nations, defaulting to the owner.
    pub preferred_nations: Vec<String>,
    /// Parsed cluster selector.
    pub selector: Option<LabelSelector>,
}

impl WorkloadModel {
    /// Model of a MissionWorkload. A template that is not a valid PodSpec gives `invalid`.
    pub fn from_crd(mw: &MissionWorkload) -> Self {
        let spec = &mw.spec;
        let key = format!(
            "{}/{}",
            mw.metadata.namespace.clone().unwrap_or_default(),
            mw.metadata.name.clone().unwrap_or_default()
        );
        let (request, invalid) = match pod_requests(&spec.template.spec) {
            Ok(r) => (r, None),
            Err(e) => (Request::default(), Some(e)),
        };
        let preferred_nations = if spec.placement.preferred_nations.is_empty() {
            vec![spec.owner.clone()]
        } else {
            spec.placement.preferred_nations.clone()
        };
        WorkloadModel {
            key,
            owner: spec.owner.clone(),
            label: spec.confidentiality.clone(),
            residency: spec.residency.iter().cloned().collect(),
            replicas: u32::try_from(spec.replicas.max(0)).unwrap_or(0),
            placement: spec.placement.clone(),
            failover: spec.failover.clone(),
            request,
            invalid,
            preferred_nations,
            selector: spec.placement.cluster_selector.clone(),
        }
    }
}

/// The requests of one replica of a pod template: the sum over containers (a limit stands in for a missing
/// request, as in Kubernetes), or the largest init container if that is larger.
pub fn pod_requests(spec: &serde_json::Value) -> Result<Request, String> {
    let pod: PodSpec =
        serde_json::from_value(spec.clone()).map_err(|e| format!("spec.template.spec is not a valid PodSpec: {e}"))?;
    if pod.containers.is_empty() {
        return Err("spec.template.spec.containers: at least one container is required".into());
    }
    let amount = |path: &str, q: Option<&String>, milli: bool| -> Result<i64, String> {
        match q {
            None => Ok(0),
            Some(s) => {
                let v = if milli { parse_milli(s) } else { parse_units(s) };
                v.ok_or_else(|| format!("{path}: invalid quantity {s:?}"))
            }
        }
    };
    let container = |kind: &str, i: usize, c: &k8s_openapi::api::core::v1::Container| -> Result<Request, String> {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let pick = |name: &str| requests.get(name).or_else(|| limits.get(name)).map(|q| q.0.clone());
        let base = format!("spec.template.spec.{kind}[{i}].resources.requests");
        Ok(Request {
            cpu_milli: amount(&format!("{base}.cpu"), pick("cpu").as_ref(), true)?,
            memory_bytes: amount(&format!("{base}.memory"), pick("memory").as_ref(), false)?,
        })
    };
    let mut sum = Request::default();
    for (i, c) in pod.containers.iter().enumerate() {
        let r = container("containers", i, c)?;
        let overflow = |name: &str| {
            format!(
                "spec.template.spec.containers[{i}].resources.requests.{name}: the containers' {name} requests \
                 add up beyond what can be counted"
            )
        };
        sum.cpu_milli = sum.cpu_milli.checked_add(r.cpu_milli).ok_or_else(|| overflow("cpu"))?;
        sum.memory_bytes = sum.memory_bytes.checked_add(r.memory_bytes).ok_or_else(|| overflow("memory"))?;
    }
    for (i, c) in pod.init_containers.iter().flatten().enumerate() {
        let r = container("initContainers", i, c)?;
        sum.cpu_milli = sum.cpu_milli.max(r.cpu_milli);
        sum.memory_bytes = sum.memory_bytes.max(r.memory_bytes);
    }
    Ok(sum)
}

/// A placement the workload has now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentPlacement {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// Replicas.
    pub replicas: u32,
    /// When it started.
    pub since: Timestamp,
    /// Why it was made (kept while the placement lasts).
    pub reason: String,
    /// Replicas the member reports ready there (`None`: not known, as in the planner). When the tier is
    /// overcommitted, only these keep their place: the unready ones are the replicas that no longer fit.
    pub ready: Option<u32>,
}

/// A failback the engine is waiting to make: the better set of (cluster, tier) and since when it has
/// been continuously available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFailback {
    /// Since when.
    pub since: Timestamp,
    /// `cluster/tier` of the better placement, sorted.
    pub targets: Vec<String>,
}

/// What the engine decided before, fed back in (from status or the planner's memory).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Current placements.
    pub placements: Vec<CurrentPlacement>,
    /// Previous verdicts (for `since`).
    pub verdicts: Vec<super::Verdict>,
    /// Pending failback.
    pub failback: Option<PendingFailback>,
    /// Clusters whose member refused this workload's Assignment, with what the member said. Not kept in
    /// status: the controller reads it from the refused Assignments, which stay until the member accepts.
    pub refused: BTreeMap<String, String>,
    /// Clusters whose member cannot verify this workload's Assignment (its own clearance or policy is unreadable):
    /// what runs there is held, nothing new is placed there. Read from the Assignments, like `refused`.
    pub unverified: BTreeMap<String, String>,
    /// Clusters passed over for this workload while a backoff runs: a replacement there was not Ready in time, or
    /// failed, while another copy ran (from `status.backoff` and the Assignments).
    pub not_ready: BTreeMap<String, String>,
}

impl History {
    /// The engine's history from a workload's status (status is the controller's only memory). Verdicts
    /// whose reason or time cannot be read are left out (their `since` restarts).
    pub fn from_status(status: Option<&crate::api::MissionWorkloadStatus>) -> History {
        let Some(s) = status else { return History::default() };
        History {
            placements: s
                .placements
                .iter()
                .map(|p| CurrentPlacement {
                    cluster: p.cluster.clone(),
                    tier: p.tier.clone(),
                    replicas: p.replicas,
                    since: p.since.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0),
                    reason: p.reason.clone(),
                    ready: Some(p.ready_replicas),
                })
                .collect(),
            verdicts: s
                .verdicts
                .iter()
                .filter_map(|v| {
                    Some(super::Verdict {
                        cluster: v.cluster.clone(),
                        tier: v.tier.clone(),
                        eligible: v.eligible,
                        reason: v.reason.parse().ok()?,
                        message: v.message.clone(),
                        since: v.since.as_ref()?.0,
                        observed_at: v.observed_at.as_ref().map(|t| t.0),
                        tolerated_until: None,
                        held: false,
                    })
                })
                .collect(),
            failback: s.failback.as_ref().map(|f| PendingFailback { since: f.since.0, targets: f.targets.clone() }),
            refused: BTreeMap::new(),
            unverified: BTreeMap::new(),
            not_ready: BTreeMap::new(),
        }
    }
}

/// The reported state of a link, for convenience in tests and the planner.
pub fn link_up(rtt_ms: u32, bandwidth_mbps: u32, observed_at: Timestamp) -> LinkFacts {
    LinkFacts {
        state: LinkState::Up,
        rtt_ms: Some(rtt_ms),
        bandwidth_mbps: Some(bandwidth_mbps),
        observed_at: Some(observed_at),
        stale_after_seconds: 60,
    }
}
