//! Equivalent policies: a label translated into another policy through the mappings a SPIF states (its
//! `equivalentPolicy`, `equivalentClassification` and `equivalentSecCategoryTag` elements, imported into
//! `SecurityPolicy.spec.equivalentPolicies`).
//!
//! A label of policy P reaches a clearance of policy Q through P's mappings to Q that apply outbound (`Encrypt` or
//! `Both`), or, when P states none, through Q's mappings from P that apply inbound (`Decrypt` or `Both`), read
//! backwards. No mapping in the right direction means no translation (fail closed). Every value of the label
//! needs an equivalent (a mapping with no equivalents drops it explicitly, the SPIF's `action="discard"`); a
//! classification with two different equivalents is ambiguous and is not translated. Outbound mappings may add
//! categories of Q (the SPIF's `requiredCategory` inside a mapping). The translated label is then checked for
//! validity under Q and decided by Q's ACDF like any other.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{CategoryRef, CategoryValues, ConfidentialityLabel, EquivalentPolicy, SecurityPolicySpec};

/// A label translated into another policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    /// Classification under the target policy.
    pub classification: String,
    /// Categories under the target policy, sorted by tag name, values sorted.
    pub categories: Vec<CategoryValues>,
    /// Which policy stated the mappings used (`P` outbound or `Q` inbound), for explanations.
    pub stated_by: String,
}

/// Whether `e` names the policy `name` (with object identifier `id`): by identifier, and by OID when both sides
/// state one.
fn names(e: &EquivalentPolicy, name: &str, id: Option<&str>) -> bool {
    e.policy_identifier == name && (e.policy_id.is_none() || id.is_none() || e.policy_id.as_deref() == id)
}

/// Adds the values `r` names (all declared values of its tag when it lists none) to `out`.
fn add(
    out: &mut BTreeMap<String, BTreeSet<String>>,
    r: &CategoryRef,
    target: Option<&SecurityPolicySpec>,
) -> Result<(), String> {
    if r.values.is_empty() {
        let declared = target.and_then(|t| t.category(&r.tag_name)).map(|d| &d.values).filter(|v| !v.is_empty());
        let Some(declared) = declared else {
            return Err(format!("a mapping adds every value of {:?}, which declares none", r.tag_name));
        };
        out.entry(r.tag_name.clone()).or_default().extend(declared.iter().cloned());
    } else {
        out.entry(r.tag_name.clone()).or_default().extend(r.values.iter().cloned());
    }
    Ok(())
}

fn one(classes: BTreeSet<&str>, from: &str, to: &str) -> Result<String, String> {
    let mut it = classes.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Err(format!("classification {from} has no equivalent in policy {to}")),
        (Some(c), None) => Ok(c.to_string()),
        (Some(a), Some(b)) => Err(format!("classification {from} has two equivalents in policy {to} ({a}, {b})")),
    }
}

fn finish(map: BTreeMap<String, BTreeSet<String>>) -> Vec<CategoryValues> {
    map.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(tag_name, values)| CategoryValues { tag_name, values: values.into_iter().collect() })
        .collect()
}

/// Translates `label` (of policy `label.policy`, whose spec is `from` when known) into policy `to_name` (spec `to`
/// when known). `None`: neither policy states a mapping in that direction. `Some(Err)`: a mapping exists but does
/// not translate this label.
pub fn translate(
    label: &ConfidentialityLabel,
    from: Option<&SecurityPolicySpec>,
    to_name: &str,
    to: Option<&SecurityPolicySpec>,
) -> Option<Result<Translated, String>> {
    let to_id = to.and_then(|t| t.policy_id.as_deref());
    let from_id = from.and_then(|f| f.policy_id.as_deref());
    let outbound = from.and_then(|f| f.equivalent_policies.iter().find(|e| names(e, to_name, to_id))).filter(|e| {
        e.classifications.iter().any(|m| m.applied.outbound()) || e.categories.iter().any(|m| m.applied.outbound())
    });
    if let Some(e) = outbound {
        return Some(forward(label, e, to_name, to));
    }
    let inbound =
        to.and_then(|t| t.equivalent_policies.iter().find(|e| names(e, &label.policy, from_id))).filter(|e| {
            e.classifications.iter().any(|m| m.applied.inbound()) || e.categories.iter().any(|m| m.applied.inbound())
        });
    inbound.map(|e| backward(label, e, to_name))
}

fn forward(
    label: &ConfidentialityLabel,
    e: &EquivalentPolicy,
    to_name: &str,
    to: Option<&SecurityPolicySpec>,
) -> Result<Translated, String> {
    let mappings: Vec<_> =
        e.classifications.iter().filter(|m| m.applied.outbound() && m.classification == label.classification).collect();
    let classification = one(mappings.iter().map(|m| m.equivalent.as_str()).collect(), &label.classification, to_name)?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &e.add_categories {
        add(&mut out, r, to)?;
    }
    for m in mappings.iter().filter(|m| m.equivalent == classification) {
        for r in &m.add_categories {
            add(&mut out, r, to)?;
        }
    }
    for c in &label.categories {
        for v in &c.values {
            let found: Vec<_> = e
                .categories
                .iter()
                .filter(|m| m.applied.outbound() && m.tag_name == c.tag_name && m.value == *v)
                .collect();
            if found.is_empty() {
                return Err(format!("{} value {v} has no equivalent in policy {to_name}", c.tag_name));
            }
            for r in found.iter().flat_map(|m| &m.equivalents) {
                add(&mut out, r, to)?;
            }
        }
    }
    Ok(Translated { classification, categories: finish(out), stated_by: label.policy.clone() })
}

fn backward(label: &ConfidentialityLabel, e: &EquivalentPolicy, to_name: &str) -> Result<Translated, String> {
    let classes: BTreeSet<&str> = e
        .classifications
        .iter()
        .filter(|m| m.applied.inbound() && m.equivalent == label.classification)
        .map(|m| m.classification.as_str())
        .collect();
    let classification = one(classes, &label.classification, to_name)?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &label.categories {
        for v in &c.values {
            let found: Vec<_> = e
                .categories
                .iter()
                .filter(|m| {
                    m.applied.inbound()
                        && m.equivalents.iter().any(|r| r.tag_name == c.tag_name && r.values.contains(v))
                })
                .collect();
            if found.is_empty() {
                return Err(format!("{} value {v} has no equivalent in policy {to_name}", c.tag_name));
            }
            for m in found {
                out.entry(m.tag_name.clone()).or_default().insert(m.value.clone());
            }
        }
    }
    Ok(Translated { classification, categories: finish(out), stated_by: to_name.to_string() })
}
