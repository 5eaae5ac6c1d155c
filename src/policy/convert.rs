//! From SPIF models to SecurityPolicies: references resolved to category names and values, equivalences resolved
//! against the SPIFs of the other policies (by object identifier), bounds checked. Anything Marshal cannot
//! represent is refused with the element named.

use std::collections::{BTreeMap, BTreeSet};

use super::spif::{Class, Lacv, Loc, Ref, Req, Spif, SpifError, Tag};
use crate::api::{
    CategoryDefinition, CategoryMapping, CategoryRef, ClassificationMapping, ClassificationRule, EquivalentPolicy,
    RequiredCategory, RequiredOperation, SecurityPolicySpec, ValueRule,
};

type R<T> = Result<T, SpifError>;

fn fail<T>(at: &Loc, message: impl Into<String>) -> R<T> {
    Err(SpifError { at: at.clone(), message: message.into() })
}

/// The category values a reference names inside `spif`: a tag set (by name, or by id for `by_id`), the tags of the
/// reference's type in it (a set may hold several, whose lacvs are distinct), and one value by lacv or every value.
/// Every value resolves to its tag's name; `all` gives one reference per tag of that type.
fn resolve(spif: &Spif, r: &Ref, by_id: bool) -> R<Vec<CategoryRef>> {
    let set = spif.tag_sets.iter().find(|s| if by_id { s.id == r.tag_set } else { s.name == r.tag_set });
    let Some(set) = set else {
        let how = if by_id { "id" } else { "name" };
        return fail(&r.at, format!("policy {} has no securityCategoryTagSet with {how} {:?}", spif.name, r.tag_set));
    };
    let tags: Vec<&Tag> = set.tags.iter().filter(|t| t.kind == r.kind).collect();
    if tags.is_empty() {
        return fail(&r.at, format!("tag set {:?} of policy {} has no tag of type {:?}", set.name, spif.name, r.kind));
    }
    match &r.lacv {
        None => Ok(tags.iter().map(|t| CategoryRef { tag_name: t.name.clone(), values: Vec::new() }).collect()),
        Some(l) => {
            let found: Vec<(&Tag, &str)> = tags
                .iter()
                .flat_map(|t| t.values.iter().filter(|v| v.lacv == *l).map(move |v| (*t, v.name.as_str())))
                .collect();
            match found.as_slice() {
                [(t, v)] => Ok(vec![CategoryRef { tag_name: t.name.clone(), values: vec![v.to_string()] }]),
                [] => fail(
                    &r.at,
                    format!("tag set {:?} of policy {} has no {:?} value with lacv {l}", set.name, spif.name, r.kind),
                ),
                _ => fail(
                    &r.at,
                    format!(
                        "tag set {:?} has several {:?} values with lacv {l}: the reference is ambiguous",
                        set.name, r.kind
                    ),
                ),
            }
        }
    }
}

