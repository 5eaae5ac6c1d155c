//! The custom resources of `marshal.dev/v1alpha1`. The Rust types are the single source of the CRD YAML
//! (`marshal crd --write` regenerates `crds/`).
// kube's `printcolumn(...)` attributes repeat `type_ = ...` by design; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

mod assignment;
mod cluster_link;
pub mod conditions;
pub mod heartbeat;
mod label;
mod member_cluster;
mod mission_workload;
pub mod schema;
mod security_policy;
pub mod time;

pub use assignment::{Assignment, AssignmentPhase, AssignmentSpec, AssignmentStatus, WorkloadRef, canonical_json};
pub use cluster_link::{ClusterLink, ClusterLinkSpec, ClusterLinkStatus, LinkProbe, LinkState};
pub use label::{AlternativeLabel, CategoryValues, Clearance, ConfidentialityLabel};
pub use member_cluster::{
    Admission, ClusterTaint, Connection, ConnectionMode, MemberCluster, MemberClusterSpec, MemberClusterStatus,
    ResourceAmounts, SecretKeyRef, TaintEffect, TierCapacity,
};
pub use mission_workload::{
    BackoffStatus, DataSource, FailbackStatus, Failover, FailoverMode, MissionWorkload, MissionWorkloadSpec,
    MissionWorkloadStatus, Phase, Placement, PlacementMode, PlacementStatus, Spread, TemplateMetadata, Toleration,
    TolerationOperator, VerdictStatus, WorkloadTemplate,
};
pub use security_policy::{
    Access, Applied, CategoryDefinition, CategoryMapping, CategoryRef, CategoryType, ClassificationMapping,
    ClassificationRule, EquivalentPolicy, RequiredCategory, RequiredOperation, SecurityPolicy, SecurityPolicySpec,
    SecurityPolicyStatus, ValueRule,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every Marshal kind.
pub const GROUP: &str = "marshal.dev";
/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "marshal";
/// Prefix of Marshal's labels and annotations.
pub const LABEL_PREFIX: &str = "marshal.dev/";
/// Node label that names a node's tier inside a member cluster.
pub const TIER_LABEL: &str = "marshal.dev/tier";
/// The category tag whose values name nations and groups a label is releasable to.
pub const RELEASABLE_TO: &str = "Releasable To";
/// Field manager of the member syncers' status writes (distinct from the controller's, so that server-side
/// apply never lets one writer drop the other's conditions).
pub const SYNCER_FIELD_MANAGER: &str = "marshal-syncer";
/// Name of the heartbeat Lease in each `marshal-<cluster>` namespace on the hub.
pub const HEARTBEAT_LEASE: &str = "heartbeat";
/// Label on heartbeat Leases (the controller watches Leases with it).
pub const HEARTBEAT_LABEL: &str = "marshal.dev/heartbeat";
/// Finalizer on MissionWorkloads: their Assignments are removed first.
pub const WORKLOAD_FINALIZER: &str = "marshal.dev/assignments";
/// Finalizer on Assignments: the syncer removes the member's objects first.
pub const ASSIGNMENT_FINALIZER: &str = "marshal.dev/member-cleanup";
/// Labels on Assignments naming their workload and cluster.
pub const LABEL_WORKLOAD_NAMESPACE: &str = "marshal.dev/workload-namespace";
/// See [`LABEL_WORKLOAD_NAMESPACE`].
pub const LABEL_WORKLOAD_NAME: &str = "marshal.dev/workload-name";
/// See [`LABEL_WORKLOAD_NAMESPACE`].
pub const LABEL_CLUSTER: &str = "marshal.dev/cluster";
/// `app.kubernetes.io/managed-by` value on every member object Marshal creates.
pub const MANAGED_BY: &str = "marshal";
/// The member ConfigMap (in `marshal-system`) holding the member's own clearance, if the host provides one.
pub const MEMBER_CLEARANCE_CONFIGMAP: &str = "marshal-clearance";

/// Hub namespace of a member cluster's Assignments and heartbeat Lease.
pub fn cluster_namespace(cluster: &str) -> String {
    format!("marshal-{cluster}")
}

/// Every CRD, in a stable order (policies and clusters first, then workloads and assignments).
pub fn crds() -> Vec<CustomResourceDefinition> {
    [SecurityPolicy::crd(), MemberCluster::crd(), ClusterLink::crd(), MissionWorkload::crd(), Assignment::crd()]
        .into_iter()
        .map(schema::tidy)
        .collect()
}

/// The CRDs as one multi-document YAML stream, as written to `crds/` and printed by `marshal crd`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// File name of a CRD inside `crds/`: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default())
}
