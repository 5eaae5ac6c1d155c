//! SecurityPolicy: the value domain of labels and the rules that make a label valid (a SPIF in Marshal's shape).
//!
//! It carries what an Open XML SPIF says about access control and validity (ADatP-4774): the classifications in
//! hierarchy order; the categories with their tag types and declared values; per value, the classifications it
//! excludes (`excludedClass`), the categories it excludes (`excludedCategory`) and the categories it requires
//! (`requiredCategory`); per classification, the categories it requires; and how labels translate into
//! equivalent policies. `marshal policy import` writes it from a SPIF.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// How a category constrains access (the SPIF's tag types).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CategoryType {
    /// The holder needs at least one of the label's values (e.g. `Releasable To`). SPIF `permissive` (bitmap).
    Permissive,
    /// The holder needs every one of the label's values (e.g. `Special Handling`). SPIF `restrictive` (bitmap).
    Restrictive,
    /// Carried for information only; not an access-control check. SPIF `tagType7`.
    Informative,
    /// Permissive, with enumerated attributes. SPIF `enumerated` with `enumType="permissive"`.
    EnumeratedPermissive,
    /// Restrictive, with enumerated attributes. SPIF `enumerated` with `enumType="restrictive"`.
    EnumeratedRestrictive,
}

/// How the access control decision treats a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every value must be held.
    Restrictive,
    /// One value per tag must be held.
    Permissive,
    /// Ignored.
    Informative,
}

impl CategoryType {
    /// The ACDF's treatment: enumerated forms decide like their bitmap forms.
    pub fn access(self) -> Access {
        match self {
            CategoryType::Restrictive | CategoryType::EnumeratedRestrictive => Access::Restrictive,
            CategoryType::Permissive | CategoryType::EnumeratedPermissive => Access::Permissive,
            CategoryType::Informative => Access::Informative,
        }
    }
}

/// A reference to category values in a validity rule (a SPIF `categoryGroup` or `excludedCategory`): the
/// label matches it when it carries one of `values` under `tagName`, or any value of it when `values` is empty.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRef {
    /// Category name, e.g. `Releasable To`.
    #[schemars(length(min = 1, max = 63))]
    pub tag_name: String,
    /// Values; empty means every value of the category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub values: Vec<String>,
}

/// How many references of a requirement a label must match.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequiredOperation {
    /// At least one.
    OneOrMore,
    /// Exactly one.
    OnlyOne,
    /// Every one.
    All,
}

impl RequiredOperation {
    /// The SPIF spelling (`oneOrMore`, `onlyOne`, `all`).
    pub fn as_spif(self) -> &'static str {
        match self {
            RequiredOperation::OneOrMore => "oneOrMore",
            RequiredOperation::OnlyOne => "onlyOne",
            RequiredOperation::All => "all",
        }
    }
}

/// Categories a label must carry (a SPIF `requiredCategory`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RequiredCategory {
    /// `OneOrMore`, `OnlyOne` or `All` of `categories` must match the label.
    pub operation: RequiredOperation,
    /// The references counted.
    #[schemars(length(min = 1, max = 16))]
    pub categories: Vec<CategoryRef>,
}

/// The validity rules of one category value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ValueRule {
    /// Classifications this value may not be used with (SPIF `excludedClass`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub excluded_classes: Vec<String>,
    /// Category values this value may not be used together with (SPIF `excludedCategory`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub excluded_categories: Vec<CategoryRef>,
    /// Categories a label with this value must also carry (SPIF `requiredCategory`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub required_categories: Vec<RequiredCategory>,
    /// The SPIF marks the value obsolete: kept so that existing labels stay valid; new labels should not use it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub obsolete: bool,
}

/// The validity rules of one classification.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ClassificationRule {
    /// Categories a label with this classification must carry (SPIF `requiredCategory`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub required_categories: Vec<RequiredCategory>,
    /// The SPIF marks the classification obsolete: kept so that existing labels stay valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub obsolete: bool,
}

/// One category of the policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.type in ['Restrictive', 'EnumeratedRestrictive']) || size(self.values) > 0").message("a Restrictive category must list its values"))]
#[x_kube(validation = Rule::new("!has(self.valueRules) || size(self.values) == 0 || self.valueRules.all(v, v in self.values)").message("valueRules may only name values the category declares"))]
pub struct CategoryDefinition {
    /// Category name, e.g. `Releasable To`.
    #[schemars(length(min = 1, max = 63))]
    pub tag_name: String,
    /// `Permissive`, `Restrictive`, `Informative`, `EnumeratedPermissive` or `EnumeratedRestrictive`.
    #[serde(rename = "type")]
    pub type_: CategoryType,
    /// The declared values. A label may use no other value. Empty means free values (nation codes and groups
    /// for `Releasable To`).
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub values: Vec<String>,
    /// A label may carry at most one value of this category (SPIF `singleSelection`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_value: bool,
    /// Validity rules per value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    pub value_rules: BTreeMap<String, ValueRule>,
}

/// How a mapping between equivalent policies is applied (the SPIF's `applied`).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Applied {
    /// Labels of this policy translate into the other policy (a label leaving this policy's domain).
    Encrypt,
    /// Labels of the other policy translate into this policy (a label entering this policy's domain).
    Decrypt,
    /// Both directions.
    Both,
}

