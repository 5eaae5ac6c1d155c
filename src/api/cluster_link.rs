//! ClusterLink: a measured network path between two member clusters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// State of a link.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LinkState {
    /// Working.
    Up,
    /// Working with reduced quality.
    Degraded,
    /// Not working.
    Down,
    /// Not known.
    #[default]
    Unknown,
}

/// How an agent probes the link.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LinkProbe {
    /// TCP `host:port` the `from` side connects to.
    #[schemars(length(min = 3, max = 261), regex(pattern = r"^[^\s:]+:[0-9]{1,5}$"))]
    pub address: String,
}

/// A network path between two member clusters; its name must be `<from>.<to>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "ClusterLink",
    shortname = "clink",
    category = "marshal",
    status = "ClusterLinkStatus",
    doc = "A measured network path between two member clusters, named `<from>.<to>`.",
    validation = Rule::new("self.metadata.name == self.spec.from + '.' + self.spec.to").message("metadata.name must be <spec.from>.<spec.to>"),
    printcolumn(name = "FROM", type_ = "string", json_path = ".spec.from"),
    printcolumn(name = "TO", type_ = "string", json_path = ".spec.to"),
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "RTT", type_ = "integer", json_path = ".status.rttMs"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.from != self.to").message("spec.to must differ from spec.from"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterLinkSpec {
    /// MemberCluster at the origin.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("from is immutable"))]
    pub from: String,
    /// MemberCluster at the far end.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("to is immutable"))]
    pub to: String,
    /// Optional probe the `from` cluster's agent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<LinkProbe>,
    /// Status older than this counts as unknown (fail closed).
    #[serde(default = "default_stale_after")]
    #[schemars(range(min = 1, max = 86400))]
    pub stale_after_seconds: u32,
}

fn default_stale_after() -> u32 {
    60
}

/// Measured state of a link.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLinkStatus {
    /// `Up`, `Degraded`, `Down` or `Unknown`.
    #[serde(default)]
    pub state: LinkState,
    /// Round-trip time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rtt_ms: Option<u32>,
    /// Bandwidth in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub bandwidth_mbps: Option<u32>,
    /// Packet loss in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub loss_percent: Option<u32>,
    /// When these figures were measured.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub observed_at: Option<Time>,
    /// Who measured them, e.g. `agent/ltu-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
}
