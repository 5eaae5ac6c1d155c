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
    /// The member removed its objects of this (deleting) Assignment: the controller may release the finalizer.
    /// Agents signal this through status; finalizers stay with the controller.
    Removed,
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
    /// Nations where the workload's data may reside (empty: any). The member re-checks it against its own
    /// nation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^[A-Z]{3}$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub residency: Vec<String>,
    /// The workload is `BreakBeforeMake`: at most one copy may ever run. The member's Deployment uses the
    /// `Recreate` strategy (no surge pod beside an old one), and a pull-mode agent cut off from the hub fences
    /// it. Signed, so that nobody on the hub path can turn an exclusive workload into a surging one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// Grows with every change of the signed content: milliseconds since the epoch on the hub's clock when the
    /// content changed, or the previous value plus one if that is larger. A member refuses a sequence lower than
    /// the one it last applied for this workload (a replayed, older instruction).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub sequence: i64,
    /// The member applies this instruction only until then (the controller renews it well before). Past it, a
    /// member refuses to apply it, but removes nothing it runs because of that.
    #[serde(default = "epoch", deserialize_with = "super::time::clamped")]
    pub not_after: Time,
    /// sha256 over the canonical JSON of everything the member must enforce and of where it may land (see
    /// [`AssignmentSpec::digest_for`]); the signature is over this digest.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

fn epoch() -> Time {
    Time(jiff::Timestamp::UNIX_EPOCH)
}

/// Status written by the syncer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentStatus {
    /// Applied, Refused, Failed, Removing or Removed.
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
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub synced_at: Option<Time>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "super::time::clamped_conditions")]
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

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl AssignmentSpec {
    /// The canonical JSON of what shapes the member's objects: target cluster, workload (namespace, name, uid),
    /// owner, label, residency, tier, replicas, template and (only when set, so that other digests do not change)
    /// exclusivity.
    fn content(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cluster": self.cluster,
            "workload": {"namespace": self.workload.namespace, "name": self.workload.name, "uid": self.workload.uid},
            "owner": self.owner,
            "confidentiality": self.confidentiality,
            "residency": self.residency,
            "tier": self.tier,
            "replicas": self.replicas,
            "template": self.template,
        });
        if self.exclusive
            && let Some(m) = v.as_object_mut()
        {
            m.insert("exclusive".into(), serde_json::Value::Bool(true));
        }
        v
    }

    /// `sha256:<hex>` over [`content`](Self::content) only: what the member's objects are built from. The member
    /// records it on its Deployment (`marshal.dev/digest`) and reports it as `status.appliedDigest`, so that a
    /// renewal (a new sequence and `notAfter`, same content) rewrites nothing in the member.
    pub fn content_digest(&self) -> String {
        sha256_hex(&canonical_json(&self.content()))
    }

    /// `sha256:<hex>` over the canonical JSON of the content and of where and when it may be applied: the
    /// Assignment's own namespace and name, the sequence and `notAfter`. So a signed digest cannot be replayed
    /// under another name or into another cluster's namespace, retargeted onto another member Deployment or
    /// workload (uid), rolled back to an older version (sequence), or used after it expired. The digest field
    /// itself is left out; the signature (annotations, see `crate::signing`) is over this digest.
    pub fn digest_for(&self, namespace: &str, name: &str) -> String {
        let body = serde_json::json!({
            "assignment": {"namespace": namespace, "name": name},
            "content": self.content(),
            "sequence": self.sequence,
            "notAfter": self.not_after,
        });
        sha256_hex(&canonical_json(&body))
    }
}

impl Assignment {
    /// [`AssignmentSpec::digest_for`] this Assignment's own namespace and name.
    pub fn compute_digest(&self) -> String {
        self.spec.digest_for(
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
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
            "sequence": 1_800_000_000_000_i64, "notAfter": "2027-01-15T08:00:00Z",
            "digest": ""
        }))
        .unwrap()
    }

    #[test]
    fn digest_covers_content_binding_sequence_and_expiry() {
        let base = spec().digest_for("marshal-pol-1", "baltic.isr");
        let content = spec().content_digest();
        type Edit = fn(&mut AssignmentSpec);
        let covered: [(&str, Edit); 12] = [
            ("exclusive", |s| s.exclusive = true),
            ("owner", |s| s.owner = "POL".into()),
            ("classification", |s| s.confidentiality.classification = "RESTRICTED".into()),
            ("categories", |s| s.confidentiality.categories[0].values.push("DEU".into())),
            ("tier", |s| s.tier = "edge".into()),
            ("replicas", |s| s.replicas = 3),
            ("template", |s| s.template.spec["containers"][0]["image"] = json!("j")),
            ("cluster", |s| s.cluster = "deu-1".into()),
            ("workload namespace", |s| s.workload.namespace = "other".into()),
            ("workload name", |s| s.workload.name = "other".into()),
            ("workload uid", |s| s.workload.uid = "u2".into()),
            ("residency", |s| s.residency = vec!["POL".into()]),
        ];
        for (what, edit) in covered {
            let mut s = spec();
            edit(&mut s);
            assert_ne!(s.digest_for("marshal-pol-1", "baltic.isr"), base, "{what} must change the digest");
            assert_ne!(s.content_digest(), content, "{what} must change the content digest");
        }
        // Where and when: the digest changes, the content digest does not (a renewal rewrites nothing).
        let renewals: [(&str, Edit); 2] = [
            ("sequence", |s| s.sequence += 1),
            ("notAfter", |s| s.not_after = Time(jiff::Timestamp::from_second(2_000_000_000).unwrap())),
        ];
        for (what, edit) in renewals {
            let mut s = spec();
            edit(&mut s);
            assert_ne!(s.digest_for("marshal-pol-1", "baltic.isr"), base, "{what} must change the digest");
            assert_eq!(s.content_digest(), content, "{what} is not content");
        }
        assert_ne!(spec().digest_for("marshal-deu-1", "baltic.isr"), base, "the namespace is bound");
        assert_ne!(spec().digest_for("marshal-pol-1", "baltic.isr2"), base, "the name is bound");
        let mut s = spec();
        s.digest = "sha256:00".into();
        assert_eq!(s.digest_for("marshal-pol-1", "baltic.isr"), base, "the digest field itself is not covered");
    }

    #[test]
    fn every_time_the_api_server_accepts_is_read() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v["notAfter"] = json!("9999-12-31T23:59:59Z");
        let s: AssignmentSpec = serde_json::from_value(v).unwrap();
        assert!(s.not_after.0 > jiff::Timestamp::from_second(250_000_000_000).unwrap(), "clamped, far away");
        let st: AssignmentStatus =
            serde_json::from_value(json!({"phase": "Applied", "syncedAt": "9999-12-31t23:59:59z"})).unwrap();
        assert!(st.synced_at.is_some());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": "x"}});
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#);
    }
}
