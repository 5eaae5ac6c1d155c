//! SecurityPolicy: the value domain of labels (a small SPIF).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// How a category constrains access.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CategoryType {
    /// The holder needs at least one of the label's values (e.g. `Releasable To`).
    Permissive,
    /// The holder needs every one of the label's values (e.g. `Special Handling`).
    Restrictive,
    /// Carried for information only; not an access-control check.
    Informative,
}

/// One category of the policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'Restrictive' || size(self.values) > 0").message("a Restrictive category must list its values"))]
pub struct CategoryDefinition {
    /// Category name, e.g. `Releasable To`.
    #[schemars(length(min = 1, max = 63))]
    pub tag_name: String,
    /// `Permissive`, `Restrictive` or `Informative`.
    #[serde(rename = "type")]
    pub type_: CategoryType,
    /// The allowed values. Empty means free values (nation codes and groups for `Releasable To`).
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub values: Vec<String>,
}

/// A security policy: the ordered classifications and the categories of labels under one policy identifier.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "SecurityPolicy",
    shortname = "secpol",
    category = "marshal",
    status = "SecurityPolicyStatus",
    doc = "The value domain of confidentiality labels under one policy identifier (a small SPIF).",
    printcolumn(name = "POLICY", type_ = "string", json_path = ".spec.policyIdentifier"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicySpec {
    /// Identifier labels and clearances use in their `policy` field, e.g. `NATO`.
    #[schemars(length(min = 1, max = 63))]
    pub policy_identifier: String,
    /// Classifications from lowest to highest.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub classifications: Vec<String>,
    /// Categories of the policy.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tagName".into()]))]
    pub categories: Vec<CategoryDefinition>,
}

/// Status of a SecurityPolicy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicyStatus {
    /// Generation last seen by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl SecurityPolicySpec {
    /// Rank of a classification (0 = lowest), if the policy knows it.
    pub fn rank(&self, classification: &str) -> Option<usize> {
        self.classifications.iter().position(|c| c == classification)
    }

    /// The definition of a category, if the policy declares it.
    pub fn category(&self, tag_name: &str) -> Option<&CategoryDefinition> {
        self.categories.iter().find(|c| c.tag_name == tag_name)
    }
}
