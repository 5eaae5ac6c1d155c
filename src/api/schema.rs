//! Post-processing of the generated CRD schemas. schemars writes the Rust integer width as an OpenAPI
//! `format` (`uint32`, ...), which the API server does not know: it warns `unrecognized format "uint32"` on
//! every `kubectl apply` of the CRDs and ignores the format. The bound it stands for is written as `minimum` and
//! `maximum` instead, so the API server enforces what the controller can read.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The range of an unsigned integer format, if `format` is one.
fn unsigned_range(format: &str) -> Option<f64> {
    match format {
        "uint8" => Some(f64::from(u8::MAX)),
        "uint16" => Some(f64::from(u16::MAX)),
        "uint32" | "uint" => Some(f64::from(u32::MAX)),
        // Beyond 2^53 a JSON number loses precision; int64's range is what the API server stores anyway.
        "uint64" => Some(i64::MAX as f64),
        _ => None,
    }
}

/// Replaces unsigned integer formats by explicit bounds, everywhere in the schema.
pub fn bound_unsigned(s: &mut JSONSchemaProps) {
    if let Some(max) = s.format.as_deref().and_then(unsigned_range) {
        s.format = None;
        s.minimum = Some(s.minimum.map_or(0.0, |m| m.max(0.0)));
        s.maximum = Some(s.maximum.map_or(max, |m| m.min(max)));
    }
    for p in s.properties.iter_mut().flat_map(|m| m.values_mut()) {
        bound_unsigned(p);
    }
    match &mut s.items {
        Some(JSONSchemaPropsOrArray::Schema(i)) => bound_unsigned(i),
        Some(JSONSchemaPropsOrArray::Schemas(v)) => v.iter_mut().for_each(bound_unsigned),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(a)) = &mut s.additional_properties {
        bound_unsigned(a);
    }
    for list in [&mut s.all_of, &mut s.any_of, &mut s.one_of] {
        list.iter_mut().flatten().for_each(bound_unsigned);
    }
    if let Some(n) = &mut s.not {
        bound_unsigned(n);
    }
}

/// Applies [`bound_unsigned`] to every version's schema of a CRD.
pub fn tidy(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for v in &mut crd.spec.versions {
        if let Some(s) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            bound_unsigned(s);
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_generated_crd_carries_an_unknown_integer_format() {
        for crd in crate::api::crds() {
            let yaml = serde_yaml::to_string(&crd).unwrap();
            assert!(!yaml.contains("format: uint"), "{}", crd.metadata.name.unwrap_or_default());
        }
    }

    #[test]
    fn bounds_replace_the_format_and_keep_tighter_ones() {
        let mut s: JSONSchemaProps = serde_json::from_value(serde_json::json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "format": "uint32"},
                "b": {"type": "integer", "format": "uint32", "minimum": 1.0, "maximum": 100.0},
                "c": {"type": "array", "items": {"type": "integer", "format": "uint16"}},
                "d": {"type": "integer", "format": "int32"}
            }
        }))
        .unwrap();
        bound_unsigned(&mut s);
        let p = s.properties.unwrap();
        assert_eq!((p["a"].format.as_deref(), p["a"].minimum, p["a"].maximum), (None, Some(0.0), Some(4294967295.0)));
        assert_eq!((p["b"].minimum, p["b"].maximum), (Some(1.0), Some(100.0)));
        let Some(JSONSchemaPropsOrArray::Schema(i)) = &p["c"].items else { panic!("items") };
        assert_eq!(i.maximum, Some(65535.0));
        assert_eq!(p["d"].format.as_deref(), Some("int32"));
    }
}
