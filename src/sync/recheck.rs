//! Pure: the member's own re-check of an Assignment (zero trust: the member does not trust the hub). The
//! digest must match the spec, the Assignment must be for this cluster, and the label must pass accreditation,
//! access control and host admission against the member's clearance: the member ConfigMap
//! `marshal-system/marshal-clearance` if present, otherwise the MemberCluster spec.

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;

use crate::api::{Admission, Assignment, Clearance, MemberCluster, SecurityPolicy};
use crate::placement::filters::member_recheck;
use crate::placement::model::{ClusterFacts, Settings, Snapshot};

/// Key of the clearance document in the member ConfigMap.
pub const CLEARANCE_KEY: &str = "clearance.yaml";

/// The host nation's own clearance, from the member ConfigMap.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberClearance {
    /// Host nation; absent: the MemberCluster's.
    #[serde(default)]
    pub nation: Option<String>,
    /// What the member may hold.
    pub clearance: Clearance,
    /// What the host accepts; absent: every owner, up to what the clearance allows.
    #[serde(default)]
    pub admission: Option<Admission>,
}

/// Parses the member ConfigMap. An error is fail-closed: every Assignment is refused until it is fixed.
pub fn parse_member_clearance(cm: &ConfigMap) -> Result<MemberClearance, String> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CLEARANCE_KEY))
        .ok_or_else(|| format!("ConfigMap marshal-system/marshal-clearance has no key {CLEARANCE_KEY}"))?;
    serde_yaml::from_str(text).map_err(|e| format!("ConfigMap marshal-system/marshal-clearance {CLEARANCE_KEY}: {e}"))
}

/// Why the member refuses an Assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason (condition, Event, metric label).
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// The facts the member checks against: the MemberCluster, with the member's own clearance in force.
pub fn member_facts(mc: &MemberCluster, own: Option<&MemberClearance>) -> ClusterFacts {
    let mut mc = mc.clone();
    if let Some(own) = own {
        if let Some(n) = &own.nation {
            mc.spec.nation = n.clone();
        }
        mc.spec.clearance = own.clearance.clone();
        mc.spec.admission =
            own.admission.clone().unwrap_or(Admission { owner_nations: vec!["*".into()], max_classification: None });
    }
    ClusterFacts::from_crd(&mc, None)
}

/// Re-checks an Assignment. `own` is the member's clearance ConfigMap, parsed (`None`: not present).
pub fn recheck(
    a: &Assignment,
    cluster: &str,
    mc: &MemberCluster,
    own: Option<&Result<MemberClearance, String>>,
    policies: &[SecurityPolicy],
    now: jiff::Timestamp,
) -> Result<(), Refusal> {
    if a.spec.cluster != cluster {
        return Err(Refusal {
            reason: "ClusterMismatch",
            message: format!("assignment is for cluster {}, this is {cluster}", a.spec.cluster),
        });
    }
    let expected = a.spec.compute_digest();
    if a.spec.digest != expected {
        return Err(Refusal {
            reason: "DigestMismatch",
            message: format!(
                "spec.digest {} does not match the spec (expected {expected}): tampered or stale",
                a.spec.digest
            ),
        });
    }
    let own = match own {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(Refusal { reason: "MemberClearanceInvalid", message: e.clone() }),
    };
    let facts = member_facts(mc, own);
    let snap = Snapshot::new(policies, vec![facts.clone()], &[], Settings::default());
    let source = if own.is_some() { "member clearance" } else { "MemberCluster clearance" };
    member_recheck(&facts, &a.spec.confidentiality, &a.spec.owner, &snap, now)
        .map_err(|f| Refusal { reason: f.reason.as_str(), message: format!("{source}: {}", f.message) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::tests::assignment;
    use serde_json::json;

    fn policy() -> SecurityPolicy {
        serde_json::from_value(json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "nato"},
            "spec": {"policyIdentifier": "NATO",
                     "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "COSMIC TOP SECRET"],
                     "categories": [{"tagName": "Releasable To", "type": "Permissive"}]}
        }))
        .unwrap()
    }

    fn member(classifications: &[&str]) -> MemberCluster {
        serde_json::from_value(json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "pol-1"},
            "spec": {"nation": "POL", "connection": {"mode": "Push"},
                     "clearance": {"policy": "NATO", "classifications": classifications,
                                   "categories": [{"tagName": "Releasable To", "values": ["POL", "NATO"]}],
                                   "reviewBy": "2099-01-01T00:00:00Z"},
                     "admission": {"ownerNations": ["*"]}, "tiers": ["core", "edge"]}
        }))
        .unwrap()
    }

    fn configmap(yaml: &str) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "marshal-clearance"}, "data": {CLEARANCE_KEY: yaml}}))
            .unwrap()
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn secret_is_refused_by_a_restricted_member_configmap() {
        let a = assignment("SECRET");
        let hub = member(&["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]);
        assert_eq!(recheck(&a, "pol-1", &hub, None, &[policy()], now()), Ok(()));
        let own = parse_member_clearance(&configmap(
            "nation: POL\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
             categories: [{tagName: Releasable To, values: [POL, NATO]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n",
        ));
        assert!(own.is_ok(), "{own:?}");
        let r = recheck(&a, "pol-1", &hub, Some(&own), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
        assert!(r.message.starts_with("member clearance"), "{}", r.message);
        assert_eq!(recheck(&assignment("RESTRICTED"), "pol-1", &hub, Some(&own), &[policy()], now()), Ok(()));
    }

    #[test]
    fn secret_is_refused_by_a_restricted_member_cluster_spec() {
        let hub = member(&["UNCLASSIFIED", "RESTRICTED"]);
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, None, &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
    }

    #[test]
    fn tampered_digest_and_wrong_cluster_are_refused() {
        let hub = member(&["SECRET"]);
        let mut a = assignment("SECRET");
        a.spec.replicas = 9;
        assert_eq!(recheck(&a, "pol-1", &hub, None, &[policy()], now()).unwrap_err().reason, "DigestMismatch");
        let a = assignment("SECRET");
        assert_eq!(recheck(&a, "deu-1", &hub, None, &[policy()], now()).unwrap_err().reason, "ClusterMismatch");
    }

    #[test]
    fn broken_member_clearance_fails_closed() {
        let hub = member(&["SECRET"]);
        let own = parse_member_clearance(&configmap("clearance: [not, a, map]"));
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, Some(&own), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "MemberClearanceInvalid");
    }
}
