//! Pure: the hub RBAC of one agent (`marshal agent rbac --cluster NAME`). The agent's identity is the
//! ServiceAccount `marshal-agent` in its own hub namespace `marshal-<cluster>`; it may
//! - in `marshal-<cluster>` (Role): read and watch Assignments and patch their status — never their spec, labels,
//!   annotations or finalizers (it signals "member objects removed" through status; the controller releases the
//!   finalizer) —, create and renew the Lease `heartbeat` (a server-side apply that creates is also authorized
//!   as `create`, by name), and create Events;
//! - cluster-wide (ClusterRole): read and patch the status of its own MemberCluster (by `resourceNames`); read
//!   and patch the status of the ClusterLinks it probes; read SecurityPolicies (the value domain of labels).
//!
//! RBAC cannot select objects by a field such as `spec.from`, so the links are named: `<cluster>.<to>` for
//! each `to` known when the RBAC is generated (`--link-to`, or read from the hub). A link added later needs
//! the RBAC regenerated; the agent probes exactly the links its RBAC names (it discovers them with a
//! SelfSubjectRulesReview), so the two cannot disagree. With no links, no ClusterLink rule is emitted at all
//! (an empty `resourceNames` would grant every link).

use serde_json::{Value, json};

use crate::api::{HEARTBEAT_LEASE, LABEL_CLUSTER, MANAGED_BY, cluster_namespace};

/// Name of the agent's ServiceAccount, Role and RoleBinding in `marshal-<cluster>`.
pub const AGENT_SERVICE_ACCOUNT: &str = "marshal-agent";

/// Name of the agent's ClusterRole and ClusterRoleBinding.
pub fn cluster_role_name(cluster: &str) -> String {
    format!("marshal-agent-{cluster}")
}

/// The RBAC user name of the agent's ServiceAccount.
pub fn user_name(cluster: &str) -> String {
    format!("system:serviceaccount:{}:{AGENT_SERVICE_ACCOUNT}", cluster_namespace(cluster))
}

/// Link names for the `to` clusters (`<cluster>.<to>`), sorted and deduplicated.
pub fn link_names(cluster: &str, to: &[String]) -> Vec<String> {
    let mut names: Vec<String> = to.iter().filter(|t| *t != cluster).map(|t| format!("{cluster}.{t}")).collect();
    names.sort();
    names.dedup();
    names
}

fn labels(cluster: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_CLUSTER: cluster})
}

/// The Namespace, ServiceAccount, Role, RoleBinding, ClusterRole and ClusterRoleBinding for one agent.
pub fn objects(cluster: &str, links: &[String]) -> Vec<Value> {
    let ns = cluster_namespace(cluster);
    let subject = json!([{"kind": "ServiceAccount", "name": AGENT_SERVICE_ACCOUNT, "namespace": ns}]);
    let mut cluster_rules = vec![
        json!({"apiGroups": ["marshal.dev"], "resources": ["memberclusters"], "resourceNames": [cluster],
               "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["marshal.dev"], "resources": ["memberclusters/status"], "resourceNames": [cluster],
               "verbs": ["get", "patch"]}),
        json!({"apiGroups": ["marshal.dev"], "resources": ["securitypolicies"], "verbs": ["get", "list", "watch"]}),
    ];
    if !links.is_empty() {
        cluster_rules.push(json!({"apiGroups": ["marshal.dev"], "resources": ["clusterlinks"],
                                  "resourceNames": links, "verbs": ["get"]}));
        cluster_rules.push(json!({"apiGroups": ["marshal.dev"], "resources": ["clusterlinks/status"],
                                  "resourceNames": links, "verbs": ["get", "patch"]}));
    }
    let role = cluster_role_name(cluster);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels(cluster)}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": AGENT_SERVICE_ACCOUNT, "namespace": ns, "labels": labels(cluster)},
               "automountServiceAccountToken": false}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": AGENT_SERVICE_ACCOUNT, "namespace": ns, "labels": labels(cluster)},
        "rules": [
            {"apiGroups": ["marshal.dev"], "resources": ["assignments"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["marshal.dev"], "resources": ["assignments/status"], "verbs": ["get", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [HEARTBEAT_LEASE],
             "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": AGENT_SERVICE_ACCOUNT, "namespace": ns, "labels": labels(cluster)},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT_SERVICE_ACCOUNT},
               "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": role, "labels": labels(cluster)}, "rules": cluster_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": role, "labels": labels(cluster)},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subject}),
    ]
}

