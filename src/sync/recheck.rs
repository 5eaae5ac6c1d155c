//! Pure: the member's own re-check of an Assignment (zero trust: the member does not trust the hub).
//!
//! Two kinds of check, in order:
//! - **integrity** ([`integrity`]): the Assignment is for this cluster, its digest matches its spec, and (when
//!   the syncer trusts signing keys) it carries a valid signature by a trusted key. A failure means the
//!   instruction is not authentic: it is refused and whatever the member runs from an earlier, verified
//!   instruction keeps running ([`Refusal::keeps_running`]).
//! - **clearance** ([`recheck`]): the label must pass accreditation, access control and host admission against
//!   the member's own clearance. Where that clearance comes from is the [`ClearanceSource`] of the process:
//!   push mode reads the member ConfigMap `marshal-system/marshal-clearance` and falls back to the hub's
//!   MemberCluster spec; the agent reads its local file or that ConfigMap and never the hub's spec. A failure
//!   removes the member's copy (the member must not hold what it is not cleared for).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;

use crate::api::{Admission, Assignment, Clearance, MemberCluster, SecurityPolicy, SecurityPolicySpec};
use crate::placement::filters::member_recheck;
use crate::placement::model::{ClusterFacts, Settings, Snapshot};
use crate::signing::{KeyRing, Trust};

/// Key of the clearance document in the member ConfigMap.
pub const CLEARANCE_KEY: &str = "clearance.yaml";

/// The host nation's own clearance, from the member ConfigMap or the agent's `--clearance` file.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberClearance {
    /// Host nation; absent: the MemberCluster's.
    #[serde(default)]
    pub nation: Option<String>,
    /// What the member may hold.
    pub clearance: Clearance,
    /// What the host accepts; absent: every owner, up to what the clearance allows.
    #[serde(default)]
    pub admission: Option<Admission>,
    /// The security policies (SPIFs) the host trusts; when given, they replace the hub's SecurityPolicies in
    /// the re-check (so the hub cannot reorder classifications or retype categories).
    #[serde(default)]
    pub policies: Vec<SecurityPolicySpec>,
}

/// Parses the member ConfigMap. An error is fail-closed: every Assignment is refused until it is fixed.
pub fn parse_member_clearance(cm: &ConfigMap) -> Result<MemberClearance, String> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CLEARANCE_KEY))
        .ok_or_else(|| format!("ConfigMap marshal-system/marshal-clearance has no key {CLEARANCE_KEY}"))?;
    serde_yaml::from_str(text).map_err(|e| format!("ConfigMap marshal-system/marshal-clearance {CLEARANCE_KEY}: {e}"))
}

/// Parses a clearance file (the same YAML as the ConfigMap's `clearance.yaml`).
pub fn parse_clearance_file(text: &str, path: &str) -> Result<MemberClearance, String> {
    serde_yaml::from_str(text).map_err(|e| format!("clearance file {path}: {e}"))
}

/// Where the member's own clearance comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClearanceSource {
    /// Push mode: the member ConfigMap if present, otherwise the hub's MemberCluster spec.
    #[default]
    ConfigMapOrHub,
    /// Agent without a file: the member ConfigMap, required (absent: everything is refused).
    ConfigMap,
    /// Agent: this YAML file, read at every check (absent or invalid: everything is refused).
    File(PathBuf),
}

/// What a syncer process checks Assignments against: whose clearance, and which signing keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authority {
    /// Whose clearance is authoritative.
    pub clearance: ClearanceSource,
    /// Which signatures are accepted.
    pub trust: Trust,
}

static AUTHORITY: RwLock<Option<Arc<Authority>>> = RwLock::new(None);

/// Installs the process's authority (`marshal agent` at start; `marshal controller` when it signs).
pub fn install_authority(a: Authority) {
    *AUTHORITY.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(a));
}

/// The process's authority; the push-mode default when none was installed.
pub fn authority() -> Arc<Authority> {
    AUTHORITY.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// The member's own clearance under `source`: `None` means "use the hub's MemberCluster spec" (push mode
/// only). `configmap` is the member ConfigMap, if present.
pub fn own_clearance(
    source: &ClearanceSource,
    configmap: Option<&ConfigMap>,
) -> Option<Result<MemberClearance, String>> {
    match source {
        ClearanceSource::ConfigMapOrHub => configmap.map(parse_member_clearance),
        ClearanceSource::ConfigMap => Some(configmap.map(parse_member_clearance).unwrap_or_else(|| {
            Err("no ConfigMap marshal-system/marshal-clearance in the member (the agent never uses the hub's \
                 clearance)"
                .into())
        })),
        ClearanceSource::File(p) => {
            let path = p.display().to_string();
            Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("clearance file {path}: {e}"))
                    .and_then(|t| parse_clearance_file(&t, &path)),
            )
        }
    }
}

