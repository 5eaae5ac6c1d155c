//! MemberCluster: one federated cluster, its identity, clearance and host-nation admission.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::label::Clearance;

/// How the hub reaches the member.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ConnectionMode {
    /// The hub's controller applies work with a kubeconfig held in a hub Secret.
    #[default]
    Push,
    /// A `marshal agent` in the member pulls its work from the hub.
    Pull,
}

/// A key of a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Connection to the member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Push' || has(self.kubeconfigSecretRef)").message("connection.kubeconfigSecretRef is required when mode is Push"))]
pub struct Connection {
    /// `Push` (hub applies) or `Pull` (member agent pulls).
    #[serde(default)]
    pub mode: ConnectionMode,
    /// Secret holding the member's kubeconfig (push mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,
}

/// What the host nation accepts to host (national control).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    /// Nations whose workloads the host accepts; `*` accepts every owner.
    #[schemars(length(min = 1, max = 64), inner(regex(pattern = r"^([A-Z]{3}|\*)$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub owner_nations: Vec<String>,
    /// Highest classification the host accepts. Absent: whatever the clearance allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub max_classification: Option<String>,
}

/// Effect of a cluster taint.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// No new placements; existing placements stay.
    NoSchedule,
    /// No placements at all; existing placements move away.
    NoExecute,
}

/// A taint on the whole member cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTaint {
    /// Taint key, e.g. `marshal.dev/maintenance`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Optional taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub value: Option<String>,
    /// `NoSchedule` or `NoExecute`.
    pub effect: TaintEffect,
}

/// A member cluster of the federation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "MemberCluster",
    shortname = "mc",
    category = "marshal",
    status = "MemberClusterStatus",
    doc = "A federated member cluster: its nation, clearance, host-nation admission and node tiers.",
    printcolumn(name = "NATION", type_ = "string", json_path = ".spec.nation"),
    printcolumn(
        name = "REACHABLE",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Reachable\")].status"
    ),
    printcolumn(name = "TIERS", type_ = "string", json_path = ".spec.tiers"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.admission.maxClassification) || self.admission.maxClassification in self.clearance.classifications").message("admission.maxClassification must be one of clearance.classifications"))]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterSpec {
    /// Owner and host nation, ISO 3166-1 alpha-3 (e.g. `POL`).
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("nation is immutable: register a new MemberCluster instead"))]
    pub nation: String,
    /// How the hub reaches the member.
    pub connection: Connection,
    /// What this cluster may hold.
    pub clearance: Clearance,
    /// What the host nation accepts.
    pub admission: Admission,
    /// Node tiers offered; nodes carry the label `marshal.dev/tier=<tier>`.
    #[serde(default = "default_tiers")]
    #[schemars(length(min = 1, max = 8), inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tiers: Vec<String>,
    /// Cluster-wide taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub taints: Vec<ClusterTaint>,
}

fn default_tiers() -> Vec<String> {
    vec!["core".into()]
}

/// Amounts of cpu, memory and pods, as Kubernetes quantities.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, e.g. `16` or `3500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, e.g. `64Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Pod slots, e.g. `220`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<String>,
}

/// Capacity of one tier of a member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TierCapacity {
    /// Nodes in the tier.
    #[serde(default)]
    pub nodes: u32,
    /// Ready, schedulable nodes in the tier.
    #[serde(default)]
    pub ready_nodes: u32,
    /// Allocatable on ready nodes.
    #[serde(default)]
    pub allocatable: ResourceAmounts,
    /// Allocatable minus the requests of running pods, on ready nodes.
    #[serde(default)]
    pub free: ResourceAmounts,
}

/// Status of a MemberCluster, written by its syncer and by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterStatus {
    /// `Reachable`, `Accredited`, `CredentialsValid`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "super::time::clamped_conditions")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Last heartbeat renewal seen.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub last_heartbeat_time: Option<Time>,
    /// Capacity per tier.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, TierCapacity>,
    /// When the capacity was observed.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub observed_at: Option<Time>,
}
