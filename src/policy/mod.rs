//! `marshal policy import`: SecurityPolicies from Open XML SPIF files (the schema NATO's SPIF for ADatP-4774
//! and the open `spiffing` library use).
//!
//! Each file gives one SecurityPolicy: the policy identifier (name and OID); the classifications in hierarchy
//! order; the categories with their types (restrictive, permissive, informative and the enumerated forms) and
//! declared values; the validity rules (`excludedClass`, `excludedCategory`, `requiredCategory` on values and on
//! classifications, `singleSelection`, `obsolete`); and the mappings to equivalent policies, resolved against the
//! other files given. The result is checked against the CRD's schema and rules, so what is printed is what the
//! API server accepts. What cannot be represented is refused, naming the element.

pub mod convert;
pub mod spif;

use std::path::{Path, PathBuf};

use crate::api::SecurityPolicy;
use crate::error::Error;

/// A Kubernetes object name for a policy name (`UK Demo` → `uk-demo`).
pub fn object_name(policy: &str) -> String {
    let mut out = String::new();
    for ch in policy.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-');
    let mut name: String = trimmed.chars().take(63).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() { "policy".to_string() } else { name }
}

fn input_error(path: &Path, e: spif::SpifError) -> Error {
    Error::Input { path: path.to_path_buf(), object: e.at.to_string(), message: e.message }
}

/// Imports SPIF texts (`(path, text)`), one SecurityPolicy each, in the order given.
pub fn import_texts(texts: &[(PathBuf, String)]) -> Result<Vec<SecurityPolicy>, Error> {
    let mut parsed = Vec::with_capacity(texts.len());
    for (path, text) in texts {
        parsed.push((path, spif::parse(text).map_err(|e| input_error(path, e))?));
    }
    for (i, (path, s)) in parsed.iter().enumerate() {
        if let Some((other, _)) = parsed[..i].iter().find(|(_, o)| o.id == s.id) {
            return Err(Error::Input {
                path: path.to_path_buf(),
                object: "securityPolicyId".into(),
                message: format!("policy {} has the object identifier {} of {}", s.name, s.id, other.display()),
            });
        }
    }
    let all: Vec<&spif::Spif> = parsed.iter().map(|(_, s)| s).collect();
    let schemas = crate::plan::validate::Schemas::new();
    let mut out = Vec::new();
    for (path, s) in &parsed {
        let spec = convert::to_spec(s, &all).map_err(|e| input_error(path, e))?;
        let policy = SecurityPolicy::new(&object_name(&s.name), spec);
        let json = serde_json::to_value(&policy).map_err(|e| Error::Output(e.to_string()))?;
        let problems = schemas.check("SecurityPolicy", &json);
        if !problems.is_empty() {
            return Err(Error::Input {
                path: path.to_path_buf(),
                object: format!("SecurityPolicy {}", s.name),
                message: format!("the API server would refuse the imported policy: {}", problems.join("; ")),
            });
        }
        if !s.ignored.is_empty() {
            let list: Vec<&str> = s.ignored.iter().map(String::as_str).collect();
            eprintln!("{}: presentation only, not part of a SecurityPolicy: {}", path.display(), list.join(", "));
        }
        out.push(policy);
    }
    Ok(out)
}

/// Reads and imports SPIF files.
pub fn import_files(paths: &[PathBuf]) -> Result<Vec<SecurityPolicy>, Error> {
    let mut texts = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|source| Error::Read { path: p.clone(), source })?;
        texts.push((p.clone(), text));
    }
    import_texts(&texts)
}

/// The policies as a multi-document YAML stream (apply it with `kubectl apply -f -`).
pub fn to_yaml(policies: &[SecurityPolicy]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for p in policies {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(p)?);
    }
    Ok(out)
}

/// The policies as JSON: the object itself for one, a `List` for several.
pub fn to_json(policies: &[SecurityPolicy]) -> Result<String, serde_json::Error> {
    let value = match policies {
        [one] => serde_json::to_value(one)?,
        many => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many}),
    };
    let mut s = serde_json::to_string_pretty(&value)?;
    s.push('\n');
    Ok(s)
}
