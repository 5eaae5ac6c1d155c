//! Pure: the member objects of an Assignment — its Namespace and Deployment, with the tier nodeSelector and
//! the labels and annotations member-side policy can enforce (DESIGN.md §3).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{Namespace, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::freshness::{SEQUENCE_ANNOTATION, WORKLOAD_UID_ANNOTATION};
use super::host_policy::{CREATED_LABEL, WorkloadPolicy, namespace_labels};
use super::recheck::Accepted;
use crate::api::{Assignment, MANAGED_BY, TIER_LABEL};

/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Selector label of every member Deployment.
pub const WORKLOAD_LABEL: &str = "marshal.dev/workload";
/// Owner nation label.
pub const OWNER_LABEL: &str = "marshal.dev/owner";
/// Classification under the member's own policy (label: sanitised; annotation: exact).
pub const CLASSIFICATION_KEY: &str = "marshal.dev/classification";
/// The member's policy the classification is under.
pub const POLICY_ANNOTATION: &str = "marshal.dev/policy";
/// Content digest of the applied Assignment (`AssignmentSpec::content_digest`).
pub const DIGEST_ANNOTATION: &str = "marshal.dev/digest";
/// `<hub namespace>/<assignment name>` the Deployment comes from.
pub const ASSIGNMENT_ANNOTATION: &str = "marshal.dev/assignment";
/// The full confidentiality label as JSON.
pub const CONFIDENTIALITY_ANNOTATION: &str = "marshal.dev/confidentiality";

/// Member namespaces Marshal never writes into.
pub const RESERVED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease", "marshal-system"];

