//! Label validity under its policy (ADatP-4774, checked before the access control decision): the classification
//! and categories are the policy's, every value is declared, and the SPIF's rules hold: per value the
//! classifications it excludes (`excludedClass`), the categories it excludes (`excludedCategory`) and the categories
//! it requires (`requiredCategory`), and per classification the categories it requires. An invalid label never
//! reaches the ACDF. The same rules are the hub's admission policy (`deploy/admission-policy.yaml`).

use crate::api::{CategoryRef, CategoryValues, RequiredCategory, RequiredOperation, SecurityPolicySpec};

/// Whether a label carries what a reference names: one of its values under its tag, or any value when the
/// reference lists none.
pub fn matches(r: &CategoryRef, categories: &[CategoryValues]) -> bool {
    categories
        .iter()
        .filter(|c| c.tag_name == r.tag_name)
        .any(|c| r.values.is_empty() || c.values.iter().any(|v| r.values.contains(v)))
}

/// `Releasable To [POL, DEU]`, or `Releasable To (any value)`.
pub fn describe(r: &CategoryRef) -> String {
    if r.values.is_empty() {
        format!("{} (any value)", r.tag_name)
    } else {
        format!("{} [{}]", r.tag_name, r.values.join(", "))
    }
}

fn operation(op: RequiredOperation) -> &'static str {
    match op {
        RequiredOperation::OneOrMore => "one or more of",
        RequiredOperation::OnlyOne => "exactly one of",
        RequiredOperation::All => "all of",
    }
}

/// Checks one `requiredCategory`: how many of its references the label matches.
fn required(req: &RequiredCategory, categories: &[CategoryValues], who: &str) -> Result<(), String> {
    let n = req.categories.iter().filter(|r| matches(r, categories)).count();
    let ok = match req.operation {
        RequiredOperation::OneOrMore => n >= 1,
        RequiredOperation::OnlyOne => n == 1,
        RequiredOperation::All => n == req.categories.len(),
    };
    if ok {
        return Ok(());
    }
    let refs: Vec<String> = req.categories.iter().map(describe).collect();
    Err(format!(
        "{who} requires {} {} (requiredCategory {}); the label matches {n}",
        operation(req.operation),
        refs.join("; "),
        req.operation.as_spif()
    ))
}

/// Checks a label (`classification` and `categories`) against `policy`, whose identifier is `name`. The error
/// names the rule that fails and what the label carries.
pub fn check(
    name: &str,
    policy: &SecurityPolicySpec,
    classification: &str,
    categories: &[CategoryValues],
) -> Result<(), String> {
    if policy.rank(classification).is_none() {
        return Err(format!("classification {classification} is not defined by policy {name}"));
    }
    for (i, c) in categories.iter().enumerate() {
        if categories[..i].iter().any(|o| o.tag_name == c.tag_name) {
            return Err(format!("the label lists category {:?} more than once", c.tag_name));
        }
        let Some(def) = policy.category(&c.tag_name) else {
            return Err(format!("category {:?} is not defined by policy {name}", c.tag_name));
        };
        if def.single_value && c.values.len() > 1 {
            return Err(format!(
                "{} takes a single value under policy {name} (singleSelection); the label has [{}]",
                c.tag_name,
                c.values.join(", ")
            ));
        }
        for (j, v) in c.values.iter().enumerate() {
            if c.values[..j].contains(v) {
                return Err(format!("the label lists {} value {v} more than once", c.tag_name));
            }
            if !def.values.is_empty() && !def.values.contains(v) {
                return Err(format!("{} value {v} is not declared by policy {name}", c.tag_name));
            }
        }
    }
    for c in categories {
        let Some(def) = policy.category(&c.tag_name) else { continue };
        for v in &c.values {
            let Some(rule) = def.value_rules.get(v) else { continue };
            if rule.excluded_classes.iter().any(|x| x == classification) {
                return Err(format!(
                    "{} value {v} may not be used with classification {classification} (excludedClass of policy {name})",
                    c.tag_name
                ));
            }
            if let Some(x) = rule.excluded_categories.iter().find(|x| matches(x, categories)) {
                return Err(format!(
                    "{} value {v} may not be used together with {} (excludedCategory of policy {name})",
                    c.tag_name,
                    describe(x)
                ));
            }
            for req in &rule.required_categories {
                required(req, categories, &format!("{} value {v}", c.tag_name))?;
            }
        }
    }
    if let Some(rule) = policy.classification_rules.get(classification) {
        for req in &rule.required_categories {
            required(req, categories, &format!("classification {classification}"))?;
        }
    }
    Ok(())
}
