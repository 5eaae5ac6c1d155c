//! Pure: the member's own re-check of an Assignment (zero trust: the member does not trust the hub).
//!
//! Two kinds of check, in order:
//! - **integrity** ([`integrity`]): the Assignment is for this cluster, its digest matches its spec, and (when
//!   the syncer trusts signing keys) it carries a valid signature by a trusted key. A failure means the
//!   instruction is not authentic: it is refused and whatever the member runs from an earlier, verified
//!   instruction keeps running ([`Refusal::keeps_running`]).
//! - **clearance** ([`recheck`]): the label must pass accreditation, access control (under the member's own
//!   security policies) and host admission against the member's own clearance, and the member's nation must be
//!   in the workload's residency. Where that host configuration comes from is the [`ClearanceSource`] of the
//!   process: push mode reads the member ConfigMap `marshal-system/marshal-clearance` and, only when the host
//!   installed none, falls back to the hub's MemberCluster spec and SecurityPolicies; the agent reads its local
//!   file or that ConfigMap and never the hub's. A failure removes the member's copy (the member must not hold
//!   what it is not cleared for).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::ConfigMap;

pub use super::host_config::{CLEARANCE_KEY, MemberClearance, parse_clearance_file, parse_member_clearance};
use crate::api::{Admission, Assignment, MemberCluster, SecurityPolicy};
use crate::placement::access::{LabelView, sovereignty};
use crate::placement::filters::{accredited, host_admission};
use crate::placement::model::{ClusterFacts, Settings, Snapshot};
use crate::signing::{KeyRing, Trust};

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

/// Integrity refusals: the instruction is not authentic or not fresh, so it changes nothing in the member.
const INTEGRITY: &[&str] = &[
    "ClusterMismatch",
    "DigestMismatch",
    "Unsigned",
    "UnknownSigningKey",
    "BadSignature",
    "TrustInvalid",
    "StaleSequence",
    "Expired",
];

/// Refusals of a member that cannot check at all: its own clearance ConfigMap or file is unreadable, or names
/// a policy it does not hold, or the label's policy is unknown to it. A missing fact is not a "no" (DESIGN.md §4):
/// the member keeps what it runs for the Assignment and starts nothing new; the hub holds the placement.
const UNVERIFIABLE: &[&str] = &["MemberClearanceInvalid", "PolicyNotHeld", "PolicyUnknown"];

fn reason_of(status_message: &str) -> &str {
    status_message.split_once(':').map_or(status_message, |(r, _)| r).trim()
}

/// Whether a refusal reported in an Assignment's status says the member cannot verify it ([`UNVERIFIABLE`]).
pub fn refusal_unverifiable(status_message: &str) -> bool {
    UNVERIFIABLE.contains(&reason_of(status_message))
}

/// Freshness refusals: the controller answers them by issuing the instruction again (a new sequence and
/// `notAfter`), never by changing what runs.
pub fn refusal_wants_renewal(status_message: &str) -> bool {
    matches!(reason_of(status_message), "StaleSequence" | "Expired")
}

/// Whether a refusal reported in an Assignment's status (`<Reason>: <detail>`) left the member's copy running.
pub fn refusal_keeps_running(status_message: &str) -> bool {
    let reason = reason_of(status_message);
    INTEGRITY.contains(&reason) || UNVERIFIABLE.contains(&reason)
}

