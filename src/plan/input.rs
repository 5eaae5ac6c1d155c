//! Reading the planner's inputs: the same YAML a user applies, from files and directories.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{ClusterLink, MemberCluster, MissionWorkload, SecurityPolicy, SecurityPolicySpec};
use crate::error::Error;

/// Objects read from the inputs.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// SecurityPolicies.
    pub policies: Vec<SecurityPolicy>,
    /// MemberClusters (with status).
    pub clusters: Vec<MemberCluster>,
    /// ClusterLinks (with status).
    pub links: Vec<ClusterLink>,
    /// MissionWorkloads.
    pub workloads: Vec<MissionWorkload>,
}

/// YAML files under `path` (itself if a file), sorted; a directory's scenario files are skipped.
fn files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|source| Error::Read { path: path.to_path_buf(), source })?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if p.is_file() && yaml && !name.starts_with("scenario") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Deserialises `doc` into `T`, naming the failing field.
pub fn typed<T: DeserializeOwned>(doc: serde_json::Value, path: &Path, object: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(doc).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        object: object.to_string(),
        message: format!("field {}: {}", e.path(), e.inner()),
    })
}

/// Splits a YAML stream into JSON documents, skipping empty ones.
pub fn documents(text: &str, path: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let bad =
            |message: String| Error::Input { path: path.to_path_buf(), object: format!("document {}", i + 1), message };
        let yaml = serde_yaml::Value::deserialize(de).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let value = serde_json::to_value(yaml).map_err(|e| bad(format!("not representable as JSON: {e}")))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Reads every Marshal object under the given paths. Objects of other kinds are ignored. Besides each object's own
/// schema and rules, labels and clearances must be valid under the SecurityPolicies among the inputs, as the
/// hub's admission policy requires.
pub fn read(paths: &[PathBuf]) -> Result<Inputs, Error> {
    let mut inputs = Inputs::default();
    let mut origin: Vec<(String, PathBuf)> = Vec::new();
    let schemas = super::validate::Schemas::new();
    for root in paths {
        if !root.exists() {
            return Err(Error::Read {
                path: root.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            });
        }
        for path in files(root)? {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
            for (i, doc) in documents(&text, &path)?.into_iter().enumerate() {
                let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
                let name = doc.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default();
                let object =
                    if name.is_empty() { format!("{kind} (document {})", i + 1) } else { format!("{kind}/{name}") };
                let api = doc.get("apiVersion").and_then(|a| a.as_str()).unwrap_or_default();
                if !api.starts_with("marshal.dev/") {
                    continue;
                }
                if api != "marshal.dev/v1alpha1" {
                    return Err(Error::Input { path, object, message: format!("field apiVersion: unsupported {api}") });
                }
                let problems = schemas.check(&kind, &doc);
                if !problems.is_empty() {
                    return Err(Error::Input { path, object, message: problems.join("; ") });
                }
                origin.push((object.clone(), path.clone()));
                match kind.as_str() {
                    "SecurityPolicy" => inputs.policies.push(typed(doc, &path, &object)?),
                    "MemberCluster" => inputs.clusters.push(typed(doc, &path, &object)?),
                    "ClusterLink" => inputs.links.push(typed(doc, &path, &object)?),
                    "MissionWorkload" => {
                        let mut w: MissionWorkload = typed(doc, &path, &object)?;
                        if w.metadata.namespace.is_none() {
                            w.metadata.namespace = Some("default".into());
                        }
                        inputs.workloads.push(w)
                    }
                    "Assignment" => {}
                    other => {
                        return Err(Error::Input {
                            path,
                            object,
                            message: format!("field kind: unknown kind {other:?}"),
                        });
                    }
                }
            }
        }
    }
    check_names(&inputs)?;
    admission(&inputs, &origin)?;
    Ok(inputs)
}

/// The hub's admission policy (`deploy/admission-policy.yaml`, evaluated once per SecurityPolicy): a label (and
/// each alternative) under a policy among the inputs must be valid under every SecurityPolicy with that identifier,
/// and a clearance must use only that policy's classifications, categories and declared values. Labels under a
/// policy not among the inputs are admitted, as the API server does (`parameterNotFoundAction: Allow`).
fn admission(inputs: &Inputs, origin: &[(String, PathBuf)]) -> Result<(), Error> {
    let path_of = |object: &str| {
        origin.iter().find(|(o, _)| o == object).map_or_else(|| PathBuf::from("(inputs)"), |(_, p)| p.clone())
    };
    let under = |id: &str| -> Vec<&SecurityPolicy> {
        inputs.policies.iter().filter(|p| p.spec.policy_identifier == id).collect()
    };
    let deny = |object: String, field: &str, policy: &SecurityPolicy, why: String| Error::Input {
        path: path_of(&object),
        object,
        message: format!(
            "field {field}: {why} (admission policy marshal-labels.marshal.dev, SecurityPolicy {})",
            policy.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    for w in &inputs.workloads {
        let object = format!("MissionWorkload/{}", w.metadata.name.as_deref().unwrap_or_default());
        let label = &w.spec.confidentiality;
        for p in under(&label.policy) {
            crate::placement::validity::check(&label.policy, &p.spec, &label.classification, &label.categories)
                .map_err(|why| deny(object.clone(), "spec.confidentiality", p, why))?;
        }
        for (i, a) in label.alternatives.iter().enumerate() {
            for p in under(&a.policy) {
                crate::placement::validity::check(&a.policy, &p.spec, &a.classification, &a.categories)
                    .map_err(|why| deny(object.clone(), &format!("spec.confidentiality.alternatives[{i}]"), p, why))?;
            }
        }
    }
    for c in &inputs.clusters {
        let object = format!("MemberCluster/{}", c.metadata.name.as_deref().unwrap_or_default());
        let clearance = &c.spec.clearance;
        for p in under(&clearance.policy) {
            clearance_valid(&p.spec, clearance).map_err(|(field, why)| deny(object.clone(), &field, p, why))?;
        }
    }
    Ok(())
}

/// A clearance uses only its policy's classifications, categories and declared values.
fn clearance_valid(p: &SecurityPolicySpec, c: &crate::api::Clearance) -> Result<(), (String, String)> {
    for (i, k) in c.classifications.iter().enumerate() {
        if p.rank(k).is_none() {
            return Err((
                format!("spec.clearance.classifications[{i}]"),
                format!("{k} is not a classification of policy {}", p.policy_identifier),
            ));
        }
    }
    for (i, cat) in c.categories.iter().enumerate() {
        let Some(def) = p.category(&cat.tag_name) else {
            return Err((
                format!("spec.clearance.categories[{i}]"),
                format!("category {:?} is not defined by policy {}", cat.tag_name, p.policy_identifier),
            ));
        };
        if let Some(v) = cat.values.iter().find(|v| !def.values.is_empty() && !def.values.contains(v)) {
            return Err((
                format!("spec.clearance.categories[{i}]"),
                format!("{} value {v} is not declared by policy {}", cat.tag_name, p.policy_identifier),
            ));
        }
    }
    Ok(())
}

fn check_names(inputs: &Inputs) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for c in &inputs.clusters {
        let name = c.metadata.name.clone().unwrap_or_default();
        if name.is_empty() || !seen.insert(name.clone()) {
            return Err(Error::Input {
                path: PathBuf::from("(inputs)"),
                object: format!("MemberCluster/{name}"),
                message: "field metadata.name: missing or duplicated".into(),
            });
        }
    }
    Ok(())
}
