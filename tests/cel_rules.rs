//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated client-side with kube's `cel` feature against
//! the schemas `marshal crd` generates: each rule accepts a valid object and rejects an invalid one with a
//! message that names the field. The schema-level constraints the rules rely on (patterns, minimums) are
//! checked separately, because the client-side validator evaluates only CEL rules.

use std::path::Path;

use kube::core::cel::{ErrorKind, ScopeContext, ValidationError, Validator, WarningKind, analyze_rule, compile_schema};
use marshal::api::crds;
use serde::Deserialize;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------
// helpers

/// The openAPIV3Schema of a kind, as generated from the Rust types.
fn schema(kind: &str) -> Value {
    let crd = crds().into_iter().find(|c| c.spec.names.kind == kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0].schema.clone().and_then(|s| s.open_api_v3_schema).expect("openAPIV3Schema");
    serde_json::to_value(schema).expect("schema to JSON")
}

/// Every object of one file of examples/baltic, as JSON.
fn example_file(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/baltic").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v = serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(v).expect("YAML to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// One object of examples/baltic by kind and name.
fn example(file: &str, kind: &str, name: &str) -> Value {
    example_file(file)
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("examples/baltic/{file} has no {kind} {name}"))
}

fn policy() -> Value {
    example("00-security-policy.yaml", "SecurityPolicy", "nato")
}
fn cluster(name: &str) -> Value {
    example("10-member-clusters.yaml", "MemberCluster", name)
}
fn link(name: &str) -> Value {
    example("20-cluster-links.yaml", "ClusterLink", name)
}
fn workload(name: &str) -> Value {
    example("30-workloads.yaml", "MissionWorkload", name)
}

/// The CEL errors of an object (create when `old` is None, update otherwise).
fn cel_errors(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<ValidationError> {
    match Validator::new().validate(&schema(kind), obj, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec(),
    }
}

fn describe(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(|e| format!("[{}] {:?}: {} (rule `{}`)", e.field_path, e.kind, e.message, e.rule))
        .collect::<Vec<_>>()
        .join("; ")
}

#[track_caller]
fn assert_accepted(kind: &str, obj: &Value, old: Option<&Value>) {
    let errors = cel_errors(kind, obj, old);
    assert!(errors.is_empty(), "{kind} should pass its CEL rules, got: {}", describe(&errors));
}

/// Asserts that the object is rejected by a failing rule (not an evaluation error) at `field_path` with a
/// message containing `message`, and by nothing else.
#[track_caller]
fn assert_rejected(kind: &str, obj: &Value, old: Option<&Value>, field_path: &str, message: &str) {
    let errors = cel_errors(kind, obj, old);
    assert!(
        errors.len() == 1
            && errors[0].kind == ErrorKind::ValidationFailure
            && errors[0].field_path == field_path
            && errors[0].message.contains(message),
        "{kind} should be rejected only at `{field_path}` with a message containing {message:?}, got: {}",
        describe(&errors)
    );
}

/// `obj` with the JSON value at `pointer` replaced (the parent must exist).
fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = obj.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().expect("array index");
            items[i] = value;
        }
        other => panic!("cannot set {key} in {other}"),
    }
    obj
}

/// `obj` without the field at `pointer`.
fn without(mut obj: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    obj.pointer_mut(parent).and_then(Value::as_object_mut).expect("parent object").remove(key);
    obj
}

// ---------------------------------------------------------------------------------------------------------
// the examples are the valid baseline