/// A valid label value from any text: characters outside `[A-Za-z0-9._-]` become `_`, the ends are
/// alphanumeric, at most 63 characters.
pub fn label_value(s: &str) -> String {
    let mapped: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let truncated: String = mapped.chars().take(63).collect();
    truncated.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// `<hub namespace>/<name>` of an Assignment.
pub fn assignment_key(a: &Assignment) -> String {
    format!(
        "{}/{}",
        a.metadata.namespace.as_deref().unwrap_or_default(),
        a.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The Namespace and Deployment for the member, labelled with the classification the member accepted (under its
/// own policy) and, for the Namespace, the host's Pod Security level. Errors name what is wrong with the template.
pub fn build(a: &Assignment, accepted: &Accepted, policy: &WorkloadPolicy) -> Result<(Namespace, Deployment), String> {
    let spec = &a.spec;
    let ns = spec.workload.namespace.clone();
    let name = spec.workload.name.clone();
    if RESERVED_NAMESPACES.contains(&ns.as_str()) {
        return Err(format!("namespace {ns} is reserved in member clusters"));
    }
    let mut pod_spec: PodSpec = serde_path_to_error::deserialize(&spec.template.spec)
        .map_err(|e| format!("template.spec.{}: {}", e.path(), e.inner()))?;
    let mut selector = pod_spec.node_selector.take().unwrap_or_default();
    selector.insert(TIER_LABEL.into(), spec.tier.clone());
    pod_spec.node_selector = Some(selector);

    let classification = &accepted.classification;
    let labels: BTreeMap<String, String> = [
        (MANAGED_BY_LABEL, MANAGED_BY.to_string()),
        (OWNER_LABEL, spec.owner.clone()),
        (CLASSIFICATION_KEY, label_value(classification)),
        (WORKLOAD_LABEL, name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let confidentiality = serde_json::to_string(&spec.confidentiality).map_err(|e| e.to_string())?;
    let annotations: BTreeMap<String, String> = [
        (CLASSIFICATION_KEY, classification.clone()),
        (POLICY_ANNOTATION, accepted.policy.clone()),
        (DIGEST_ANNOTATION, spec.content_digest()),
        (SEQUENCE_ANNOTATION, spec.sequence.to_string()),
        (WORKLOAD_UID_ANNOTATION, spec.workload.uid.clone()),
        (ASSIGNMENT_ANNOTATION, assignment_key(a)),
        (CONFIDENTIALITY_ANNOTATION, confidentiality),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let template_meta = spec.template.metadata.clone().unwrap_or_default();
    let mut pod_labels = template_meta.labels;
    for k in [MANAGED_BY_LABEL, OWNER_LABEL, CLASSIFICATION_KEY, WORKLOAD_LABEL] {
        pod_labels.insert(k.to_string(), labels[k].clone());
    }
    let mut pod_annotations = template_meta.annotations;
    pod_annotations.insert(CLASSIFICATION_KEY.into(), classification.clone());

    let mut ns_labels: BTreeMap<String, String> = [(MANAGED_BY_LABEL, MANAGED_BY), (CREATED_LABEL, "true")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    ns_labels.extend(namespace_labels(policy).into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(ns.clone()), labels: Some(ns_labels), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some([(WORKLOAD_LABEL.to_string(), name)].into()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            // An exclusive (BreakBeforeMake) workload never surges a new pod beside an old one.
            strategy: spec
                .exclusive
                .then(|| DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
            ..DeploymentSpec::default()
        },
        status: None,
    };
    Ok((namespace, deployment))
}

/// The apply body of a Deployment (with apiVersion and kind, as server-side apply wants).
pub fn apply_body(d: &Deployment) -> Result<serde_json::Value, String> {
    let mut v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    v["apiVersion"] = "apps/v1".into();
    v["kind"] = "Deployment".into();
    Ok(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{
        AssignmentSpec, CategoryValues, ConfidentialityLabel, TemplateMetadata, WorkloadRef, WorkloadTemplate,
    };
    use serde_json::json;

    pub(crate) fn assignment(classification: &str) -> Assignment {
        let mut spec = AssignmentSpec {
            cluster: "pol-1".into(),
            workload: WorkloadRef { namespace: "baltic".into(), name: "isr".into(), uid: "u".into() },
            owner: "LTU".into(),
            confidentiality: ConfidentialityLabel {
                policy: "NATO".into(),
                classification: classification.into(),
                categories: vec![CategoryValues { tag_name: "Releasable To".into(), values: vec!["POL".into()] }],
                alternatives: vec![],
            },
            tier: "core".into(),
            replicas: 2,
            template: WorkloadTemplate {
                metadata: Some(TemplateMetadata {
                    labels: [("app".into(), "isr".into())].into(),
                    ..Default::default()
                }),
                spec: json!({"containers": [{"name": "c", "image": "img"}], "nodeSelector": {"disk": "ssd"}}),
            },
            residency: vec![],
            exclusive: false,
            sequence: 1_800_000_000_000,
            not_after: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(4_000_000_000).unwrap(),
            ),
            digest: String::new(),
        };
        spec.digest = spec.digest_for("marshal-pol-1", "baltic.isr");
        let mut a = Assignment::new("baltic.isr", spec);
        a.metadata.namespace = Some("marshal-pol-1".into());
        a
    }

    pub(crate) fn accepted(classification: &str) -> Accepted {
        Accepted { policy: "NATO".into(), classification: classification.into() }
    }

    #[test]
    fn deployment_carries_tier_labels_and_annotations() {
        let a = assignment("COSMIC TOP SECRET");
        let (ns, d) = build(&a, &accepted("COSMIC TOP SECRET"), &WorkloadPolicy::default()).unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("baltic"));
        let ns_labels = ns.metadata.labels.unwrap();
        assert_eq!(ns_labels[MANAGED_BY_LABEL], "marshal");
        assert_eq!(ns_labels[CREATED_LABEL], "true");
        assert_eq!(ns_labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(d.metadata.name.as_deref(), Some("isr"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("baltic"));
        let labels = d.metadata.labels.clone().unwrap();
        assert_eq!(labels[CLASSIFICATION_KEY], "COSMIC_TOP_SECRET");
        assert_eq!(labels[OWNER_LABEL], "LTU");
        assert_eq!(labels[MANAGED_BY_LABEL], "marshal");
        let ann = d.metadata.annotations.clone().unwrap();
        assert_eq!(ann[CLASSIFICATION_KEY], "COSMIC TOP SECRET");
        assert_eq!(ann[DIGEST_ANNOTATION], a.spec.content_digest());
        assert_eq!(ann[SEQUENCE_ANNOTATION], "1800000000000");
        assert_eq!(ann[WORKLOAD_UID_ANNOTATION], "u");
        assert_eq!(ann[ASSIGNMENT_ANNOTATION], "marshal-pol-1/baltic.isr");
        let label: ConfidentialityLabel = serde_json::from_str(&ann[CONFIDENTIALITY_ANNOTATION]).unwrap();
        assert_eq!(label, a.spec.confidentiality);
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.unwrap()[WORKLOAD_LABEL], "isr");
        let tpl = spec.template;
        let pod_labels = tpl.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels["app"], "isr");
        assert_eq!(pod_labels[WORKLOAD_LABEL], "isr");
        let sel = tpl.spec.unwrap().node_selector.unwrap();
        assert_eq!(sel[TIER_LABEL], "core");
        assert_eq!(sel["disk"], "ssd");
    }

    #[test]
    fn exclusive_workloads_recreate_instead_of_surging() {
        let mut a = assignment("SECRET");
        let (_, d) = build(&a, &accepted("SECRET"), &WorkloadPolicy::default()).unwrap();
        assert_eq!(d.spec.strategy, None, "the default (RollingUpdate) for make-before-break");
        a.spec.exclusive = true;
        let (_, d) = build(&a, &accepted("SECRET"), &WorkloadPolicy::default()).unwrap();
        assert_eq!(d.spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"));
    }

    #[test]
    fn invalid_template_names_the_field() {
        let mut a = assignment("SECRET");
        a.spec.template.spec = json!({"containers": [{"name": "c", "image": "i", "ports": "eighty"}]});
        let err = build(&a, &accepted("SECRET"), &WorkloadPolicy::default()).unwrap_err();
        assert!(err.contains("containers[0].ports"), "{err}");
    }

    #[test]
    fn reserved_namespace_is_refused() {
        let mut a = assignment("SECRET");
        a.spec.workload.namespace = "kube-system".into();
        assert!(build(&a, &accepted("SECRET"), &WorkloadPolicy::default()).unwrap_err().contains("reserved"));
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("COSMIC TOP SECRET"), "COSMIC_TOP_SECRET");
        assert_eq!(label_value(" NATO/SECRET "), "NATO_SECRET");
        assert_eq!(label_value(&"A".repeat(80)).len(), 63);
    }
}
