//! Filter 4, access control: the label expressed under the clearance's policy (the label itself, an explicit
//! alternative, or a translation through equivalent policies), valid under its policy, then the ADatP-4774.1
//! §3.11.4 access control decision function (ACDF):
//!
//! 1. the policy identifiers are equal (compared exactly: a documented choice);
//! 2. the label's classification is in the clearance's list (set membership, not an order);
//! 3. every value of a restrictive category (bitmap or enumerated) is held;
//! 4. every permissive category (bitmap or enumerated) has at least one value held;
//! 5. informative categories are ignored.
//!
//! Categories are grouped by tag name: a label carries one entry per category name, and a permissive category
//! is satisfied by any one of its values (spiffing's C++ ACDF groups the same way). Marshal's extension: for
//! *Releasable To*, the cluster's own nation counts as held.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use jiff::Timestamp;

use super::filters::{accredited, host_admission};
use super::model::{ClusterFacts, PolicyEntry, Snapshot};
use super::reasons::{Fail, Reason};
use super::{translate, validity};
use crate::api::{Access, CategoryValues, ConfidentialityLabel, RELEASABLE_TO, SecurityPolicySpec};

/// How the label reached the clearance's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The label is under that policy.
    Label,
    /// An explicit alternative of the label.
    Alternative,
    /// A translation through equivalent-policy mappings stated by this policy.
    Translation(String),
}

/// The label as the clearance's policy sees it.
#[derive(Clone, Debug)]
pub struct Expressed<'a> {
    /// Classification under the clearance's policy.
    pub classification: Cow<'a, str>,
    /// Categories under the clearance's policy.
    pub categories: Cow<'a, [CategoryValues]>,
    /// That policy.
    pub policy: &'a SecurityPolicySpec,
    /// How the label got there.
    pub via: Via,
}

/// The parts of filter 4 that depend only on the label and the policies: computed once per decision and per
/// clearance policy, then shared by every cluster under that policy.
pub struct LabelView<'a> {
    label: &'a ConfidentialityLabel,
    snap: &'a Snapshot,
    primary: Option<Result<(), Fail>>,
    under: Vec<(&'a str, Result<Expressed<'a>, Fail>)>,
}

fn policy_entry<'a>(snap: &'a Snapshot, id: &str) -> Result<&'a SecurityPolicySpec, Fail> {
    match snap.policies.get(id) {
        Some(PolicyEntry::Known(p)) => Ok(p),
        Some(PolicyEntry::Contradictory(names)) => Err(Fail::unknown(
            Reason::PolicyUnknown,
            format!("SecurityPolicies for {id} disagree ({}): fail closed", names.join(", ")),
        )),
        Some(PolicyEntry::Invalid { name, problems }) => Err(Fail::unknown(
            Reason::PolicyUnknown,
            format!("SecurityPolicy {name} for {id} is not valid ({}): fail closed", problems.join("; ")),
        )),
        None => Err(Fail::unknown(Reason::PolicyUnknown, format!("no SecurityPolicy with identifier {id}"))),
    }
}

impl<'a> LabelView<'a> {
    /// A view of `label` over the policies of `snap`.
    pub fn new(label: &'a ConfidentialityLabel, snap: &'a Snapshot) -> Self {
        LabelView { label, snap, primary: None, under: Vec::with_capacity(2) }
    }

    /// The originator's label is valid under its own policy.
    fn primary(&mut self) -> Result<(), Fail> {
        let (label, snap) = (self.label, self.snap);
        self.primary
            .get_or_insert_with(|| {
                let p = policy_entry(snap, &label.policy).map_err(|mut f| {
                    f.message = format!("the label cannot be validated: {}", f.message);
                    f
                })?;
                validity::check(&label.policy, p, &label.classification, &label.categories)
                    .map_err(|m| Fail::no(Reason::LabelInvalid, m))
            })
            .clone()
    }

    /// The label under policy `q`, valid there (cached per policy).
    pub fn under(&mut self, q: &'a str) -> Result<Expressed<'a>, Fail> {
        if let Some((_, r)) = self.under.iter().find(|(p, _)| *p == q) {
            return r.clone();
        }
        let r = self.compute(q);
        self.under.push((q, r.clone()));
        r
    }

    fn compute(&mut self, q: &'a str) -> Result<Expressed<'a>, Fail> {
        let (label, snap) = (self.label, self.snap);
        let from = policy_entry(snap, &label.policy);
        let to = policy_entry(snap, q);
        let alternatives: Vec<_> = label.alternatives.iter().filter(|a| a.policy == q).collect();
        let (classification, categories, via): (Cow<'a, str>, Cow<'a, [CategoryValues]>, Via) = if label.policy == q {
            (Cow::Borrowed(&label.classification), Cow::Borrowed(&label.categories), Via::Label)
        } else if alternatives.len() > 1 {
            return Err(Fail::no(Reason::LabelInvalid, format!("the label lists more than one alternative under {q}")));
        } else if let Some(a) = alternatives.first() {
            (Cow::Borrowed(&a.classification), Cow::Borrowed(&a.categories), Via::Alternative)
        } else {
            match translate::translate(label, from.as_ref().ok().copied(), q, to.as_ref().ok().copied()) {
                Some(Ok(t)) => (Cow::Owned(t.classification), Cow::Owned(t.categories), Via::Translation(t.stated_by)),
                Some(Err(why)) => {
                    return Err(Fail::no(
                        Reason::PolicyMismatch,
                        format!("the {} label cannot be translated into {q}: {why}", label.policy),
                    ));
                }
                None => {
                    let message = format!(
                        "label policy {} has no alternative under clearance policy {q} and neither policy maps it",
                        label.policy
                    );
                    // A policy that is missing might have held the mapping: that is not a "no".
                    let unknown = [&from, &to].into_iter().find_map(|e| e.as_ref().err());
                    return Err(match unknown {
                        Some(f) => Fail::unknown(Reason::PolicyUnknown, format!("{message}: {}", f.message)),
                        None => Fail::no(Reason::PolicyMismatch, message),
                    });
                }
            }
        };
        self.primary()?;
        let policy = to?;
        if via != Via::Label {
            let what = match &via {
                Via::Alternative => format!("its alternative under {q}"),
                _ => format!("its translation into {q}"),
            };
            validity::check(q, policy, &classification, &categories)
                .map_err(|m| Fail::no(Reason::LabelInvalid, format!("{what} is not valid: {m}")))?;
        }
        Ok(Expressed { classification, categories, policy, via })
    }
}

/// `a, b, c` appended to `out`.
fn join_into<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item);
    }
}

