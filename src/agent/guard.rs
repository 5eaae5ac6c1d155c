//! The member guard: a ValidatingAdmissionPolicy (CEL, no webhook) and its binding, installed in a member
//! cluster by `marshal agent guard --cluster NAME --clearance FILE [--syncer-user USER]...` or by the member chart
//! (whose `templates/guard.yaml` renders the same file, `charts/marshal-agent/files/member-guard.yaml`; the e2e
//! tier compares the two on a live API server). In that member it evaluates every Deployment the syncer's own
//! identity writes (matched by `request.userInfo.username`, so a writer that leaves Marshal's labels off is still
//! checked) and every Deployment that carries a `marshal.dev/` label, and rejects one
//! - without a `marshal.dev/classification` label the member is cleared for (the cleared label values are the
//!   host's own clearance, cut at its `admission.maxClassification` under its own policy's order), or without a
//!   `marshal.dev/digest` annotation;
//! - in a namespace Marshal did not create (unless the host lists it);
//! - that the host workload policy refuses: the Pod Security level's rules (host namespaces, privileged,
//!   capabilities, host ports, seccomp, volume types; for restricted also privilege escalation, non-root,
//!   dropped capabilities), ServiceAccounts, a mounted token, image registries.
//!
//! The values are inlined rather than read from a parameter ConfigMap (`paramKind`): a ConfigMap `paramKind`
//! stops resolving in an API server process once every binding naming it has been deleted for a moment
//! (kubernetes/kubernetes#130887, seen on 1.35 and 1.36), after which a binding with
//! `parameterNotFoundAction: Deny` refuses every Marshal Deployment until the API server restarts. Without
//! parameters there is nothing to resolve. A change of the host configuration means applying the guard again.

use crate::sync::apply::{CLASSIFICATION_KEY, DIGEST_ANNOTATION, label_value};
use crate::sync::recheck::MemberClearance;

/// Name of the policy and of its binding.
pub const POLICY_NAME: &str = "marshal-member-guard";

/// The policy template shared with the member chart.
const TEMPLATE: &str = include_str!("../../charts/marshal-agent/files/member-guard.yaml");

/// A CEL list literal of single-quoted names (the names contain no quote: see `WorkloadPolicy::validate`).
fn cel_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// The cleared classifications as label values, in the clearance's order, cut at the host's
/// `admission.maxClassification` under its own policy's order. A maximum that cannot be ranked (the host holds no
/// such policy, or the policy does not define it) clears nothing (fail closed).
pub fn cleared_label_values(c: &MemberClearance) -> Vec<String> {
    let max = c.admission.as_ref().and_then(|a| a.max_classification.as_deref());
    let order = c.policies.iter().find(|p| p.policy_identifier == c.clearance.policy).map(|p| &p.classifications);
    let rank = |name: &str| order.and_then(|o| o.iter().position(|x| x == name));
    c.clearance
        .classifications
        .iter()
        .filter(|cls| match max {
            None => true,
            Some(m) => matches!((rank(cls), rank(m)), (Some(a), Some(b)) if a <= b),
        })
        .map(|s| label_value(s))
        .collect()
}

/// The policy and its binding for member `cluster` with the host's own configuration, evaluating writes by the
/// syncer identities `syncers` (usernames as the member's API server sees them). The cluster name must be a DNS
/// label (it is a MemberCluster name), so it cannot break out of the CEL string it is written into.
pub fn policy_yaml(cluster: &str, c: &MemberClearance, syncers: &[String]) -> Result<String, String> {
    let dns_label = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    if !dns_label {
        return Err(format!("--cluster {cluster:?}: not a cluster name (lower-case letters, digits and '-')"));
    }
    c.workload_policy.validate()?;
    let user_ok = |u: &String| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:@".contains(&b));
    if let Some(bad) = syncers.iter().find(|u| !user_ok(u)) {
        return Err(format!("--syncer-user {bad:?}: not a Kubernetes user name"));
    }
    let p = &c.workload_policy;
    Ok(TEMPLATE
        .replace("{CLUSTER}", cluster)
        .replace("{SYNCERS}", &cel_list(syncers))
        .replace("{CLEARED}", &cel_list(&cleared_label_values(c)))
        .replace("{LEVEL}", &format!("'{}'", p.pod_security.as_str()))
        .replace("{NAMESPACES}", &cel_list(&p.namespaces))
        .replace("{SERVICE_ACCOUNTS}", &cel_list(&p.service_accounts))
        .replace("{AUTOMOUNT}", if p.automount_service_account_token { "true" } else { "false" })
        .replace("{IMAGES}", &cel_list(&p.images))
        .replace("{VOLUMES}", &cel_list(&p.allowed_volumes())))
}