/// One reference as one Marshal reference, for places where a reference counts once (a `categoryGroup` under
/// `onlyOne` or `all`): "any value of tag A or of tag B" cannot be written as one.
fn resolve_one(spif: &Spif, r: &Ref) -> R<CategoryRef> {
    let mut refs = resolve(spif, r, false)?;
    match refs.len() {
        1 => Ok(refs.remove(0)),
        _ => fail(
            &r.at,
            format!(
                "all values of the {:?} tags of tag set {:?} ({}) count as one reference here, which Marshal cannot \
                 represent",
                r.kind,
                r.tag_set,
                refs.iter().map(|c| c.tag_name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

fn requirement(spif: &Spif, q: &Req) -> R<RequiredCategory> {
    let mut categories = Vec::new();
    for r in &q.refs {
        if q.op == RequiredOperation::OneOrMore {
            // "One or more of A∪B, C" is "one or more of A, B, C".
            categories.extend(resolve(spif, r, false)?);
        } else {
            categories.push(resolve_one(spif, r)?);
        }
    }
    Ok(RequiredCategory { operation: q.op, categories })
}

/// Categories a translated label gains (a `requiredCategory` inside an equivalence): every one of them is added,
/// so only `operation="all"` says what to add.
fn additions(target: &Spif, reqs: &[Req]) -> R<Vec<CategoryRef>> {
    let mut out = Vec::new();
    for q in reqs {
        if q.op != RequiredOperation::All {
            return fail(
                &q.at,
                format!(
                    "operation {} inside an equivalence would leave which categories to add to a choice; only all can \
                     be represented",
                    q.op.as_spif()
                ),
            );
        }
        for r in &q.refs {
            out.extend(resolve(target, r, false)?);
        }
    }
    Ok(out)
}

fn class_by_lacv<'a>(spif: &'a Spif, l: &Lacv, at: &Loc) -> R<&'a Class> {
    match spif.classifications.iter().find(|c| c.lacv == *l) {
        Some(c) => Ok(c),
        None => fail(at, format!("policy {} has no classification with lacv {l}", spif.name)),
    }
}

/// The SecurityPolicy spec of `spif`; `all` holds every SPIF given (for equivalences).
pub fn to_spec(spif: &Spif, all: &[&Spif]) -> R<SecurityPolicySpec> {
    // Classifications in hierarchy order; names, lacvs and hierarchies unique.
    let mut classes: Vec<&Class> = spif.classifications.iter().collect();
    for (i, c) in classes.iter().enumerate() {
        for o in &classes[..i] {
            if o.name == c.name {
                return fail(&c.at, format!("a second classification named {:?}", c.name));
            }
            if o.lacv == c.lacv {
                return fail(&c.at, format!("lacv {} is also the lacv of {:?}", c.lacv, o.name));
            }
            if o.hierarchy == c.hierarchy {
                return fail(
                    &c.at,
                    format!(
                        "hierarchy {} is also the hierarchy of {:?}: Marshal orders classifications strictly",
                        c.hierarchy, o.name
                    ),
                );
            }
        }
    }
    classes.sort_by_key(|c| c.hierarchy);
    let class_names: BTreeSet<&str> = classes.iter().map(|c| c.name.as_str()).collect();

    // Categories are keyed by tag name: two tags of one name cannot be represented (merging them would let one
    // value satisfy both, a widening), so they are refused.
    let mut names: BTreeMap<&str, &Loc> = BTreeMap::new();
    for set in &spif.tag_sets {
        if spif.tag_sets.iter().take_while(|s| !std::ptr::eq(*s, set)).any(|s| s.name == set.name || s.id == set.id) {
            return fail(&set.at, format!("a second tag set named {:?} or with id {}", set.name, set.id));
        }
        for tag in &set.tags {
            if let Some(first) = names.insert(&tag.name, &tag.at) {
                return fail(
                    &tag.at,
                    format!(
                        "a second tag named {:?} (the first is at {first}); Marshal keys categories by tag name and \
                         checks a permissive category once per name, so two tags of one name are refused rather than \
                         merged",
                        tag.name
                    ),
                );
            }
        }
    }

    let mut classification_rules = BTreeMap::new();
    for c in &classes {
        let required_categories = c.required.iter().map(|q| requirement(spif, q)).collect::<R<Vec<_>>>()?;
        if !required_categories.is_empty() || c.obsolete {
            classification_rules
                .insert(c.name.clone(), ClassificationRule { required_categories, obsolete: c.obsolete });
        }
    }

    let mut categories = Vec::new();
    for set in &spif.tag_sets {
        for tag in &set.tags {
            let mut values = Vec::new();
            let mut value_rules = BTreeMap::new();
            for (i, v) in tag.values.iter().enumerate() {
                if let Some(o) = tag.values[..i].iter().find(|o| o.name == v.name || o.lacv == v.lacv) {
                    return fail(
                        &v.at,
                        format!(
                            "a second value of tag {:?} named {:?} or with lacv {} (see {})",
                            tag.name, v.name, v.lacv, o.at
                        ),
                    );
                }
                values.push(v.name.clone());
                let mut rule = ValueRule { obsolete: v.obsolete, ..ValueRule::default() };
                for (class, at) in &v.excluded_classes {
                    if !class_names.contains(class.as_str()) {
                        return fail(at, format!("no classification named {class:?} in policy {}", spif.name));
                    }
                    if rule.excluded_classes.contains(class) {
                        return fail(at, format!("duplicate excluded classification {class:?} in value {:?}", v.name));
                    }
                    rule.excluded_classes.push(class.clone());
                }
                // Excluded if any reference matches: a reference to several tags is the same as one per tag.
                for r in &v.excluded {
                    rule.excluded_categories.extend(resolve(spif, r, false)?);
                }
                rule.required_categories = v.required.iter().map(|q| requirement(spif, q)).collect::<R<_>>()?;
                if rule != ValueRule::default() {
                    value_rules.insert(v.name.clone(), rule);
                }
            }
            categories.push(CategoryDefinition {
                tag_name: tag.name.clone(),
                type_: tag.kind,
                values,
                single_value: tag.single,
                value_rules,
            });
        }
    }

    let equivalent_policies = equivalences(spif, all)?;
    Ok(SecurityPolicySpec {
        policy_identifier: spif.name.clone(),
        policy_id: Some(spif.id.clone()),
        classifications: classes.iter().map(|c| c.name.clone()).collect(),
        classification_rules,
        categories,
        equivalent_policies,
    })
}

/// A value's mappings to one other policy in one direction: the direction, the equivalent values per tag, and
/// whether the value is discarded.
type Grouped = (crate::api::Applied, BTreeMap<String, BTreeSet<String>>, bool);

/// The equivalences `spif` states, one entry per other policy, resolved against that policy's SPIF.
fn equivalences(spif: &Spif, all: &[&Spif]) -> R<Vec<EquivalentPolicy>> {
    let mut out: BTreeMap<String, EquivalentPolicy> = BTreeMap::new();
    // The other policy of a `policyRef`, and its entry in `out`.
    let target = |alias: &str, at: &Loc| -> R<&Spif> {
        let Some(e) = spif.equivalent_policies.iter().find(|e| e.name == alias) else {
            return fail(at, format!("policyRef {alias:?} names no equivalentPolicy of this SPIF"));
        };
        match all.iter().find(|s| s.id == e.id) {
            Some(s) => Ok(*s),
            None => fail(
                at,
                format!(
                    "the mapping needs the SPIF of policy {alias:?} ({}), which is not among the files given: give its \
                     SPIF too (Marshal resolves a mapping to that policy's classifications and values)",
                    e.id
                ),
            ),
        }
    };
    let entry = |out: &mut BTreeMap<String, EquivalentPolicy>, t: &Spif| -> R<()> {
        out.entry(t.id.clone()).or_insert_with(|| EquivalentPolicy {
            policy_identifier: t.name.clone(),
            policy_id: Some(t.id.clone()),
            add_categories: Vec::new(),
            classifications: Vec::new(),
            categories: Vec::new(),
        });
        Ok(())
    };
    for e in &spif.equivalent_policies {
        if e.required.is_empty() {
            continue;
        }
        let t = target(&e.name, &e.at)?;
        entry(&mut out, t)?;
        let adds = additions(t, &e.required)?;
        if let Some(p) = out.get_mut(&t.id) {
            p.add_categories = adds;
        }
    }
    for c in &spif.classifications {
        for q in &c.equivs {
            let t = target(&q.policy_ref, &q.at)?;
            let equivalent = class_by_lacv(t, &q.lacv, &q.at)?.name.clone();
            if !q.applied.outbound() && !q.required.is_empty() {
                return fail(&q.at, "categories added on a decrypt-only mapping cannot be represented");
            }
            let add_categories = additions(t, &q.required)?;
            entry(&mut out, t)?;
            if let Some(p) = out.get_mut(&t.id) {
                p.classifications.push(ClassificationMapping {
                    classification: c.name.clone(),
                    equivalent,
                    applied: q.applied,
                    add_categories,
                });
            }
        }
    }
    for set in &spif.tag_sets {
        for tag in &set.tags {
            for v in &tag.values {
                // One mapping per (other policy, direction): the SPIF lists one element per equivalent value.
                let mut grouped: BTreeMap<(String, String), Grouped> = BTreeMap::new();
                for q in &v.equivs {
                    let t = target(&q.policy_ref, &q.at)?;
                    let key = (t.id.clone(), format!("{:?}", q.applied));
                    let g = grouped.entry(key).or_insert_with(|| (q.applied, BTreeMap::new(), false));
                    match &q.target {
                        None => g.2 = true,
                        Some(r) => {
                            for resolved in resolve(t, r, true)? {
                                g.1.entry(resolved.tag_name).or_default().extend(resolved.values);
                            }
                        }
                    }
                    if g.2 && !g.1.is_empty() {
                        return fail(&q.at, "a value both discarded and mapped for the same policy and direction");
                    }
                    entry(&mut out, t)?;
                }
                for ((id, _), (applied, equivalents, _)) in grouped {
                    if let Some(p) = out.get_mut(&id) {
                        p.categories.push(CategoryMapping {
                            tag_name: tag.name.clone(),
                            value: v.name.clone(),
                            equivalents: equivalents
                                .into_iter()
                                .map(|(tag_name, values)| CategoryRef {
                                    tag_name,
                                    values: values.into_iter().collect(),
                                })
                                .collect(),
                            applied,
                        });
                    }
                }
            }
        }
    }
    let mut list: Vec<EquivalentPolicy> = out.into_values().collect();
    list.sort_by(|a, b| a.policy_identifier.cmp(&b.policy_identifier));
    Ok(list)
}
