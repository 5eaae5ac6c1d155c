//! MissionWorkload: what mission planners apply.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::json_schema;
use serde::{Deserialize, Serialize};

use super::label::ConfidentialityLabel;

/// How replicas are spread over clusters.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PlacementMode {
    /// Replicas are shared among the chosen clusters.
    #[default]
    Divided,
    /// Every eligible cluster runs `replicas` replicas.
    Duplicated,
}

/// How a workload moves between clusters.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FailoverMode {
    /// Start the new copy, then remove the old one once the new one is ready.
    #[default]
    MakeBeforeBreak,
    /// Never two copies: remove the old one first (exclusive workloads).
    BreakBeforeMake,
}

/// Spread constraints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct Spread {
    /// Place replicas in at least this many nations (when enough nations are eligible).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub min_nations: u32,
    /// Upper bound of replicas on one cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas_per_cluster: Option<u32>,
}

fn one() -> u32 {
    1
}

/// Where the mission data originates, and what the path from it must offer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// MemberCluster holding the data.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// Highest acceptable round-trip time from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_rtt_ms: Option<u32>,
    /// Lowest acceptable bandwidth from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_bandwidth_mbps: Option<u32>,
}

/// Toleration operator.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TolerationOperator {
    /// Key and value must match.
    #[default]
    Equal,
    /// Key must match; any value.
    Exists,
}

/// Tolerates a MemberCluster taint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Taint key to tolerate.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// Value for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect to tolerate; absent tolerates both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<super::TaintEffect>,
}

/// Placement preferences and constraints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// `Divided` (share replicas) or `Duplicated` (replicas in each eligible cluster).
    #[serde(default)]
    pub mode: PlacementMode,
    /// Allowed tiers in order of preference. Empty: every tier a cluster offers, in the cluster's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tiers: Vec<String>,
    /// Only clusters whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// Nations in order of preference. Empty: the owner's nation first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^[A-Z]{3}$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub preferred_nations: Vec<String>,
    /// Spread constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// Where the data comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DataSource>,
    /// Cluster taints this workload tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,
}

/// Failover and failback behaviour.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// How long placements keep their share on an unreachable cluster or behind a failed link.
    #[serde(default = "default_toleration")]
    #[schemars(range(min = 0, max = 86400))]
    pub toleration_seconds: u32,
    /// How long a better option must be continuously available before work moves back to it.
    #[serde(default = "default_failback")]
    #[schemars(range(min = 0, max = 604800))]
    pub failback_after_seconds: u32,
    /// `MakeBeforeBreak` (default) or `BreakBeforeMake`.
    #[serde(default)]
    pub mode: FailoverMode,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            toleration_seconds: default_toleration(),
            failback_after_seconds: default_failback(),
            mode: FailoverMode::default(),
        }
    }
}

fn default_toleration() -> u32 {
    30
}
fn default_failback() -> u32 {
    300
}

/// Labels and annotations of the pod template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The pod template. `spec` has a light schema (containers with name and image) and is validated in full
/// by the controller, which keeps the CRD small enough for client-side `kubectl apply`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTemplate {
    /// Pod labels and annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// A Kubernetes PodSpec.
    #[schemars(schema_with = "pod_spec_schema")]
    pub spec: serde_json::Value,
}

fn pod_spec_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    json_schema!({
        "type": "object",
        "description": "A Kubernetes PodSpec (core/v1). Validated in full by the controller.",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["containers"],
        "properties": {
            "containers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "required": ["name", "image"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 63},
                        "image": {"type": "string", "minLength": 1}
                    }
                }
            }
        }
    })
}

