//! Validates planner inputs as the API server would: the CRD's OpenAPI schema (types, required fields,
//! patterns, lengths, ranges, enums, `date-time` formats, unique `set` and `map` lists, and unknown fields as
//! kubectl's strict field validation reports them) and its CEL rules, so that `marshal plan` rejects what
//! `kubectl apply` would, with a message that names the field. The hub's admission policy (labels and clearances
//! valid under their SecurityPolicy) is checked across objects by [`crate::plan::input`].

use std::collections::BTreeMap;

use kube::core::cel::Validator;
use regex::Regex;
use serde_json::Value;

use crate::api;

/// Schemas of the Marshal kinds, compiled once.
pub struct Schemas {
    by_kind: BTreeMap<String, Value>,
    patterns: BTreeMap<String, Regex>,
    cel: Validator,
}

impl Schemas {
    /// Loads the schemas from the CRDs the binary generates.
    pub fn new() -> Self {
        let mut by_kind = BTreeMap::new();
        for crd in api::crds() {
            let schema = crd
                .spec
                .versions
                .first()
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            if let Some(schema) = schema {
                by_kind.insert(crd.spec.names.kind.clone(), schema);
            }
        }
        let mut patterns = BTreeMap::new();
        for schema in by_kind.values() {
            collect_patterns(schema, &mut patterns);
        }
        Schemas { by_kind, patterns, cel: Validator::new() }
    }

    /// Every problem with `object` of `kind`, each naming its field.
    pub fn check(&self, kind: &str, object: &Value) -> Vec<String> {
        let Some(schema) = self.by_kind.get(kind) else { return vec![format!("kind: unknown kind {kind:?}")] };
        let mut errors = Vec::new();
        if let Some(obj) = object.as_object() {
            for (k, v) in obj {
                match k.as_str() {
                    "apiVersion" | "kind" if !v.is_string() => {
                        errors.push(format!("field {k}: must be of type string"))
                    }
                    "apiVersion" | "kind" => {}
                    "metadata" => metadata(v, &mut errors),
                    _ if schema.pointer(&format!("/properties/{k}")).is_some() => {}
                    _ => errors.push(format!("field {k}: unknown field")),
                }
            }
        }
        self.walk(schema, object, "", &mut errors);
        if errors.is_empty()
            && let Err(e) = self.cel.validate(schema, object, None)
        {
            errors.extend(e.as_slice().iter().map(|e| {
                let field = if e.field_path.is_empty() { "(object)" } else { &e.field_path };
                format!("field {field}: {}", e.message)
            }));
        }
        errors
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let field = if path.is_empty() { "(object)".to_string() } else { path.to_string() };
        let mut bad = |m: String| errors.push(format!("field {field}: {m}"));
        if value.is_null() {
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let type_ok = match ty {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
        if !type_ok && !(int_or_string && (value.is_string() || value.is_i64())) {
            bad(format!("must be of type {}", ty.unwrap_or("?")));
            return;
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            bad(format!("{value} is not one of {}", names.join(", ")));
        }
        if let Some(s) = value.as_str() {
            if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && let Err(e) = crate::api::time::parse(s)
            {
                bad(format!("invalid value: must be of type date-time: {e}"));
            }
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|m| len < *m) {
                bad(format!("must have at least {min} characters"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|m| len > *m) {
                bad(format!("must have at most {max} characters"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && self.patterns.get(p).is_some_and(|re| !re.is_match(s))
            {
                bad(format!("{s:?} does not match {p}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|m| n < *m) {
                bad(format!("must be at least {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|m| n > *m) {
                bad(format!("must be at most {max}"));
            }
        }
        if let Some(items) = value.as_array() {
            let n = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
                bad(format!("must have at least {min} items"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
                bad(format!("must have at most {max} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
            unique(schema, items, path, errors);
        }
        if let Some(obj) = value.as_object() {
            for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                if !obj.contains_key(req) {
                    errors.push(format!("field {}: required", join(path, req)));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            let n = obj.len() as u64;
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64).filter(|m| n > *m) {
                errors.push(format!("field {field}: must have at most {max} properties"));
            }
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
            let root = path.is_empty();
            for (k, v) in obj {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    self.walk(s, v, &join(path, k), errors);
                } else if let Some(s) = extra.filter(|e| e.is_object()) {
                    self.walk(s, v, &join(path, k), errors);
                } else if !preserve && !root && extra.is_none_or(|e| e != &Value::Bool(true)) {
                    // kubectl's strict field validation: a field the schema does not know is an error, not dropped.
                    errors.push(format!("field {}: unknown field", join(path, k)));
                }
            }
        }
    }
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

/// The fields of `metadata` (ObjectMeta): anything else is an unknown field.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn metadata(v: &Value, errors: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        errors.push("field metadata: must be of type object".into());
        return;
    };
    for (k, v) in obj {
        if !OBJECT_META.contains(&k.as_str()) {
            errors.push(format!("field metadata.{k}: unknown field"));
        } else if matches!(k.as_str(), "labels" | "annotations")
            && !v.as_object().is_some_and(|m| m.values().all(Value::is_string))
        {
            errors.push(format!("field metadata.{k}: must be a map of strings"));
        } else if matches!(k.as_str(), "name" | "namespace" | "generateName") && !v.is_string() {
            errors.push(format!("field metadata.{k}: must be of type string"));
        }
    }
}

/// `x-kubernetes-list-type: set` lists hold each value once, `map` lists each key once (the API server's
/// `Duplicate value`).
fn unique(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<String>) {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(format!("field {path}[{i}]: Duplicate value: {item}"));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let key = |item: &Value| -> Value {
                Value::Object(keys.iter().filter_map(|k| Some((k.to_string(), item.get(*k)?.clone()))).collect())
            };
            for (i, item) in items.iter().enumerate() {
                let k = key(item);
                if items[..i].iter().any(|o| key(o) == k) {
                    errors.push(format!("field {path}[{i}]: Duplicate value: {k}"));
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn collect_patterns(schema: &Value, out: &mut BTreeMap<String, Regex>) {
    match schema {
        Value::Object(m) => {
            if let Some(p) = m.get("pattern").and_then(Value::as_str)
                && let Ok(re) = Regex::new(p)
            {
                out.insert(p.to_string(), re);
            }
            m.values().for_each(|v| collect_patterns(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}