/// The objects as a multi-document YAML stream with a header naming the identity and the links.
pub fn yaml(cluster: &str, links: &[String]) -> Result<String, serde_yaml::Error> {
    let mut out = format!(
        "# Hub RBAC of the Marshal agent of {cluster}: identity {}\n# ClusterLinks it may report: {}\n",
        user_name(cluster),
        if links.is_empty() { "none".to_string() } else { links.join(", ") }
    );
    for o in objects(cluster, links) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o)?);
    }
    Ok(out)
}

/// From the rules a SelfSubjectRulesReview returns: the ClusterLinks whose status this identity may patch and
/// whose name starts with `<cluster>.` (the links the agent probes).
pub fn probed_links(cluster: &str, rules: &[k8s_openapi::api::authorization::v1::ResourceRule]) -> Vec<String> {
    let prefix = format!("{cluster}.");
    let mut names: Vec<String> = rules
        .iter()
        .filter(|r| r.api_groups.iter().flatten().any(|g| g == "marshal.dev"))
        .filter(|r| r.resources.iter().flatten().any(|x| x == "clusterlinks/status"))
        .filter(|r| r.verbs.iter().any(|v| v == "patch" || v == "*"))
        .flat_map(|r| r.resource_names.clone().unwrap_or_default())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_object_and_limits_by_resource_names() {
        let links = link_names("ltu-1", &["pol-1".into(), "deu-1".into(), "ltu-1".into(), "pol-1".into()]);
        assert_eq!(links, ["ltu-1.deu-1", "ltu-1.pol-1"]);
        let objs = objects("ltu-1", &links);
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]);
        assert!(objs.iter().skip(1).take(3).all(|o| o["metadata"]["namespace"] == "marshal-ltu-1"));
        let text = serde_json::to_string(&objs).unwrap();
        assert!(!text.contains("secrets"), "no Secret access");
        assert!(!text.contains("\"*\""), "no wildcards");
        let role = &objs[2]["rules"];
        let assignments = role.as_array().unwrap().iter().find(|r| r["resources"][0] == "assignments").unwrap();
        assert_eq!(
            assignments["verbs"],
            json!(["get", "list", "watch"]),
            "the agent never writes an Assignment's spec"
        );
        let cr = &objs[4]["rules"];
        for rule in cr.as_array().unwrap() {
            let res = rule["resources"][0].as_str().unwrap();
            if res != "securitypolicies" {
                assert!(rule["resourceNames"].as_array().is_some_and(|n| !n.is_empty()), "{res} by name");
            }
        }
        assert_eq!(user_name("ltu-1"), "system:serviceaccount:marshal-ltu-1:marshal-agent");
    }

    #[test]
    fn no_links_means_no_link_rule() {
        let objs = objects("ltu-1", &[]);
        assert!(!serde_json::to_string(&objs[4]).unwrap().contains("clusterlinks"));
        assert!(yaml("ltu-1", &[]).unwrap().contains("may report: none"));
    }

    #[test]
    fn probed_links_come_from_patchable_status_names() {
        let rules: Vec<k8s_openapi::api::authorization::v1::ResourceRule> = serde_json::from_value(json!([
            {"apiGroups": ["marshal.dev"], "resources": ["clusterlinks/status"], "verbs": ["get", "patch"],
             "resourceNames": ["ltu-1.pol-1", "pol-1.deu-1"]},
            {"apiGroups": ["marshal.dev"], "resources": ["clusterlinks"], "verbs": ["get"], "resourceNames": ["ltu-1.deu-1"]},
            {"apiGroups": ["marshal.dev"], "resources": ["clusterlinks/status"], "verbs": ["get"], "resourceNames": ["ltu-1.lva-1"]},
        ]))
        .unwrap();
        assert_eq!(probed_links("ltu-1", &rules), ["ltu-1.pol-1"]);
    }
}
