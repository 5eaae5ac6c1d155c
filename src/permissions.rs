//! The Kubernetes API permissions Marshal's code uses, read from its calls (`src/controller/`, `src/sync/`,
//! `src/leader.rs`). The Helm charts' RBAC must grant each of them and nothing broader:
//! `tests/chart_consistency.rs` checks the charts against these tables, and `e2e/tests/40-helm-prometheus.sh`
//! asks the hub API server (`kubectl auth can-i`) about each hub entry for the chart's ServiceAccount. The hub
//! RBAC of a pull-mode agent is `crate::agent::rbac::objects` (printed by `marshal agent rbac`), which the hub
//! chart's `pullAgents` reproduces.
//!
//! Notes on verbs:
//! - a server-side apply (`PATCH` with `application/apply-patch+yaml`) that creates its object is also
//!   authorised as `create` of that name, so applied objects need `create` and `patch`;
//! - `list`/`watch` with a `metadata.name` field selector are authorised against `resourceNames`;
//! - a plain `POST` create carries no name, so `create` of such objects cannot be limited by name.

/// Where a permission applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace, or a cluster-scoped resource (ClusterRole).
    Cluster,
    /// Only the namespace the controller is installed in (Role in the Helm release namespace).
    ReleaseNamespace,
    /// Only the member's `marshal-system` namespace (Role there).
    MemberSystem,
}

/// One (API group, resource, verbs) the code uses, optionally limited to some object names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// Scope of the grant.
    pub scope: Scope,
    /// API group (`""` for the core group).
    pub api_group: &'static str,
    /// Resource, with `/subresource` when it is one.
    pub resource: &'static str,
    /// Verbs the code uses.
    pub verbs: &'static [&'static str],
    /// Object names the grant may be limited to (empty: any name).
    pub names: &'static [&'static str],
    /// Which code needs it.
    pub why: &'static str,
}

const fn p(
    scope: Scope,
    api_group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    names: &'static [&'static str],
    why: &'static str,
) -> Permission {
    Permission { scope, api_group, resource, verbs, names, why }
}

use Scope::{Cluster, MemberSystem, ReleaseNamespace};

/// Names of Marshal's CRDs (the controller waits for them to be established).
pub const CRD_NAMES: &[&str] = &[
    "securitypolicies.marshal.dev",
    "memberclusters.marshal.dev",
    "clusterlinks.marshal.dev",
    "missionworkloads.marshal.dev",
    "assignments.marshal.dev",
];

/// `marshal controller` on the hub: the workload controller, cluster health, leader election and the
/// push-mode syncers (which read member kubeconfig Secrets and write heartbeats and Assignment status).
pub const HUB_CONTROLLER: &[Permission] = &[
    p(Cluster, "apiextensions.k8s.io", "customresourcedefinitions", &["get"], CRD_NAMES, "controller::wait_for_crds"),
    p(Cluster, "marshal.dev", "memberclusters", &["get", "list", "watch"], &[], "reflector; member_status::update"),
    p(Cluster, "marshal.dev", "memberclusters/status", &["patch"], &[], "health conditions; syncer capacity"),
    p(Cluster, "marshal.dev", "securitypolicies", &["list", "watch"], &[], "reflectors (controller, syncer)"),
    p(Cluster, "marshal.dev", "clusterlinks", &["list", "watch"], &[], "reflector"),
    p(Cluster, "marshal.dev", "missionworkloads", &["list", "watch", "patch"], &[], "Controller; finalizer"),
    p(Cluster, "marshal.dev", "missionworkloads/status", &["patch"], &[], "reconcile::patch_status"),
    p(
        Cluster,
        "marshal.dev",
        "assignments",
        &["list", "watch", "create", "patch", "delete"],
        &[],
        "reconcile: apply, delete, release; syncer: finalizer removal",
    ),
    p(Cluster, "marshal.dev", "assignments/status", &["patch"], &[], "syncer report"),
    p(Cluster, "coordination.k8s.io", "leases", &["list", "watch"], &[], "heartbeat Lease reflector"),
    p(Cluster, "coordination.k8s.io", "leases", &["create", "patch"], &["heartbeat"], "heartbeat::renew (apply)"),
    p(Cluster, "", "namespaces", &["get", "create", "patch"], &[], "ensure_namespace (apply); hub namespaces"),
    p(Cluster, "events.k8s.io", "events", &["create", "patch"], &[], "kube Recorder (controller, syncers)"),
    p(
        ReleaseNamespace,
        "",
        "secrets",
        &["get"],
        &["marshal-signing-key"],
        "the signing key by name; member kubeconfigs (push mode) by the names in the chart's memberKubeconfigSecrets",
    ),
    p(ReleaseNamespace, "coordination.k8s.io", "leases", &["create"], &[], "leader election (kube-lease-manager)"),
    p(ReleaseNamespace, "coordination.k8s.io", "leases", &["get", "patch"], &["marshal-leader"], "leader election"),
];

/// A syncer inside a member cluster: the push-mode member user, or the pull-mode agent's ServiceAccount.
pub const MEMBER: &[Permission] = &[
    p(
        Cluster,
        "",
        "namespaces",
        &["get", "create", "patch"],
        &[],
        "syncer: workload namespaces and their Pod Security labels",
    ),
    p(
        Cluster,
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch", "delete"],
        &[],
        "syncer: Marshal-managed Deployments (apply, orphans)",
    ),
    p(Cluster, "", "nodes", &["list"], &[], "capacity::observe"),
    p(Cluster, "", "pods", &["list"], &[], "capacity::observe"),
    p(MemberSystem, "", "configmaps", &["get", "list", "watch"], &["marshal-clearance"], "member clearance"),
    p(MemberSystem, "", "configmaps", &["get", "update"], &["marshal-removed"], "tombstones of removed workloads"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_well_formed() {
        for t in [HUB_CONTROLLER, MEMBER] {
            for perm in t {
                assert!(!perm.verbs.is_empty(), "{perm:?}");
                // A plain POST create carries no name: a name-limited create only covers server-side apply.
                if perm.verbs.contains(&"list") {
                    assert!(perm.names.len() <= 1, "list limited to several names cannot be authorised: {perm:?}");
                }
            }
        }
        assert_eq!(CRD_NAMES.len(), crate::api::crds().len());
        for crd in crate::api::crds() {
            assert!(CRD_NAMES.contains(&crd.metadata.name.as_deref().unwrap_or_default()));
        }
    }
}