#[test]
fn every_example_passes_the_cel_rules_on_create_and_on_a_noop_update() {
    let mut checked = 0;
    for file in ["00-security-policy.yaml", "10-member-clusters.yaml", "20-cluster-links.yaml", "30-workloads.yaml"] {
        for obj in example_file(file) {
            let kind = obj["kind"].as_str().expect("kind").to_string();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
            for old in [None, Some(&obj)] {
                let errors = cel_errors(&kind, &obj, old);
                assert!(errors.is_empty(), "examples/baltic/{file} {kind} {name}: {}", describe(&errors));
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "examples/baltic has policies, clusters, links and workloads ({checked} objects)");
}

/// The variables a rule's macros bind: `x` in `.all(x, ...)`, `.exists(x, ...)`, `.exists_one`, `.map`, `.filter`.
fn bound_variables(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in ["all", "exists", "exists_one", "map", "filter"] {
        let pat = format!(".{m}(");
        let mut rest = rule;
        while let Some(i) = rest.find(&pat) {
            rest = &rest[i + pat.len()..];
            let name: String = rest.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && rest.trim_start()[name.len()..].trim_start().starts_with(',') {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn the_bound_variables_of_a_rule_are_the_macros_own() {
    assert_eq!(bound_variables("self.a.all(v, v in self.b) && self.c.exists(k, k == 1)"), ["v", "k"]);
    assert!(bound_variables("self.all == 1 || request.x").is_empty());
}

#[test]
fn every_rule_compiles_and_is_in_scope() {
    fn walk(kind: &str, at: &str, schema: &Value, rules: &mut usize) {
        if let Some(list) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
            let compiled = compile_schema(schema);
            assert!(
                !compiled.has_errors(),
                "{kind} {at}: a rule does not compile: {:?}",
                compiled.compilation_errors()
            );
            for rule in list {
                let text = rule["rule"].as_str().expect("rule text");
                assert!(
                    rule["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{kind} {at}: `{text}` needs a message"
                );
                // kube-cel's scope check reports the variable a macro binds (`all(v, ...)`) as out of scope; the API
                // server binds it. Every other warning (a real out-of-scope name, a cost) counts.
                let bound = bound_variables(text);
                let warnings: Vec<_> = analyze_rule(text, &compiled, ScopeContext::CrdValidation)
                    .into_iter()
                    .filter(|w| {
                        !(w.kind == WarningKind::WrongScope
                            && bound.iter().any(|b| w.message.contains(&format!("variable '{b}'"))))
                    })
                    .collect();
                assert!(warnings.is_empty(), "{kind} {at}: `{text}`: {warnings:?}");
                *rules += 1;
            }
        }
        for key in ["properties", "additionalProperties"] {
            match schema.get(key) {
                Some(Value::Object(props)) if key == "properties" => {
                    for (name, child) in props {
                        walk(kind, &format!("{at}.{name}"), child, rules);
                    }
                }
                Some(child @ Value::Object(_)) => walk(kind, &format!("{at}.*"), child, rules),
                _ => {}
            }
        }
        if let Some(items) = schema.get("items") {
            walk(kind, &format!("{at}[]"), items, rules);
        }
    }
    let mut rules = 0;
    for kind in ["SecurityPolicy", "MemberCluster", "ClusterLink", "MissionWorkload", "Assignment"] {
        walk(kind, "", &schema(kind), &mut rules);
    }
    assert!(rules >= 10, "expected the CEL rules of issue 2, found {rules}");
}

// ---------------------------------------------------------------------------------------------------------
// ClusterLink

#[test]
fn cluster_link_name_must_be_from_dot_to() {
    let ok = link("ltu-1.pol-1");
    assert_accepted("ClusterLink", &ok, None);
    let misnamed = with(ok.clone(), "/metadata/name", json!("ltu-1-to-pol-1"));
    assert_rejected("ClusterLink", &misnamed, None, "", "metadata.name must be <spec.from>.<spec.to>");
    // The reverse direction is a different link, with its own name.
    let reversed = with(ok, "/metadata/name", json!("pol-1.ltu-1"));
    assert_rejected("ClusterLink", &reversed, None, "", "metadata.name must be <spec.from>.<spec.to>");
}

#[test]
fn cluster_link_must_join_two_different_clusters() {
    let ok = link("pol-1.deu-1");
    assert_accepted("ClusterLink", &ok, None);
    let looped = with(with(ok.clone(), "/spec/to", json!("pol-1")), "/metadata/name", json!("pol-1.pol-1"));
    assert_rejected("ClusterLink", &looped, None, "spec", "spec.to must differ from spec.from");
}

#[test]
fn cluster_link_ends_are_immutable() {
    let old = link("ltu-1.pol-1");
    // A status or probe change is a valid update.
    let probed = with(old.clone(), "/spec/probe", json!({"address": "10.0.0.1:7443"}));
    assert_accepted("ClusterLink", &probed, Some(&old));
    let stale = with(old.clone(), "/spec/staleAfterSeconds", json!(120));
    assert_accepted("ClusterLink", &stale, Some(&old));

    // Changing an end is refused even when the name would still fit (names never change in Kubernetes,
    // but the rule must not depend on that).
    let moved_from = with(with(old.clone(), "/spec/from", json!("lva-1")), "/metadata/name", json!("lva-1.pol-1"));
    assert_rejected("ClusterLink", &moved_from, Some(&old), "spec.from", "from is immutable");
    let moved_to = with(with(old.clone(), "/spec/to", json!("deu-1")), "/metadata/name", json!("ltu-1.deu-1"));
    assert_rejected("ClusterLink", &moved_to, Some(&old), "spec.to", "to is immutable");
    // On create the transition rules do not apply.
    assert_accepted("ClusterLink", &moved_to, None);
}

// ---------------------------------------------------------------------------------------------------------
// MissionWorkload

#[test]
fn mission_workload_owner_is_immutable() {
    let old = workload("isr-fusion");
    let scaled = with(old.clone(), "/spec/replicas", json!(6));
    assert_accepted("MissionWorkload", &scaled, Some(&old));
    let reowned = with(old.clone(), "/spec/owner", json!("POL"));
    assert_rejected("MissionWorkload", &reowned, Some(&old), "spec.owner", "owner is immutable");
    assert_accepted("MissionWorkload", &reowned, None);
}

#[test]
fn mission_workload_confidentiality_is_immutable() {
    let old = workload("isr-fusion");
    for (what, pointer, value) in [
        ("classification raised", "/spec/confidentiality/classification", json!("CONFIDENTIAL")),
        ("classification lowered", "/spec/confidentiality/classification", json!("UNCLASSIFIED")),
        ("policy changed", "/spec/confidentiality/policy", json!("DEU-NATIONAL")),
        (
            "releasability widened",
            "/spec/confidentiality/categories",
            json!([{"tagName": "Releasable To", "values": ["LTU", "POL", "DEU", "LVA"]}]),
        ),
        (
            "alternative added",
            "/spec/confidentiality/alternatives",
            json!([{"policy": "LTU", "classification": "RIBOTO NAUDOJIMO"}]),
        ),
    ] {
        let relabelled = with(old.clone(), pointer, value);
        let errors = cel_errors("MissionWorkload", &relabelled, Some(&old));
        assert!(
            errors.len() == 1
                && errors[0].kind == ErrorKind::ValidationFailure
                && errors[0].field_path == "spec.confidentiality"
                && errors[0].message.contains("confidentiality is immutable"),
            "{what}: expected `confidentiality is immutable` at spec.confidentiality, got {}",
            describe(&errors)
        );
    }
    // An unchanged label with other edits passes.
    let retemplated = with(old.clone(), "/spec/template/spec/containers/0/image", json!("registry.example.mil/x:2"));
    assert_accepted("MissionWorkload", &retemplated, Some(&old));
}

#[test]
fn mission_workload_min_nations_cannot_exceed_replicas_when_divided() {
    const MSG: &str = "placement.spread.minNations cannot exceed replicas in Divided mode";
    let ok = workload("isr-fusion"); // Divided, replicas 4, minNations 2
    assert_eq!(ok["spec"]["placement"]["mode"], "Divided");
    assert_accepted("MissionWorkload", &ok, None);
    let equal = with(ok.clone(), "/spec/placement/spread/minNations", json!(4));
    assert_accepted("MissionWorkload", &equal, None);
    let too_many = with(ok.clone(), "/spec/placement/spread/minNations", json!(5));
    assert_rejected("MissionWorkload", &too_many, None, "spec", MSG);
    let too_few_replicas = with(ok.clone(), "/spec/replicas", json!(1));
    assert_rejected("MissionWorkload", &too_few_replicas, None, "spec", MSG);
    // Mode defaults to Divided: the rule applies when the mode is left out.
    let defaulted = without(too_many.clone(), "/spec/placement/mode");
    assert_rejected("MissionWorkload", &defaulted, None, "spec", MSG);
    // Scaled to zero: nothing to spread.
    let parked = with(ok.clone(), "/spec/replicas", json!(0));
    assert_accepted("MissionWorkload", &parked, None);
    // Duplicated puts `replicas` on every cluster: minNations may exceed replicas.
    let duplicated = with(too_many, "/spec/placement/mode", json!("Duplicated"));
    assert_accepted("MissionWorkload", &duplicated, None);
    // No spread, or a placement left out entirely, is fine.
    assert_accepted("MissionWorkload", &without(ok.clone(), "/spec/placement/spread"), None);
    assert_accepted("MissionWorkload", &without(ok, "/spec/placement"), None);
}

// ---------------------------------------------------------------------------------------------------------
// MemberCluster

#[test]
fn member_cluster_push_needs_a_kubeconfig_secret() {
    const MSG: &str = "connection.kubeconfigSecretRef is required when mode is Push";
    let push = cluster("pol-1");
    assert_eq!(push["spec"]["connection"]["mode"], "Push");
    assert_accepted("MemberCluster", &push, None);
    let no_secret = without(push.clone(), "/spec/connection/kubeconfigSecretRef");
    assert_rejected("MemberCluster", &no_secret, None, "spec.connection", MSG);
    // Push is the default mode.
    let defaulted = with(push, "/spec/connection", json!({}));
    assert_rejected("MemberCluster", &defaulted, None, "spec.connection", MSG);

    let pull = cluster("lva-1");
    assert_eq!(pull["spec"]["connection"], json!({"mode": "Pull"}));
    assert_accepted("MemberCluster", &pull, None);
}

#[test]
fn member_cluster_admission_ceiling_must_be_a_cleared_classification() {
    const MSG: &str = "admission.maxClassification must be one of clearance.classifications";
    let ok = cluster("ltu-1"); // cleared up to CONFIDENTIAL, admits up to CONFIDENTIAL
    assert_accepted("MemberCluster", &ok, None);
    let above = with(ok.clone(), "/spec/admission/maxClassification", json!("SECRET"));
    assert_rejected("MemberCluster", &above, None, "spec", MSG);
    let typo = with(ok.clone(), "/spec/admission/maxClassification", json!("Confidential"));
    assert_rejected("MemberCluster", &typo, None, "spec", MSG);
    let lower = with(ok.clone(), "/spec/admission/maxClassification", json!("RESTRICTED"));
    assert_accepted("MemberCluster", &lower, None);
    let absent = without(ok, "/spec/admission/maxClassification");
    assert_accepted("MemberCluster", &absent, None);
}

#[test]
fn member_cluster_nation_is_immutable() {
    let old = cluster("deu-1");
    let retiered = with(old.clone(), "/spec/tiers", json!(["core", "edge"]));
    assert_accepted("MemberCluster", &retiered, Some(&old));
    let renationed = with(old.clone(), "/spec/nation", json!("FRA"));
    assert_rejected("MemberCluster", &renationed, Some(&old), "spec.nation", "nation is immutable");
    assert_accepted("MemberCluster", &renationed, None);
}

// ---------------------------------------------------------------------------------------------------------
// SecurityPolicy

#[test]
fn security_policy_restrictive_category_lists_its_values() {
    const MSG: &str = "a Restrictive category must list its values";
    let ok = policy();
    assert_eq!(ok["spec"]["categories"][1]["type"], "Restrictive");
    assert_accepted("SecurityPolicy", &ok, None);
    let empty = with(ok.clone(), "/spec/categories/1/values", json!([]));
    assert_rejected("SecurityPolicy", &empty, None, "spec.categories[1]", MSG);
    let absent = without(ok.clone(), "/spec/categories/1/values");
    assert_rejected("SecurityPolicy", &absent, None, "spec.categories[1]", MSG);
    // Permissive categories may leave their values free (nation codes and groups).
    assert_eq!(ok["spec"]["categories"][0]["type"], "EnumeratedPermissive");
    let free = without(with(ok.clone(), "/spec/categories/0/type", json!("Permissive")), "/spec/categories/0/values");
    assert_accepted("SecurityPolicy", &free, None);
    // The enumerated restrictive form lists its values too.
    let enumerated = with(empty, "/spec/categories/1/type", json!("EnumeratedRestrictive"));
    assert_rejected("SecurityPolicy", &enumerated, None, "spec.categories[1]", MSG);
}

#[test]
fn security_policy_rules_name_what_the_policy_defines() {
    let ok = policy();
    let rules = with(
        ok.clone(),
        "/spec/categories/1/valueRules",
        json!({"ATOMAL": {"excludedClasses": ["UNCLASSIFIED"]}, "CRYPTO": {}}),
    );
    assert_accepted("SecurityPolicy", &rules, None);
    let typo =
        with(ok.clone(), "/spec/categories/1/valueRules", json!({"ATOMLA": {"excludedClasses": ["UNCLASSIFIED"]}}));
    assert_rejected(
        "SecurityPolicy",
        &typo,
        None,
        "spec.categories[1]",
        "valueRules may only name values the category declares",
    );
    let by_class = with(ok.clone(), "/spec/classificationRules", json!({"SECRET": {}}));
    assert_accepted("SecurityPolicy", &by_class, None);
    let unknown_class = with(ok, "/spec/classificationRules", json!({"SECRETISH": {}}));
    assert_rejected(
        "SecurityPolicy",
        &unknown_class,
        None,
        "spec",
        "classificationRules may only name classifications of the policy",
    );
}

// ---------------------------------------------------------------------------------------------------------
// schema-level constraints (not evaluated by the CEL validator)

fn at<'a>(schema: &'a Value, kind: &str, path: &str) -> &'a Value {
    let pointer: String =
        path.split('.').map(|p| if p == "[]" { "/items".to_string() } else { format!("/properties/{p}") }).collect();
    schema.pointer(&pointer).unwrap_or_else(|| panic!("{kind} schema has no {path} ({pointer})"))
}

/// Evaluates `self.matches(pattern)` for each value with the CEL validator. Kubernetes checks `pattern`
/// with Go's RE2 engine; CEL's `matches` is RE2 as well, so this exercises the very regex the API server runs.
fn pattern_accepts(pattern: &str, value: &str) -> bool {
    assert!(!pattern.contains('\''), "pattern must not contain a quote");
    let probe = json!({
        "type": "string",
        "x-kubernetes-validations": [{"rule": format!("self.matches(r'{pattern}')"), "message": "no match"}]
    });
    match Validator::new().validate(&probe, &json!(value), None) {
        Ok(()) => true,
        Err(e) if e.iter().all(|e| e.kind == ErrorKind::ValidationFailure) => false,
        Err(e) => panic!("pattern {pattern} cannot be evaluated: {e}"),
    }
}

#[test]
fn schema_constraints_exist() {
    const NATION: &str = "^[A-Z]{3}$";
    const TIER: &str = "^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$";
    let mc = schema("MemberCluster");
    let mw = schema("MissionWorkload");
    let asg = schema("Assignment");
    let pattern = |s: &Value, kind: &str, path: &str| at(s, kind, path)["pattern"].as_str().map(str::to_string);
    let minimum = |s: &Value, kind: &str, path: &str| at(s, kind, path)["minimum"].as_f64();

    // Nation codes: ISO 3166-1 alpha-3.
    for (s, kind, path) in [
        (&mc, "MemberCluster", "spec.nation"),
        (&mw, "MissionWorkload", "spec.owner"),
        (&mw, "MissionWorkload", "spec.residency.[]"),
        (&mw, "MissionWorkload", "spec.placement.preferredNations.[]"),
        (&asg, "Assignment", "spec.owner"),
    ] {
        assert_eq!(pattern(s, kind, path).as_deref(), Some(NATION), "{kind} {path}");
    }
    assert_eq!(
        pattern(&mc, "MemberCluster", "spec.admission.ownerNations.[]").as_deref(),
        Some(r"^([A-Z]{3}|\*)$"),
        "ownerNations: nation codes or *"
    );

    // Replicas >= 0, minNations >= 1.
    assert_eq!(minimum(&mw, "MissionWorkload", "spec.replicas"), Some(0.0));
    assert_eq!(minimum(&asg, "Assignment", "spec.replicas"), Some(0.0));
    assert_eq!(minimum(&mw, "MissionWorkload", "spec.placement.spread.minNations"), Some(1.0));
    assert_eq!(minimum(&mw, "MissionWorkload", "spec.placement.spread.maxReplicasPerCluster"), Some(1.0));

    // Tier names are well formed.
    for (s, kind, path) in [
        (&mc, "MemberCluster", "spec.tiers.[]"),
        (&mw, "MissionWorkload", "spec.placement.tiers.[]"),
        (&asg, "Assignment", "spec.tier"),
    ] {
        assert_eq!(pattern(s, kind, path).as_deref(), Some(TIER), "{kind} {path}");
    }
    assert_eq!(at(&mc, "MemberCluster", "spec.tiers")["minItems"].as_u64(), Some(1), "a cluster offers a tier");

    // Classification is not empty.
    for (s, kind, path) in [
        (&mw, "MissionWorkload", "spec.confidentiality.classification"),
        (&mw, "MissionWorkload", "spec.confidentiality.policy"),
        (&asg, "Assignment", "spec.confidentiality.classification"),
        (&mc, "MemberCluster", "spec.clearance.classifications.[]"),
    ] {
        assert_eq!(at(s, kind, path)["minLength"].as_u64(), Some(1), "{kind} {path} must not be empty");
    }
    assert_eq!(
        at(&mc, "MemberCluster", "spec.clearance.classifications")["minItems"].as_u64(),
        Some(1),
        "a clearance names at least one classification"
    );

    // The patterns mean what they say.
    for ok in ["POL", "DEU", "LTU"] {
        assert!(pattern_accepts(NATION, ok), "{ok} is a nation code");
    }
    for bad in ["pol", "PO", "POLA", "P0L", "", " POL"] {
        assert!(!pattern_accepts(NATION, bad), "{bad:?} is not a nation code");
    }
    for ok in ["core", "edge", "gpu-1", "a", "x2"] {
        assert!(pattern_accepts(TIER, ok), "{ok} is a tier name");
    }
    let long = "a".repeat(33);
    for bad in ["Core", "-edge", "edge-", "edge_1", "", "core edge", long.as_str()] {
        assert!(!pattern_accepts(TIER, bad), "{bad:?} is not a tier name");
    }
}
