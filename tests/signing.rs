//! Signed Assignments end to end in pure code: the controller's build step signs, the member's integrity check
//! verifies, and a key rotation re-signs every Assignment once while both keys are trusted.

mod common;

use common::*;
use marshal::api::MissionWorkload;
use marshal::controller::build::{self, Issuance};
use marshal::placement::{WorkloadModel, decide};
use marshal::signing::{KEY_ID_ANNOTATION, KeyRing, SIGNATURE_ANNOTATION, Signer};
use marshal::sync::recheck::integrity;
use serde_json::json;

fn mw() -> MissionWorkload {
    let mut w = workload_crd(
        "isr-fusion",
        json!({"replicas": 4, "placement": {"tiers": ["core"], "preferredNations": ["POL", "DEU"],
        "spread": {"maxReplicasPerCluster": 2}}}),
    );
    w.metadata.namespace = Some("baltic-shield".into());
    w.metadata.uid = Some("uid-1".into());
    w
}

fn ring(keys: &[&Signer]) -> Result<Option<KeyRing>, String> {
    let mut r = KeyRing::default();
    for k in keys {
        r.add(k.public());
    }
    Ok(Some(r))
}

#[test]
fn build_signs_deterministically_and_members_verify() {
    let w = mw();
    let snap = snapshot(vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])], &[]);
    let d = decide(&WorkloadModel::from_crd(&w), &snap, &Default::default(), t(0));
    let key = Signer::generate().expect("key");
    let first = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), Some(&key));
    let again = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), Some(&key));
    assert_eq!(first.len(), 2);
    for (a, b) in first.iter().zip(&again) {
        let ann = a.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get(KEY_ID_ANNOTATION).map(String::as_str), Some(key.id()));
        assert!(ann.get(SIGNATURE_ANNOTATION).is_some_and(|s| s.len() == 88), "base64 of 64 bytes");
        // Same decision, same bytes: nothing to write.
        assert!(build::up_to_date(a, b));
        assert_eq!(integrity(a, &a.spec.cluster, &ring(&[&key])), Ok(()));
        // Each Assignment verifies only for its own cluster.
        let other = if a.spec.cluster == "pol-1" { "deu-1" } else { "pol-1" };
        assert_eq!(integrity(a, other, &ring(&[&key])).unwrap_err().reason, "ClusterMismatch");
    }
    // Unsigned Assignments are out of date against signed ones (and the other way round).
    let unsigned = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), None);
    assert!(!build::up_to_date(&first[0], &unsigned[0]));
    assert!(!build::up_to_date(&unsigned[0], &first[0]));
    assert_eq!(integrity(&unsigned[0], &unsigned[0].spec.cluster, &ring(&[&key])).unwrap_err().reason, "Unsigned");
}

#[test]
fn rotation_resigns_once_and_old_and_new_verify_during_overlap() {
    let w = mw();
    let snap = snapshot(vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])], &[]);
    let d = decide(&WorkloadModel::from_crd(&w), &snap, &Default::default(), t(0));
    let old = Signer::generate().expect("old");
    let new = Signer::generate().expect("new");
    let existing = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), Some(&old));
    let desired = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), Some(&new));
    for (e, n) in existing.iter().zip(&desired) {
        // The spec (and so the member's Deployment digest) is unchanged; only the signature is re-written.
        assert_eq!(e.spec, n.spec);
        assert!(!build::up_to_date(e, n), "a new key re-signs every Assignment once");
        let both = ring(&[&old, &new]);
        assert_eq!(integrity(e, &e.spec.cluster, &both), Ok(()), "old signature during the overlap");
        assert_eq!(integrity(n, &n.spec.cluster, &both), Ok(()), "new signature during the overlap");
        assert_eq!(integrity(n, &n.spec.cluster, &ring(&[&old])).unwrap_err().reason, "UnknownSigningKey");
        assert_eq!(integrity(e, &e.spec.cluster, &ring(&[&new])).unwrap_err().reason, "UnknownSigningKey");
    }
}

#[test]
fn a_kept_copy_is_signed_and_renewed_as_it_is() {
    // An old copy kept until its replacement is Ready is not rewritten from the workload, but its instruction is
    // signed with the current key and renewed when due, so its member never holds it unsigned or expired.
    let w = mw();
    let snap = snapshot(vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])], &[]);
    let d = decide(&WorkloadModel::from_crd(&w), &snap, &Default::default(), t(0));
    let key = Signer::generate().expect("key");
    let unsigned = build::assignments_signed(&w, &d, &[], &Issuance::at(t(0)), None).remove(0);
    let signed = build::reissued_signed(&unsigned, &Issuance::at(t(60)), Some(&key));
    assert!(!build::up_to_date(&unsigned, &signed), "an unsigned kept copy is signed");
    assert_eq!(signed.spec.content_digest(), unsigned.spec.content_digest(), "its content stays as it is");
    assert_eq!(signed.spec.sequence, unsigned.spec.sequence, "not due for renewal");
    assert_eq!(integrity(&signed, &signed.spec.cluster, &ring(&[&key])), Ok(()));
    let again = build::reissued_signed(&signed, &Issuance::at(t(120)), Some(&key));
    assert!(build::up_to_date(&signed, &again), "unchanged: nothing to write");
    let late = build::reissued_signed(&signed, &Issuance::at(t(13 * 3600)), Some(&key));
    assert!(late.spec.sequence > signed.spec.sequence && late.spec.not_after.0 > signed.spec.not_after.0, "renewed");
    assert_eq!(integrity(&late, &late.spec.cluster, &ring(&[&key])), Ok(()));
}