/// What the clearance holds of a category, for a message: `[NATO, POL]`, or `none of its values`.
fn holdings(out: &mut String, held: Option<&BTreeSet<String>>, own: Option<&str>) {
    let listed = held.map_or(0, BTreeSet::len);
    let own = own.filter(|n| held.is_none_or(|h| !h.contains(*n)));
    if listed == 0 && own.is_none() {
        out.push_str("none of its values");
        return;
    }
    out.push('[');
    join_into(out, held.into_iter().flatten().map(String::as_str).chain(own));
    out.push(']');
}

/// The ACDF for one cluster: the clearance holds what the label (under the clearance's policy) requires. Messages
/// say what the label requires and what the clearance lacks, naming the category (built in one buffer: this runs
/// for every candidate that fails).
pub fn acdf(c: &ClusterFacts, e: &Expressed<'_>) -> Result<(), Fail> {
    let clearance = &c.clearance;
    if let Some(why) = &clearance.defect {
        return Err(Fail::unknown(
            Reason::PolicyUnknown,
            format!("the clearance of {} is contradictory: {why}", c.name),
        ));
    }
    if !clearance.classifications.contains(e.classification.as_ref()) {
        let mut m = String::with_capacity(64 + e.classification.len() + c.name.len());
        m.push_str("the label is ");
        m.push_str(&e.classification);
        m.push_str(", which the clearance of ");
        m.push_str(&c.name);
        m.push_str(" does not list");
        return Err(Fail::no(Reason::ClassificationNotCleared, m));
    }
    for cat in e.categories.iter() {
        let Some(def) = e.policy.category(&cat.tag_name) else {
            return Err(Fail::no(Reason::LabelInvalid, format!("category {:?} is not defined", cat.tag_name)));
        };
        let held = clearance.categories.get(&cat.tag_name);
        let own = (cat.tag_name == RELEASABLE_TO).then_some(c.nation.as_str());
        let holds = |v: &str| held.is_some_and(|h| h.contains(v)) || own == Some(v);
        match def.type_.access() {
            Access::Informative => {}
            Access::Restrictive => {
                if cat.values.iter().all(|v| holds(v)) {
                    continue;
                }
                let mut m = String::with_capacity(160);
                let _ = write!(m, "{} is restrictive: the label requires every value of [", cat.tag_name);
                join_into(&mut m, cat.values.iter().map(String::as_str));
                let _ = write!(m, "]; the clearance of {} lacks ", c.name);
                join_into(&mut m, cat.values.iter().map(String::as_str).filter(|v| !holds(v)));
                m.push_str(" (it holds ");
                holdings(&mut m, held, own);
                m.push(')');
                return Err(Fail::no(Reason::NotReleasable, m));
            }
            Access::Permissive => {
                if cat.values.iter().any(|v| holds(v)) {
                    continue;
                }
                // The hot path of a fleet where most clusters may not hold a label: one buffer, no formatting.
                let mut m = String::with_capacity(128);
                m.push_str(&cat.tag_name);
                m.push_str(" is permissive: the label requires one of [");
                join_into(&mut m, cat.values.iter().map(String::as_str));
                m.push_str("]; the clearance of ");
                m.push_str(&c.name);
                m.push_str(" holds none of them");
                if own.is_some() {
                    m.push_str(" (its own nation counts as held)");
                }
                return Err(Fail::no(Reason::NotReleasable, m));
            }
        }
    }
    Ok(())
}

/// Filter 4 for one cluster through a shared [`LabelView`].
pub fn sovereignty<'a>(c: &'a ClusterFacts, view: &mut LabelView<'a>) -> Result<Expressed<'a>, Fail> {
    let e = view.under(&c.clearance.policy)?;
    acdf(c, &e)?;
    Ok(e)
}

/// The member's own re-check of an Assignment (zero trust: the member does not trust the hub): accreditation,
/// access control (validity included) and host admission against the member's clearance.
pub fn member_recheck(
    c: &ClusterFacts,
    label: &ConfidentialityLabel,
    owner: &str,
    snap: &Snapshot,
    now: Timestamp,
) -> Result<(), Fail> {
    accredited(c, now)?;
    let mut view = LabelView::new(label, snap);
    let e = sovereignty(c, &mut view)?;
    host_admission(c, owner, &e)
}