/// A mission workload: a labelled pod template and its placement rules.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "MissionWorkload",
    namespaced,
    shortname = "mw",
    category = "marshal",
    status = "MissionWorkloadStatus",
    doc = "A mission workload: a pod template with a confidentiality label, placed by Marshal across member clusters.",
    printcolumn(name = "PHASE", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "REPLICAS", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "READY", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "CLUSTERS", type_ = "string", json_path = ".status.clusters"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.placement.mode == 'Duplicated' || !has(self.placement.spread) || self.replicas == 0 || self.placement.spread.minNations <= self.replicas").message("placement.spread.minNations cannot exceed replicas in Divided mode"))]
#[serde(rename_all = "camelCase")]
pub struct MissionWorkloadSpec {
    /// Nation that owns the mission data (ISO 3166-1 alpha-3). Immutable.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("owner is immutable"))]
    pub owner: String,
    /// The originator's label. Immutable: relabelling means a new workload.
    #[x_kube(validation = Rule::new("self == oldSelf").message("confidentiality is immutable"))]
    pub confidentiality: ConfidentialityLabel,
    /// Nations where the data may reside. Empty: no residency constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^[A-Z]{3}$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub residency: Vec<String>,
    /// Desired replicas.
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
    /// The pod template.
    pub template: WorkloadTemplate,
    /// Placement rules.
    #[serde(default)]
    pub placement: Placement,
    /// Failover and failback.
    #[serde(default)]
    pub failover: Failover,
}

/// Lifecycle phase of a workload.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord,
)]
pub enum Phase {
    /// Not decided yet.
    #[default]
    Pending,
    /// Every replica placed.
    Placed,
    /// Some replicas placed, some not.
    Degraded,
    /// No replica placed.
    Unplaceable,
    /// Fleet freeze: most clusters are unreachable together, nothing moves.
    Frozen,
}

/// One placement in status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// MemberCluster.
    pub cluster: String,
    /// Node tier.
    pub tier: String,
    /// Replicas assigned.
    pub replicas: u32,
    /// Ready replicas reported by the member.
    #[serde(default)]
    pub ready_replicas: u32,
    /// When this placement started.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub since: Option<Time>,
    /// Why it is there, e.g. `Preferred`, `Sticky`, `Tolerated`.
    #[serde(default)]
    pub reason: String,
}

/// One candidate's verdict in status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerdictStatus {
    /// MemberCluster.
    pub cluster: String,
    /// Node tier.
    pub tier: String,
    /// True exactly when the candidate passed every filter.
    pub eligible: bool,
    /// The first failing filter's reason, or `Eligible`.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When (eligible, reason) last changed for this candidate.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub since: Option<Time>,
    /// Observation time of the deciding fact, when it is frozen (e.g. the last heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub observed_at: Option<Time>,
}

/// A pending failback: the better placement and since when it has been continuously available.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailbackStatus {
    /// Since when.
    #[serde(deserialize_with = "super::time::clamped")]
    pub since: Time,
    /// `cluster/tier` of the better placement.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A cluster passed over for this workload for a while: a replacement there was not Ready in time, or failed,
/// while another copy ran. Kept in status so that a controller restart remembers it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackoffStatus {
    /// The member cluster.
    pub cluster: String,
    /// `NotReadyOnMember`.
    pub reason: String,
    /// What was seen (the member's message when it failed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The cluster is not chosen again for this workload before then.
    #[serde(deserialize_with = "super::time::clamped")]
    pub until: Time,
    /// How many backoffs in a row (each doubles the wait, up to an hour).
    #[serde(default)]
    pub count: u32,
}

/// Status of a MissionWorkload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MissionWorkloadStatus {
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Placed, Degraded, Unplaceable or Frozen.
    #[serde(default)]
    pub phase: Phase,
    /// Replicas wanted in total: `spec.replicas` in Divided mode; in Duplicated mode `spec.replicas` (within
    /// `maxReplicasPerCluster`) on each eligible cluster, so that `kubectl get` compares it with `readyReplicas`.
    #[serde(default)]
    pub desired_replicas: u32,
    /// Replicas placed.
    #[serde(default)]
    pub replicas: u32,
    /// Ready replicas across members.
    #[serde(default)]
    pub ready_replicas: u32,
    /// Comma-separated clusters, for `kubectl get`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub clusters: String,
    /// Current placements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<PlacementStatus>,
    /// Every candidate's verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<VerdictStatus>,
    /// Placed, Ready, Compliant, Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "super::time::clamped_conditions")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// A better placement the engine waits to move to (failback window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<FailbackStatus>,
    /// Clusters passed over for a while because a replacement there did not become Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<BackoffStatus>,
    /// When the decision last changed.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub last_decision_time: Option<Time>,
}