/// Why the member refuses an Assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason (condition, Event, metric label).
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// Integrity refusals: the instruction is not authentic, so it changes nothing in the member.
const INTEGRITY: &[&str] =
    &["ClusterMismatch", "DigestMismatch", "Unsigned", "UnknownSigningKey", "BadSignature", "TrustInvalid"];

/// Whether a refusal reported in an Assignment's status (`<Reason>: <detail>`) left the member's copy running.
pub fn refusal_keeps_running(status_message: &str) -> bool {
    let reason = status_message.split_once(':').map_or(status_message, |(r, _)| r);
    INTEGRITY.contains(&reason.trim())
}

impl Refusal {
    /// Whether the member keeps what it already runs for this Assignment (integrity refusals: an unauthentic
    /// instruction neither changes nor removes anything). Clearance refusals remove the member's copy.
    pub fn keeps_running(&self) -> bool {
        INTEGRITY.contains(&self.reason)
    }
}

/// Integrity: for this cluster, digest matches the spec, and signed by a trusted key when `ring` is
/// `Ok(Some(_))` (`Ok(None)`: signatures are not checked; `Err`: the trusted keys cannot be read, refuse).
pub fn integrity(a: &Assignment, cluster: &str, ring: &Result<Option<KeyRing>, String>) -> Result<(), Refusal> {
    if a.spec.cluster != cluster {
        return Err(Refusal {
            reason: "ClusterMismatch",
            message: format!("assignment is for cluster {}, this is {cluster}", a.spec.cluster),
        });
    }
    let expected = a.spec.compute_digest();
    if a.spec.digest != expected {
        return Err(Refusal {
            reason: "DigestMismatch",
            message: format!(
                "spec.digest {} does not match the spec (expected {expected}): tampered or stale",
                a.spec.digest
            ),
        });
    }
    match ring {
        Ok(None) => Ok(()),
        Ok(Some(ring)) => ring.verify(a).map_err(|r| Refusal { reason: r.reason, message: r.message }),
        Err(e) => Err(Refusal { reason: "TrustInvalid", message: e.clone() }),
    }
}

/// The facts the member checks against: the MemberCluster, with the member's own clearance in force.
pub fn member_facts(mc: &MemberCluster, own: Option<&MemberClearance>) -> ClusterFacts {
    let mut mc = mc.clone();
    if let Some(own) = own {
        if let Some(n) = &own.nation {
            mc.spec.nation = n.clone();
        }
        mc.spec.clearance = own.clearance.clone();
        mc.spec.admission =
            own.admission.clone().unwrap_or(Admission { owner_nations: vec!["*".into()], max_classification: None });
    }
    ClusterFacts::from_crd(&mc, None)
}