impl Refusal {
    /// Whether the member keeps what it already runs for this Assignment: integrity refusals (an unauthentic
    /// instruction neither changes nor removes anything) and unverifiable ones (a missing fact removes nothing).
    /// Clearance refusals (a fact that says no) remove the member's copy.
    pub fn keeps_running(&self) -> bool {
        INTEGRITY.contains(&self.reason) || UNVERIFIABLE.contains(&self.reason)
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
    let expected = a.compute_digest();
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

/// The facts the member checks against: the MemberCluster, with the member's own clearance, nation and admission
/// in force when the host configured them.
pub fn member_facts(mc: &MemberCluster, own: Option<&MemberClearance>) -> ClusterFacts {
    let mut mc = mc.clone();
    if let Some(own) = own {
        mc.spec.nation = own.nation.clone();
        mc.spec.clearance = own.clearance.clone();
        mc.spec.admission =
            own.admission.clone().unwrap_or(Admission { owner_nations: vec!["*".into()], max_classification: None });
    }
    ClusterFacts::from_crd(&mc, None)
}

/// What the member accepted: the label's classification under the member's own policy (a label matched through
/// an alternative is labelled with the member's national classification, so the member guard and the re-check
/// agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Policy identifier of the member's clearance.
    pub policy: String,
    /// The classification under that policy.
    pub classification: String,
}

/// Re-checks an Assignment: cluster and digest (signatures are [`integrity`]'s), then the clearance. `own` is
/// the member's own host configuration (`None`: the host installed none, push mode only, and the MemberCluster
/// spec and the hub's `policies` are in force). With a host configuration only its own policies count.
pub fn recheck(
    a: &Assignment,
    cluster: &str,
    mc: &MemberCluster,
    own: Option<&Result<MemberClearance, String>>,
    policies: &[SecurityPolicy],
    now: jiff::Timestamp,
) -> Result<Accepted, Refusal> {
    integrity(a, cluster, &Ok(None))?;
    let own = match own {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(Refusal { reason: "MemberClearanceInvalid", message: e.clone() }),
    };
    let facts = member_facts(mc, own);
    let local: Vec<SecurityPolicy>;
    let policies = match own {
        Some(c) => {
            if !c.policies.iter().any(|p| p.policy_identifier == c.clearance.policy) {
                return Err(Refusal {
                    reason: "PolicyNotHeld",
                    message: format!(
                        "member clearance: the host configuration holds no security policy {} (add it under \
                         `policies`: the member never uses the hub's SecurityPolicies)",
                        c.clearance.policy
                    ),
                });
            }
            local = c
                .policies
                .iter()
                .map(|p| SecurityPolicy::new(&p.policy_identifier.to_lowercase(), p.clone()))
                .collect();
            &local[..]
        }
        None => policies,
    };
    let source = if own.is_some() { "member clearance" } else { "MemberCluster clearance" };
    let refuse = |f: crate::placement::filters::Fail| Refusal {
        reason: f.reason.as_str(),
        message: format!("{source}: {}", f.message),
    };
    let snap = Snapshot::new(policies, vec![facts.clone()], &[], Settings::default());
    accredited(&facts, now).map_err(refuse)?;
    let mut view = LabelView::new(&a.spec.confidentiality, &snap);
    let m = sovereignty(&facts, &mut view).map_err(refuse)?;
    host_admission(&facts, &a.spec.owner, &m).map_err(refuse)?;
    if !a.spec.residency.is_empty() && !a.spec.residency.contains(&facts.nation) {
        return Err(Refusal {
            reason: "ResidencyViolation",
            message: format!(
                "{source}: the workload's data may reside only in {}; this member's nation is {}",
                a.spec.residency.join(", "),
                facts.nation
            ),
        });
    }
    Ok(Accepted { policy: facts.clearance.policy.clone(), classification: m.classification.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::tests::assignment;
    use serde_json::json;

    const NATO: &str = "{policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, \
                        COSMIC TOP SECRET], categories: [{tagName: Releasable To, type: Permissive}]}";

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

    /// A host configuration for POL with these classifications and the NATO policy.
    fn host(classifications: &str) -> String {
        format!(
            "nation: POL\nclearance:\n  policy: NATO\n  classifications: [{classifications}]\n  \
             categories: [{{tagName: Releasable To, values: [POL, NATO]}}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n\
             policies:\n- {NATO}\n"
        )
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn reason(r: Result<Accepted, Refusal>) -> Result<String, &'static str> {
        r.map(|a| a.classification).map_err(|r| r.reason)
    }

    #[test]
    fn secret_is_refused_by_a_restricted_member_configmap() {
        let a = assignment("SECRET");
        let hub = member(&["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]);
        assert_eq!(reason(recheck(&a, "pol-1", &hub, None, &[policy()], now())), Ok("SECRET".into()));
        let own = parse_member_clearance(&configmap(&host("UNCLASSIFIED, RESTRICTED")));
        assert!(own.is_ok(), "{own:?}");
        let r = recheck(&a, "pol-1", &hub, Some(&own), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
        assert!(r.message.starts_with("member clearance"), "{}", r.message);
        let ok = recheck(&assignment("RESTRICTED"), "pol-1", &hub, Some(&own), &[policy()], now());
        assert_eq!(reason(ok), Ok("RESTRICTED".into()));
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
        // The digest binds the Assignment's namespace and name: a copy elsewhere does not verify.
        let mut moved = assignment("SECRET");
        moved.metadata.name = Some("baltic.other".into());
        assert_eq!(integrity(&moved, "pol-1", &Ok(None)).unwrap_err().reason, "DigestMismatch");
        let mut moved = assignment("SECRET");
        moved.metadata.namespace = Some("marshal-deu-1".into());
        assert_eq!(integrity(&moved, "pol-1", &Ok(None)).unwrap_err().reason, "DigestMismatch");
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
        a.spec.digest = a.compute_digest();
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
    fn integrity_and_freshness_refusals_keep_running_clearance_refusals_remove() {
        for reason in [
            "ClusterMismatch",
            "DigestMismatch",
            "Unsigned",
            "UnknownSigningKey",
            "BadSignature",
            "StaleSequence",
            "Expired",
        ] {
            assert!(Refusal { reason, message: String::new() }.keeps_running(), "{reason}");
            assert!(refusal_keeps_running(&format!("{reason}: detail")), "{reason}");
        }
        assert!(refusal_wants_renewal("Expired: notAfter passed") && refusal_wants_renewal("StaleSequence: x"));
        assert!(!refusal_wants_renewal("BadSignature: x"));
        assert!(!refusal_keeps_running("ClassificationNotCleared: CONFIDENTIAL is not cleared"));
        assert!(!refusal_keeps_running(""));
        for reason in ["ClassificationNotCleared", "NotReleasable", "HostRefused", "HostPolicyViolation"] {
            assert!(!Refusal { reason, message: String::new() }.keeps_running(), "{reason}");
            assert!(!refusal_unverifiable(&format!("{reason}: detail")), "{reason}");
        }
        // A member that cannot check keeps what runs: a missing fact is not a "no".
        for reason in ["MemberClearanceInvalid", "PolicyNotHeld", "PolicyUnknown"] {
            assert!(Refusal { reason, message: String::new() }.keeps_running(), "{reason}");
            assert!(refusal_unverifiable(&format!("{reason}: detail")), "{reason}");
        }
    }

    #[test]
    fn clearance_sources() {
        let cm = configmap(&host("UNCLASSIFIED"));
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
        std::fs::write(&path, host("UNCLASSIFIED, RESTRICTED")).unwrap();
        let own = own_clearance(&ClearanceSource::File(path.clone()), Some(&cm)).unwrap().unwrap();
        assert_eq!(own.clearance.classifications, ["UNCLASSIFIED", "RESTRICTED"]);
        let _ = std::fs::remove_file(&path);
        // The agent refuses a SECRET Assignment although the hub's spec clears SECRET.
        let hub = member(&["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]);
        let r = recheck(&assignment("SECRET"), "pol-1", &hub, Some(&Ok(own)), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ClassificationNotCleared");
    }

    #[test]
    fn local_policies_replace_the_hubs_and_none_means_refused() {
        // The hub's SPIF makes "Releasable To" Permissive (one held value suffices); the host's own SPIF makes
        // it Restrictive (every value must be held), so a label releasable to POL and DEU no longer passes.
        let text = "nation: POL\nclearance:\n  policy: NATO\n  classifications: [RESTRICTED]\n  \
                    categories: [{tagName: Releasable To, values: [POL]}]\n  reviewBy: \"2099-01-01T00:00:00Z\"\n\
                    policies:\n- {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED], \
                    categories: [{tagName: Releasable To, type: Restrictive, values: [POL, DEU]}]}\n";
        let own = parse_clearance_file(text, "t").unwrap();
        let hub = member(&["RESTRICTED"]);
        let mut a = assignment("RESTRICTED");
        a.spec.confidentiality.categories[0].values = vec!["POL".into(), "DEU".into()];
        a.spec.digest = a.compute_digest();
        let r = recheck(&a, "pol-1", &hub, Some(&Ok(own.clone())), &[policy()], now()).map_err(|r| r.reason);
        assert_eq!(r.map(|_| ()), Err("NotReleasable"));
        // Without local policies the member holds no policy at all: the hub's (which would accept) never count.
        let mut without = own;
        without.policies.clear();
        let r = recheck(&a, "pol-1", &hub, Some(&Ok(without)), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "PolicyNotHeld");
        assert!(r.message.contains("NATO"), "{}", r.message);
    }

    #[test]
    fn the_member_rechecks_residency_with_its_own_nation() {
        let hub = member(&["RESTRICTED"]);
        let mut a = assignment("RESTRICTED");
        a.spec.residency = vec!["POL".into()];
        a.spec.digest = a.compute_digest();
        assert!(recheck(&a, "pol-1", &hub, None, &[policy()], now()).is_ok());
        // The host says it is AUT (the hub believes POL): residency POL is violated, in the member's words.
        let own = parse_clearance_file(&host("RESTRICTED").replace("nation: POL", "nation: AUT"), "t").unwrap();
        let r = recheck(&a, "pol-1", &hub, Some(&Ok(own)), &[policy()], now()).unwrap_err();
        assert_eq!(r.reason, "ResidencyViolation");
        assert!(r.message.contains("AUT") && r.message.contains("POL"), "{}", r.message);
    }
}
