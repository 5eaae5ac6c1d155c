//! Assignment: one workload's share on one cluster, written by the controller and applied by the syncer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::label::ConfidentialityLabel;
use super::mission_workload::WorkloadTemplate;

/// The workload an Assignment comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Namespace of the MissionWorkload (also the member namespace).
    pub namespace: String,
    /// Name of the MissionWorkload (also the member Deployment name).
    pub name: String,
    /// UID of the MissionWorkload.
    #[serde(default)]
    pub uid: String,
}

/// What the syncer did with an Assignment.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AssignmentPhase {
    /// Not handled yet.
    #[default]
    Pending,
    /// Applied in the member.
    Applied,
    /// The member refused it (label not allowed by the member's own clearance, or bad signature).
    Refused,
    /// Applying failed.
    Failed,
    /// The member objects are being removed.
    Removing,
}

/// One workload's share on one cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "Assignment",
    namespaced,
    shortname = "asg",
    category = "marshal",
    status = "AssignmentStatus",
    doc = "One MissionWorkload's share on one member cluster, written by the controller into marshal-<cluster>.",
    printcolumn(name = "CLUSTER", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "TIER", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "REPLICAS", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "READY", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "PHASE", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentSpec {
    /// Target MemberCluster.
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
    /// Source workload.
    pub workload: WorkloadRef,
    /// Owner nation.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub owner: String,
    /// The workload's label, re-checked by the member.
    pub confidentiality: ConfidentialityLabel,
    /// Node tier (`nodeSelector marshal.dev/tier`).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$"))]
    pub tier: String,
    /// Replicas on this cluster.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Pod template.
    pub template: WorkloadTemplate,
    /// sha256 over the canonical JSON of everything the member must enforce.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

/// Status written by the syncer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentStatus {
    /// Applied, Refused, Failed or Removing.
    #[serde(default)]
    pub phase: AssignmentPhase,
    /// Ready replicas in the member.
    #[serde(default)]
    pub ready_replicas: u32,
    /// Detail for Refused or Failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Digest the member applied.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_digest: String,
    /// Last successful sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<Time>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Canonical JSON: object keys sorted at every level, no insignificant whitespace.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

impl AssignmentSpec {
    /// `sha256:<hex>` over the canonical JSON of everything the member must enforce: owner, confidentiality,
    /// tier, replicas and template, plus the target cluster and the workload's namespace and name. The last
    /// three are deliberate: they say where the payload may land, so a signed digest cannot be replayed to
    /// another cluster or retargeted onto another member Deployment. `workload.uid` (informational) and the
    /// digest itself are left out; the signature (annotations, see `crate::signing`) is over this digest.
    pub fn compute_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let body = serde_json::json!({
            "cluster": self.cluster,
            "workload": {"namespace": self.workload.namespace, "name": self.workload.name},
            "owner": self.owner,
            "confidentiality": self.confidentiality,
            "tier": self.tier,
            "replicas": self.replicas,
            "template": self.template,
        });
        let hash = Sha256::digest(canonical_json(&body).as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> AssignmentSpec {
        serde_json::from_value(json!({
            "cluster": "pol-1", "workload": {"namespace": "baltic", "name": "isr", "uid": "u1"}, "owner": "LTU",
            "confidentiality": {"policy": "NATO", "classification": "SECRET",
                                "categories": [{"tagName": "Releasable To", "values": ["POL"]}]},
            "tier": "core", "replicas": 2,
            "template": {"metadata": {"labels": {"app": "isr"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "digest": ""
        }))
        .unwrap()
    }

    #[test]
    fn digest_covers_exactly_what_the_member_enforces_and_where_it_lands() {
        let base = spec().compute_digest();
        type Edit = fn(&mut AssignmentSpec);
        let covered: [(&str, Edit); 9] = [
            ("owner", |s| s.owner = "POL".into()),
            ("classification", |s| s.confidentiality.classification = "RESTRICTED".into()),
            ("categories", |s| s.confidentiality.categories[0].values.push("DEU".into())),
            ("tier", |s| s.tier = "edge".into()),
            ("replicas", |s| s.replicas = 3),
            ("template", |s| s.template.spec["containers"][0]["image"] = json!("j")),
            ("cluster", |s| s.cluster = "deu-1".into()),
            ("workload namespace", |s| s.workload.namespace = "other".into()),
            ("workload name", |s| s.workload.name = "other".into()),
        ];
        for (what, edit) in covered {
            let mut s = spec();
            edit(&mut s);
            assert_ne!(s.compute_digest(), base, "{what} must change the digest");
        }
        let mut s = spec();
        s.workload.uid = "u2".into();
        s.digest = "sha256:00".into();
        assert_eq!(s.compute_digest(), base, "uid and the digest field itself are not covered");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": "x"}});
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#);
    }
}