impl Applied {
    /// Whether a mapping written in policy A applies to A's labels translated into the other policy.
    pub fn outbound(self) -> bool {
        matches!(self, Applied::Encrypt | Applied::Both)
    }
    /// Whether a mapping written in policy A applies to the other policy's labels translated into A.
    pub fn inbound(self) -> bool {
        matches!(self, Applied::Decrypt | Applied::Both)
    }
}

/// One classification of this policy and its equivalent in the other policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ClassificationMapping {
    /// A classification of this policy.
    #[schemars(length(min = 1, max = 63))]
    pub classification: String,
    /// The equivalent classification of the other policy.
    #[schemars(length(min = 1, max = 63))]
    pub equivalent: String,
    /// `Encrypt`, `Decrypt` or `Both`.
    pub applied: Applied,
    /// Categories of the other policy the translated label gains (SPIF `requiredCategory` of the mapping).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub add_categories: Vec<CategoryRef>,
}

/// One category value of this policy and its equivalents in the other policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct CategoryMapping {
    /// A category of this policy.
    #[schemars(length(min = 1, max = 63))]
    pub tag_name: String,
    /// One of its values.
    #[schemars(length(min = 1, max = 63))]
    pub value: String,
    /// The equivalent values of the other policy. Empty: the value is dropped on translation (SPIF
    /// `action="discard"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub equivalents: Vec<CategoryRef>,
    /// `Encrypt`, `Decrypt` or `Both`.
    pub applied: Applied,
}

/// How labels of this policy correspond to labels of another policy (a SPIF `equivalentPolicy` and the
/// `equivalentClassification` and `equivalentSecCategoryTag` elements naming it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct EquivalentPolicy {
    /// `policyIdentifier` of the other SecurityPolicy.
    #[schemars(length(min = 1, max = 63))]
    pub policy_identifier: String,
    /// Object identifier of the other policy, when known; a translation is used only if it matches the other
    /// SecurityPolicy's `policyId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[0-9]+(\.[0-9]+)*$"))]
    pub policy_id: Option<String>,
    /// Categories of the other policy every label translated into it gains (SPIF `requiredCategory` of the
    /// `equivalentPolicy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub add_categories: Vec<CategoryRef>,
    /// Classification equivalences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub classifications: Vec<ClassificationMapping>,
    /// Category value equivalences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub categories: Vec<CategoryMapping>,
}

/// A security policy: the classifications in hierarchy order, the categories of labels under one policy
/// identifier, the rules that make a label valid, and the equivalences to other policies.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "marshal.dev",
    version = "v1alpha1",
    kind = "SecurityPolicy",
    shortname = "secpol",
    category = "marshal",
    status = "SecurityPolicyStatus",
    doc = "The value domain of confidentiality labels under one policy identifier and the rules that make a label valid (a SPIF).",
    printcolumn(name = "POLICY", type_ = "string", json_path = ".spec.policyIdentifier"),
    printcolumn(name = "OID", type_ = "string", json_path = ".spec.policyId"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.classificationRules) || self.classificationRules.all(k, k in self.classifications)").message("classificationRules may only name classifications of the policy"))]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicySpec {
    /// Identifier labels and clearances use in their `policy` field, e.g. `NATO` (the SPIF's policy name).
    #[schemars(length(min = 1, max = 63))]
    pub policy_identifier: String,
    /// The policy's object identifier, e.g. `1.3.26.1.3.1` (the SPIF's `securityPolicyId id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[0-9]+(\.[0-9]+)*$"))]
    pub policy_id: Option<String>,
    /// Classifications from lowest to highest.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub classifications: Vec<String>,
    /// Validity rules per classification.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub classification_rules: BTreeMap<String, ClassificationRule>,
    /// Categories of the policy.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["tagName".into()]))]
    pub categories: Vec<CategoryDefinition>,
    /// How labels translate into other policies (and theirs into this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["policyIdentifier".into()]))]
    pub equivalent_policies: Vec<EquivalentPolicy>,
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

    /// What the API server would have refused in this spec (lists that must be sets or maps): the engine never
    /// trusts the first match in a list with duplicates. Each problem names its field.
    pub fn duplicates(&self) -> Vec<String> {
        let mut out = Vec::new();
        dup(&mut out, "spec.classifications", self.classifications.iter().map(String::as_str));
        dup(&mut out, "spec.categories", self.categories.iter().map(|c| c.tag_name.as_str()));
        for (i, c) in self.categories.iter().enumerate() {
            dup(&mut out, &format!("spec.categories[{i}].values"), c.values.iter().map(String::as_str));
            for (v, r) in &c.value_rules {
                let at = format!("spec.categories[{i}].valueRules[{v:?}].excludedClasses");
                dup(&mut out, &at, r.excluded_classes.iter().map(String::as_str));
            }
        }
        dup(&mut out, "spec.equivalentPolicies", self.equivalent_policies.iter().map(|e| e.policy_identifier.as_str()));
        out
    }
}

/// Appends `field lists X twice` for every value that occurs more than once.
fn dup<'a>(out: &mut Vec<String>, field: &str, items: impl Iterator<Item = &'a str>) {
    let mut seen = std::collections::BTreeSet::new();
    let mut twice = std::collections::BTreeSet::new();
    for i in items {
        if !seen.insert(i) {
            twice.insert(i);
        }
    }
    for t in twice {
        out.push(format!("{field} lists {t:?} more than once"));
    }
}