/// The label key and annotation the policy checks (kept in one place with the syncer's).
pub fn checked_keys() -> [&'static str; 2] {
    [CLASSIFICATION_KEY, DIGEST_ANNOTATION]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn clearance(classes: &str) -> MemberClearance {
        serde_yaml::from_str(&format!(
            "nation: LTU\nclearance: {{policy: NATO, classifications: [{classes}], reviewBy: \"2099-01-01T00:00:00Z\"}}\n"
        ))
        .unwrap()
    }

    fn syncers() -> Vec<String> {
        vec!["marshal".into(), "system:serviceaccount:marshal-system:marshal-agent".into()]
    }

    fn docs(yaml: &str) -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(yaml).map(serde_yaml::Value::deserialize).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn cleared_values_are_inlined_as_label_values() {
        let yaml = policy_yaml("ltu-1", &clearance("UNCLASSIFIED, RESTRICTED, COSMIC TOP SECRET"), &syncers()).unwrap();
        let d = docs(&yaml);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0]["kind"], "ValidatingAdmissionPolicy");
        assert_eq!(d[1]["kind"], "ValidatingAdmissionPolicyBinding");
        let vars = d[0]["spec"]["variables"].as_sequence().unwrap();
        let cleared = vars.iter().find(|v| v["name"] == "cleared").unwrap()["expression"].as_str().unwrap();
        assert_eq!(cleared, "['UNCLASSIFIED', 'RESTRICTED', 'COSMIC_TOP_SECRET']");
        let m = d[0]["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
        assert!(
            m.ends_with(
                "request.userInfo.username in ['marshal', 'system:serviceaccount:marshal-system:marshal-agent']"
            ),
            "{m}"
        );
        let level = vars.iter().find(|v| v["name"] == "level").unwrap()["expression"].as_str().unwrap();
        assert_eq!(level, "'restricted'");
        assert!(!yaml.contains("{CLEARED}") && !yaml.contains("{VOLUMES}") && !yaml.contains("{SYNCERS}"), "{yaml}");
        let msg = d[0]["spec"]["validations"][0]["messageExpression"].as_str().unwrap();
        assert!(msg.contains("in member ltu-1 (cleared: "), "{msg}");
    }

    #[test]
    fn no_parameters_to_resolve() {
        let yaml = policy_yaml("pol-1", &clearance("UNCLASSIFIED"), &syncers()).unwrap();
        let d = docs(&yaml);
        assert!(d[0]["spec"].get("paramKind").is_none());
        assert!(d[1]["spec"].get("paramRef").is_none());
        assert!(!yaml.contains("params."));
        assert_eq!(d[0]["spec"]["failurePolicy"], "Fail");
        assert_eq!(d[1]["spec"]["validationActions"][0], "Deny");
    }

    #[test]
    fn policy_checks_the_syncers_label_and_annotation() {
        let yaml = policy_yaml("pol-1", &clearance("UNCLASSIFIED"), &syncers()).unwrap();
        for key in checked_keys() {
            assert!(yaml.contains(&format!("'{key}'")), "{key}");
        }
    }

    #[test]
    fn an_empty_clearance_denies_every_marshal_deployment() {
        let yaml = policy_yaml("pol-1", &clearance(""), &syncers()).unwrap();
        assert!(yaml.contains("- name: cleared\n      expression: \"[]\""), "{yaml}");
    }

    #[test]
    fn cleared_stops_at_the_hosts_maximum_under_its_own_policy() {
        let mut c = clearance("UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET");
        c.admission = Some(crate::api::Admission {
            owner_nations: vec!["*".into()],
            max_classification: Some("RESTRICTED".into()),
        });
        // Without the host's own policy the maximum cannot be ranked: nothing is cleared (fail closed).
        assert!(cleared_label_values(&c).is_empty());
        c.policies = vec![
            serde_json::from_value(serde_json::json!({"policyIdentifier": "NATO",
            "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]}))
            .unwrap(),
        ];
        assert_eq!(cleared_label_values(&c), ["UNCLASSIFIED", "RESTRICTED"]);
        c.admission = None;
        assert_eq!(cleared_label_values(&c).len(), 4);
    }

    #[test]
    fn a_syncer_name_cannot_inject_cel() {
        for bad in ["", "x' || true || '", "a b"] {
            assert!(policy_yaml("pol-1", &clearance("UNCLASSIFIED"), &[bad.to_string()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cluster_name_cannot_inject_cel() {
        for bad in ["", "x' + 'y", "Pol-1", "-a", "a b"] {
            assert!(policy_yaml(bad, &clearance("UNCLASSIFIED"), &syncers()).is_err(), "{bad:?}");
        }
    }
}
