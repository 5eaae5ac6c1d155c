//! STANAG 4774-shaped confidentiality labels and clearances.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The values a label (or clearance) carries for one category, e.g. `Releasable To: [LTU, POL]`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct CategoryValues {
    /// Category name as declared by the SecurityPolicy, e.g. `Releasable To`.
    #[schemars(length(min = 1, max = 63))]
    pub tag_name: String,
    /// Category values, e.g. nation codes (`POL`) or groups (`NATO`).
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub values: Vec<String>,
}

/// An equivalent label under another (typically national) policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct AlternativeLabel {
    /// Policy identifier of the SecurityPolicy this label is expressed in.
    #[schemars(length(min = 1, max = 63))]
    pub policy: String,
    /// Classification under that policy.
    #[schemars(length(min = 1, max = 63))]
    pub classification: String,
    /// Categories under that policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tagName".into()]))]
    pub categories: Vec<CategoryValues>,
}

/// A confidentiality label: the originator's policy, classification and categories (STANAG 4774 shape).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ConfidentialityLabel {
    /// Policy identifier of the SecurityPolicy that defines the label's values, e.g. `NATO`.
    #[schemars(length(min = 1, max = 63))]
    pub policy: String,
    /// Classification, one of the policy's classifications, e.g. `RESTRICTED`.
    #[schemars(length(min = 1, max = 63))]
    pub classification: String,
    /// Categories, e.g. `{tagName: Releasable To, values: [LTU, POL]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tagName".into()]))]
    pub categories: Vec<CategoryValues>,
    /// Equivalent labels under other policies, used when a cluster's clearance is under another policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["policy".into()]))]
    pub alternatives: Vec<AlternativeLabel>,
}

/// What a cluster may hold: a STANAG 4774 clearance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Clearance {
    /// Policy identifier the clearance is expressed in.
    #[schemars(length(min = 1, max = 63))]
    pub policy: String,
    /// Classifications the cluster is cleared for.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub classifications: Vec<String>,
    /// Category values the cluster holds. For `Releasable To` the cluster's own nation is always implied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tagName".into()]))]
    pub categories: Vec<CategoryValues>,
    /// Accreditation expiry (RFC 3339). After it the cluster is not eligible for anything (fail closed). Any time
    /// the API server accepts is read, up to `9999-12-31T23:59:59Z` (a common "never").
    #[serde(deserialize_with = "super::time::clamped")]
    pub review_by: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

impl ConfidentialityLabel {
    /// The label expressed under `policy`: the primary label or the alternative with that policy.
    pub fn under_policy(&self, policy: &str) -> Option<(&str, &[CategoryValues])> {
        if self.policy == policy {
            return Some((&self.classification, &self.categories));
        }
        self.alternatives
            .iter()
            .find(|a| a.policy == policy)
            .map(|a| (a.classification.as_str(), a.categories.as_slice()))
    }
}