/// Re-checks an Assignment: cluster and digest (signatures are [`integrity`]'s), then the clearance. `own` is
/// the member's own clearance (`None`: the MemberCluster spec is in force, push mode only).
pub fn recheck(
    a: &Assignment,
    cluster: &str,
    mc: &MemberCluster,
    own: Option<&Result<MemberClearance, String>>,
    policies: &[SecurityPolicy],
    now: jiff::Timestamp,
) -> Result<(), Refusal> {
    integrity(a, cluster, &Ok(None))?;
    let own = match own {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(Refusal { reason: "MemberClearanceInvalid", message: e.clone() }),
    };
    let facts = member_facts(mc, own);
    let local: Vec<SecurityPolicy>;
    let policies = match own {
        Some(c) if !c.policies.is_empty() => {
            local = c
                .policies
                .iter()
                .map(|p| SecurityPolicy::new(&p.policy_identifier.to_lowercase(), p.clone()))
                .collect();
            &local[..]
        }
        _ => policies,
    };
    let snap = Snapshot::new(policies, vec![facts.clone()], &[], Settings::default());
    let source = if own.is_some() { "member clearance" } else { "MemberCluster clearance" };
    member_recheck(&facts, &a.spec.confidentiality, &a.spec.owner, &snap, now)
        .map_err(|f| Refusal { reason: f.reason.as_str(), message: format!("{source}: {}", f.message) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::tests::assignment;
    use serde_json::json;

    fn policy() -> SecurityPolicy {
        serde_json::from_value(json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "SecurityPolicy", "metadata": {"name": "nato"},
            "spec": {"policyIdentifier": "NATO",
                     "classifications": ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "COSMIC TOP SECRET"],
                     "categories": [{"tagName": "Releasable To", "type": "Permissive"}]}
        }))
        .unwrap()
    }

    fn member(classifications: &[&str]) -> MemberCluster {
        serde_json::from_value(json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "pol-1"},
            "spec": {"nation": "POL", "connection": {"mode": "Push"},
                     "clearance": {"policy": "NATO", "classifications": classifications,
                                   "categories": [{"tagName": "Releasable To", "values": ["POL", "NATO"]}],
                                   "reviewBy": "2099-01-01T00:00:00Z"},
                     "admission": {"ownerNations": ["*"]}, "tiers": ["core", "edge"]}
        }))
        .unwrap()
    }

    fn configmap(yaml: &str) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "marshal-clearance"}, "data": {CLEARANCE_KEY: yaml}}))
            .unwrap()
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn secret_is_refused_by_a_restricted_member_configmap() {
        let a = assignment("SECRET");
        let hub = member(&["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]);
        assert_eq!(recheck(&a, "pol-1", &hub, None, &[policy()], now()), Ok(()));
        let own = parse_member_clearance(&configmap(
            "nation: POL\nclearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  \
             categories: [{tagName: Releasable To, values: [POL, NATO]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n",
        ));
        assert!(own.is_ok(), "{own:?}");
        let r = recheck(&a, "pol-1", &hub, Some(&own), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
        assert!(r.message.starts_with("member clearance"), "{}", r.message);
        assert_eq!(recheck(&assignment("RESTRICTED"), "pol-1", &hub, Some(&own), &[policy()], now()), Ok(()));
    }

    #[test]
    fn secret_is_refused_by_a_restricted_member_cluster_spec() {
        let hub = member(&["UNCLASSIFIED", "RESTRICTED"]);
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, None, &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
    }

    #[test]
    fn tampered_digest_and_wrong_cluster_are_refused() {
        let hub = member(&["SECRET"]);
        let mut a = assignment("SECRET");
        a.spec.replicas = 9;
        assert_eq!(recheck(&a, "pol-1", &hub, None, &[policy()], now()).unwrap_err().reason, "DigestMismatch");
        let a = assignment("SECRET");
        assert_eq!(recheck(&a, "deu-1", &hub, None, &[policy()], now()).unwrap_err().reason, "ClusterMismatch");
    }

    #[test]
    fn broken_member_clearance_fails_closed() {
        let hub = member(&["SECRET"]);
        let own = parse_member_clearance(&configmap("clearance: [not, a, map]"));
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, Some(&own), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "MemberClearanceInvalid");
    }

    fn signed(classification: &str, signer: &crate::signing::Signer) -> Assignment {
        let mut a = assignment(classification);
        signer.sign(&mut a);
        a
    }

    #[test]
    fn signatures_unsigned_unknown_tampered_and_rotation() {
        use crate::signing::{KeyRing, Signer};
        let old = Signer::generate().unwrap();
        let new = Signer::generate().unwrap();
        let ring = |keys: &[&Signer]| {
            let mut r = KeyRing::default();
            for k in keys {
                r.add(k.public());
            }
            Ok(Some(r))
        };
        let only_old = ring(&[&old]);
        assert_eq!(integrity(&signed("SECRET", &old), "pol-1", &only_old), Ok(()));
        // Unsigned, while keys are trusted: refused; with no keys configured (push default): accepted.
        let unsigned = assignment("SECRET");
        assert_eq!(integrity(&unsigned, "pol-1", &only_old).unwrap_err().reason, "Unsigned");
        assert_eq!(integrity(&unsigned, "pol-1", &Ok(None)), Ok(()));
        // Another key.
        let r = integrity(&signed("SECRET", &new), "pol-1", &only_old).unwrap_err();
        assert_eq!(r.reason, "UnknownSigningKey");
        assert!(r.message.contains(new.id()), "{}", r.message);
        // Tampered: the label changed without a new digest, or with a new digest but no new signature.
        let mut a = signed("SECRET", &old);
        a.spec.confidentiality.classification = "RESTRICTED".into();
        assert_eq!(integrity(&a, "pol-1", &only_old).unwrap_err().reason, "DigestMismatch");
        a.spec.digest = a.spec.compute_digest();
        assert_eq!(integrity(&a, "pol-1", &only_old).unwrap_err().reason, "BadSignature");
        // A signature moved onto another Assignment's digest does not verify either.
        let mut other = signed("RESTRICTED", &old);
        let sig = signed("SECRET", &old).metadata.annotations.unwrap();
        other.metadata.annotations = Some(sig);
        assert_eq!(integrity(&other, "pol-1", &only_old).unwrap_err().reason, "BadSignature");
        // Rotation: during the overlap both keys verify; afterwards only the new one.
        let both = ring(&[&old, &new]);
        assert_eq!(integrity(&signed("SECRET", &old), "pol-1", &both), Ok(()));
        assert_eq!(integrity(&signed("SECRET", &new), "pol-1", &both), Ok(()));
        let only_new = ring(&[&new]);
        assert_eq!(integrity(&signed("SECRET", &old), "pol-1", &only_new).unwrap_err().reason, "UnknownSigningKey");
        // Unreadable trust fails closed.
        let r = integrity(&signed("SECRET", &old), "pol-1", &Err("gone".into())).unwrap_err();
        assert_eq!(r.reason, "TrustInvalid");
        assert!(r.keeps_running());
    }

    #[test]
    fn integrity_refusals_keep_running_clearance_refusals_remove() {
        for reason in ["ClusterMismatch", "DigestMismatch", "Unsigned", "UnknownSigningKey", "BadSignature"] {
            assert!(Refusal { reason, message: String::new() }.keeps_running(), "{reason}");
            assert!(refusal_keeps_running(&format!("{reason}: detail")), "{reason}");
        }
        assert!(!refusal_keeps_running("ClassificationNotCleared: CONFIDENTIAL is not cleared"));
        assert!(!refusal_keeps_running(""));
        for reason in ["ClassificationNotCleared", "NotReleasable", "HostRefused", "MemberClearanceInvalid"] {
            assert!(!Refusal { reason, message: String::new() }.keeps_running(), "{reason}");
        }
    }

    #[test]
    fn clearance_sources() {
        let cm = configmap(
            "clearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n",
        );
        // Push: the ConfigMap if present, else the hub spec (None).
        assert!(own_clearance(&ClearanceSource::ConfigMapOrHub, None).is_none());
        assert!(matches!(own_clearance(&ClearanceSource::ConfigMapOrHub, Some(&cm)), Some(Ok(_))));
        // Agent: never the hub spec.
        let missing = own_clearance(&ClearanceSource::ConfigMap, None).unwrap().unwrap_err();
        assert!(missing.contains("never uses the hub"), "{missing}");
        let dir = std::env::temp_dir().join(format!("marshal-clearance-{}", std::process::id()));
        let path = dir.with_extension("yaml");
        let absent = own_clearance(&ClearanceSource::File(path.clone()), Some(&cm)).unwrap().unwrap_err();
        assert!(absent.contains("clearance file"), "{absent}");
        std::fs::write(&path, "clearance:\n  policy: NATO\n  classifications: [UNCLASSIFIED, RESTRICTED]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n").unwrap();
        let own = own_clearance(&ClearanceSource::File(path.clone()), Some(&cm)).unwrap().unwrap();
        assert_eq!(own.clearance.classifications, ["UNCLASSIFIED", "RESTRICTED"]);
        let _ = std::fs::remove_file(&path);
        // The agent refuses a SECRET Assignment although the hub's spec clears SECRET.
        let hub = member(&["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]);
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, Some(&Ok(own)), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
    }

    #[test]
    fn local_policies_replace_the_hubs() {
        // The hub's SPIF makes "Releasable To" Permissive (one held value suffices); the host's own SPIF makes
        // it Restrictive (every value must be held), so a label releasable to POL and DEU no longer passes.
        let text = "clearance:\n  policy: NATO\n  classifications: [RESTRICTED]\n  \
                    categories: [{tagName: Releasable To, values: [POL]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n\
                    policies:\n- {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED], \
                    categories: [{tagName: Releasable To, type: Restrictive, values: [POL, DEU]}]}\n";
        let own: MemberClearance = serde_yaml::from_str(text).unwrap();
        let hub = member(&["RESTRICTED"]);
        let mut a = assignment("RESTRICTED");
        a.spec.confidentiality.categories[0].values = vec!["POL".into(), "DEU".into()];
        a.spec.digest = a.spec.compute_digest();
        let r = recheck(&a, "pol-1", &hub, Some(&Ok(own.clone())), &[policy()], now()).map_err(|r| r.reason);
        assert_eq!(r, Err("NotReleasable"));
        let mut without = own;
        without.policies.clear();
        assert_eq!(recheck(&a, "pol-1", &hub, Some(&Ok(without)), &[policy()], now()), Ok(()));
    }
}
