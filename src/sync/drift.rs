//! Pure: whether a member Deployment that carries the current digest still says what Marshal applied. A
//! Deployment scaled or edited by hand keeps Marshal's digest annotation, so the digest alone cannot tell; the
//! syncer re-applies the desired spec when [`drift`] finds a difference, or when the Deployment's generation moved
//! past the one Marshal's own last apply produced ([`Generations`]), and records a `DriftRepaired` Event.
//!
//! Only what Marshal sets is compared, in forms the API server keeps as written (replicas, the strategy, container
//! names and images, Marshal's labels, annotations and node selector): defaults the API server adds never look
//! like drift, so an unchanged member is never written to.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec};

fn strategy(s: &DeploymentSpec) -> &str {
    s.strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
}

fn images(cs: &[Container]) -> Vec<(&str, Option<&str>)> {
    cs.iter().map(|c| (c.name.as_str(), c.image.as_deref())).collect()
}

fn missing<'a>(want: Option<&'a BTreeMap<String, String>>, have: Option<&BTreeMap<String, String>>) -> Option<&'a str> {
    want.into_iter().flatten().find(|(k, v)| have.and_then(|h| h.get(*k)) != Some(*v)).map(|(k, _)| k.as_str())
}

/// What differs between the live Deployment and the desired one, in the fields Marshal sets (`None`: nothing).
pub fn drift(live: &Deployment, desired: &Deployment) -> Option<String> {
    let (l, d) = (&live.spec, &desired.spec);
    if l.replicas != d.replicas {
        return Some(format!("replicas is {} (Marshal applied {})", l.replicas.unwrap_or(1), d.replicas.unwrap_or(1)));
    }
    if strategy(l) != strategy(d) {
        return Some(format!("strategy is {} (Marshal applied {})", strategy(l), strategy(d)));
    }
    let (lm, dm) = (l.template.metadata.as_ref(), d.template.metadata.as_ref());
    if let Some(k) = missing(dm.and_then(|m| m.labels.as_ref()), lm.and_then(|m| m.labels.as_ref())) {
        return Some(format!("pod label {k} changed"));
    }
    if let Some(k) = missing(dm.and_then(|m| m.annotations.as_ref()), lm.and_then(|m| m.annotations.as_ref())) {
        return Some(format!("pod annotation {k} changed"));
    }
    let empty = PodSpec::default();
    let (lp, dp) = (l.template.spec.as_ref().unwrap_or(&empty), d.template.spec.as_ref().unwrap_or(&empty));
    if images(&lp.containers) != images(&dp.containers) {
        return Some("containers or images changed".into());
    }
    let (li, di) =
        (lp.init_containers.as_deref().unwrap_or_default(), dp.init_containers.as_deref().unwrap_or_default());
    if images(li) != images(di) {
        return Some("init containers or images changed".into());
    }
    if let Some(k) = missing(dp.node_selector.as_ref(), lp.node_selector.as_ref()) {
        return Some(format!("node selector {k} changed"));
    }
    None
}

/// The generation of each member Deployment as Marshal's own last apply left it, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Generations(Mutex<BTreeMap<String, i64>>);

impl Generations {
    /// Records the generation an apply by Marshal produced.
    pub fn record(&self, key: &str, generation: Option<i64>) {
        if let (Some(g), Ok(mut m)) = (generation, self.0.lock()) {
            m.insert(key.to_string(), g);
        }
    }

    /// Whether someone else changed the spec since Marshal's last apply (the live generation is higher). The first
    /// sight of a Deployment (after a restart) is taken as the baseline: [`drift`] still compares its fields.
    pub fn changed_by_others(&self, key: &str, live: Option<i64>) -> bool {
        let (Some(live), Ok(mut m)) = (live, self.0.lock()) else { return false };
        match m.get(key) {
            Some(g) => live > *g,
            None => {
                m.insert(key.to_string(), live);
                false
            }
        }
    }

    /// Forgets a removed Deployment.
    pub fn forget(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::build;
    use crate::sync::apply::tests::{accepted, assignment};
    use crate::sync::host_policy::WorkloadPolicy;

    fn desired() -> Deployment {
        build(&assignment("SECRET"), &accepted("SECRET"), &WorkloadPolicy::default()).unwrap().1
    }

    #[test]
    fn what_the_api_server_adds_is_not_drift() {
        let d = desired();
        let mut live = d.clone();
        let spec = &mut live.spec;
        spec.revision_history_limit = Some(10);
        spec.progress_deadline_seconds = Some(600);
        let pod = spec.template.spec.as_mut().unwrap();
        pod.restart_policy = Some("Always".into());
        pod.dns_policy = Some("ClusterFirst".into());
        pod.containers[0].termination_message_path = Some("/dev/termination-log".into());
        pod.containers[0].image_pull_policy = Some("IfNotPresent".into());
        live.metadata.generation = Some(1);
        assert_eq!(drift(&live, &d), None);
    }

    #[test]
    fn a_hand_edit_is_drift() {
        let d = desired();
        type Edit = fn(&mut DeploymentSpec);
        let edits: [(&str, Edit); 5] = [
            ("replicas", |s| s.replicas = Some(5)),
            ("strategy", |s| {
                s.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
                    type_: Some("Recreate".into()),
                    rolling_update: None,
                })
            }),
            ("image", |s| s.template.spec.as_mut().unwrap().containers[0].image = Some("evil:1".into())),
            ("container", |s| s.template.spec.as_mut().unwrap().containers.push(Container::default())),
            ("node selector", |s| {
                s.template.spec.as_mut().unwrap().node_selector.as_mut().unwrap().insert("disk".into(), "hdd".into());
            }),
        ];
        for (what, edit) in edits {
            let mut live = d.clone();
            edit(&mut live.spec);
            assert!(drift(&live, &d).is_some(), "{what} is drift");
        }
    }

    #[test]
    fn generations_tell_others_edits_apart() {
        let g = Generations::default();
        assert!(!g.changed_by_others("ns/a", Some(3)), "first sight is the baseline");
        assert!(!g.changed_by_others("ns/a", Some(3)));
        assert!(g.changed_by_others("ns/a", Some(4)), "someone else changed the spec");
        g.record("ns/a", Some(5));
        assert!(!g.changed_by_others("ns/a", Some(5)), "Marshal's own apply");
        assert!(!g.changed_by_others("ns/a", Some(4)), "a store that lags behind Marshal's apply");
    }
}
