//! The controller's pure steps: desired Assignments, history from status, and deterministic status.

mod common;

use common::*;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use marshal::api::{ASSIGNMENT_FINALIZER, AssignmentPhase, AssignmentStatus, MissionWorkload, Phase};
use marshal::controller::build::Issuance;
use marshal::controller::{build, reconcile::replacement_category, status};
use marshal::placement::{WorkloadModel, decide};
use serde_json::json;

fn mw() -> MissionWorkload {
    let mut w = workload_crd(
        "isr-fusion",
        json!({"replicas": 5, "placement": {"tiers": ["core"], "preferredNations": ["POL", "DEU"],
        "spread": {"maxReplicasPerCluster": 3}}}),
    );
    w.metadata.namespace = Some("baltic-shield".into());
    w.metadata.uid = Some("uid-1".into());
    w.metadata.generation = Some(3);
    w
}

fn clusters() -> Vec<marshal::placement::ClusterFacts> {
    vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"])]
}

#[test]
fn one_assignment_per_placement_with_digest_labels_and_finalizer() {
    let w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let asg = build::assignments(&w, &d, &[], &Issuance::at(t(0)));
    assert_eq!(asg.len(), 2);
    let pol = asg.iter().find(|a| a.spec.cluster == "pol-1").expect("pol-1");
    assert_eq!(pol.metadata.name.as_deref(), Some("baltic-shield.isr-fusion"));
    assert_eq!(pol.metadata.namespace.as_deref(), Some("marshal-pol-1"));
    assert_eq!(pol.spec.replicas, 3);
    assert_eq!(pol.spec.tier, "core");
    assert_eq!(pol.spec.workload.uid, "uid-1");
    assert_eq!(pol.spec.digest, pol.compute_digest());
    assert_eq!(pol.spec.sequence, t(0).as_millisecond(), "a first instruction is stamped with the hub's clock");
    assert_eq!(pol.spec.not_after, Time(t(86_400)), "valid for a day by default");
    assert!(pol.spec.digest.starts_with("sha256:") && pol.spec.digest.len() == 71);
    assert_eq!(pol.metadata.finalizers.as_deref(), Some(&[ASSIGNMENT_FINALIZER.to_string()][..]));
    let labels = pol.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("marshal.dev/workload-name").map(String::as_str), Some("isr-fusion"));
    assert_eq!(labels.get("marshal.dev/cluster").map(String::as_str), Some("pol-1"));
    assert!(build::belongs_to(pol, &w));
    assert!(build::up_to_date(pol, pol));

    // Anything the member enforces changes the digest.
    let mut tampered = pol.clone();
    tampered.spec.confidentiality.classification = "SECRET".into();
    assert_ne!(tampered.compute_digest(), pol.spec.digest);
    let mut other_tier = pol.clone();
    other_tier.spec.tier = "edge".into();
    assert_ne!(other_tier.compute_digest(), pol.spec.digest);
}

#[test]
fn status_is_deterministic_and_feeds_the_next_decision() {
    let mut w = mw();
    let snap = snapshot(clusters(), &[]);
    let d0 = decide(&WorkloadModel::from_crd(&w), &snap, &build::history(&w), t(0));
    let s0 = status::build(&w, &d0, &[], Time(t(0)));
    assert_eq!(s0.phase, Phase::Placed);
    assert_eq!(s0.clusters, "deu-1,pol-1");
    assert_eq!(s0.replicas, 5);
    assert_eq!(s0.observed_generation, Some(3));
    w.status = Some(s0.clone());

    // Same facts a little later: byte-identical status (the apply is a no-op), no moves.
    let d1 = decide(&WorkloadModel::from_crd(&w), &snap, &build::history(&w), t(10));
    assert!(d1.moves.is_empty());
    let s1 = status::build(&w, &d1, &[], Time(t(10)));
    assert_eq!(serde_json::to_string(&s1).unwrap(), serde_json::to_string(&s0).unwrap());

    // Readiness from the Assignments changes Ready, and only Ready's transition time moves.
    let mut asg = build::assignments(&w, &d1, &[], &Issuance::at(t(10)));
    for a in &mut asg {
        a.status = Some(AssignmentStatus {
            phase: AssignmentPhase::Applied,
            ready_replicas: u32::try_from(a.spec.replicas).unwrap(),
            applied_digest: a.spec.content_digest(),
            ..Default::default()
        });
    }
    let s2 = status::build(&w, &d1, &asg, Time(t(20)));
    assert_eq!(s2.ready_replicas, 5);
    let cond = |s: &marshal::api::MissionWorkloadStatus, ty: &str| {
        s.conditions.iter().find(|c| c.type_ == ty).cloned().unwrap()
    };
    assert_eq!(cond(&s2, "Ready").status, "True");
    assert_eq!(cond(&s2, "Ready").last_transition_time, Time(t(20)));
    assert_eq!(cond(&s2, "Placed").last_transition_time, Time(t(0)));
    assert_eq!(s2.last_decision_time, s0.last_decision_time, "placements unchanged: decision time kept");
}

/// A member's report makes the workload Ready only for the spec it was made for: after a re-division changes
/// an Assignment, replicas reported ready under the old spec still count as running (the engine keeps them on
/// an overcommitted tier), but `Ready` waits for the member to confirm the new spec (seen in e2e: `Ready` with
/// `deu-1/core=3` from a report of 4 ready replicas made before a node was lost).
#[test]
fn readiness_reported_for_an_older_spec_does_not_make_it_ready() {
    let w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let mut asg = build::assignments(&w, &d, &[], &Issuance::at(t(0)));
    for a in &mut asg {
        a.status = Some(AssignmentStatus {
            phase: AssignmentPhase::Applied,
            ready_replicas: 4,
            applied_digest: "sha256:an-earlier-spec".into(),
            ..Default::default()
        });
    }
    let s = status::build(&w, &d, &asg, Time(t(1)));
    assert_eq!(s.ready_replicas, 5, "capped at each placement's replicas");
    let ready =
        |s: &marshal::api::MissionWorkloadStatus| s.conditions.iter().find(|c| c.type_ == "Ready").cloned().unwrap();
    assert_eq!(ready(&s).status, "False");
    assert!(ready(&s).message.contains("waiting for members to confirm"), "{}", ready(&s).message);
    // Once the member reports for the current spec, the workload is Ready.
    for a in &mut asg {
        a.status.as_mut().unwrap().applied_digest = a.spec.content_digest();
    }
    let s = status::build(&w, &d, &asg, Time(t(2)));
    assert_eq!(ready(&s).status, "True");
}

/// The controller compares the status it builds with the one in its cache. Facts with sub-second times (a
/// Lease's renewTime) must not make them differ once the status has been through the API (whole seconds), or
/// every reconcile would rewrite it: measured at about 10 status writes per moved workload in the failover
/// benchmark before this held.
#[test]
fn status_read_back_from_the_api_equals_the_next_one_built() {
    let mut w = mw();
    let ms = |s: i64, ms: i64| Timestamp::from_millisecond(t(s).as_millisecond() + ms).unwrap();
    let mut cs = clusters();
    cs[1].heartbeat = Some(ms(0, 250)); // deu-1 last heard at 0.25 s: unreachable from 15.25 s
    cs[0].heartbeat = Some(ms(40, 0));
    let snap = snapshot(cs, &[]);
    let d0 = decide(&WorkloadModel::from_crd(&w), &snap, &build::history(&w), ms(40, 700));
    let s0 = status::build(&w, &d0, &[], Time(ms(40, 700)));
    assert!(s0.verdicts.iter().any(|v| v.cluster == "deu-1" && v.reason == "Unreachable" && v.observed_at.is_some()));
    // Through the API: serialized (whole seconds) and read back.
    let stored: marshal::api::MissionWorkloadStatus =
        serde_json::from_str(&serde_json::to_string(&s0).unwrap()).unwrap();
    assert_eq!(stored, s0, "what the API gives back equals what was written");
    w.status = Some(stored);
    let d1 = decide(&WorkloadModel::from_crd(&w), &snap, &build::history(&w), ms(41, 300));
    let s1 = status::build(&w, &d1, &[], Time(ms(41, 300)));
    assert_eq!(w.status.as_ref(), Some(&s1), "unchanged facts: the controller writes nothing");
}

#[test]
fn a_member_refusal_makes_the_workload_non_compliant() {
    let w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let mut asg = build::assignments(&w, &d, &[], &Issuance::at(t(0)));
    asg[0].status = Some(AssignmentStatus {
        phase: AssignmentPhase::Refused,
        message: "RESTRICTED clearance does not cover SECRET".into(),
        ..Default::default()
    });
    let s = status::build(&w, &d, &asg, Time(t(0)));
    let c = s.conditions.iter().find(|c| c.type_ == "Compliant").unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "RefusedByMember"));
    assert!(c.message.contains("does not cover SECRET"), "{}", c.message);
}

#[test]
fn history_round_trips_through_status() {
    let mut w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    w.status = Some(status::build(&w, &d, &[], Time(t(0))));
    let h = build::history(&w);
    assert_eq!(h.placements.len(), d.placements.len());
    assert_eq!(h.verdicts, d.verdicts);
    assert_eq!(h.placements[0].since, Timestamp::from_second(1_800_000_000).unwrap());
}

#[test]
fn replacement_reasons_are_bounded_categories() {
    for (reason, cat) in [
        ("Unreachable", "unreachable"),
        ("LinkInsufficient", "link"),
        ("Capacity", "capacity"),
        ("InsufficientCpu", "capacity"),
        ("Failback", "failback"),
        ("Spec", "spec"),
        ("NotReleasable", "policy"),
        ("AccreditationExpired", "policy"),
    ] {
        assert_eq!(replacement_category(reason), cat, "{reason}");
    }
}

/// Sequence and notAfter: unchanged content keeps both (nothing is written), changed content gets a newer
/// sequence, renewal comes when half of the validity is left, and a member's refusal as stale or expired is
/// answered with a fresh instruction at most once a minute.
#[test]
fn instructions_keep_their_sequence_until_content_changes_or_renewal_is_due() {
    let mut w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let first = build::assignments(&w, &d, &[], &Issuance::at(t(0)));
    let own: Vec<&marshal::api::Assignment> = first.iter().collect();
    // An hour later, same content: same sequence, same notAfter, same digest: up to date, nothing written.
    let again = build::assignments(&w, &d, &own, &Issuance::at(t(3_600)));
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.spec, b.spec);
        assert!(build::up_to_date(a, b));
    }
    // Past half of the validity: renewed with a newer sequence and a later notAfter, content unchanged.
    let renewed = build::assignments(&w, &d, &own, &Issuance::at(t(43_200)));
    for (a, b) in first.iter().zip(&renewed) {
        assert!(b.spec.sequence > a.spec.sequence);
        assert_eq!(b.spec.not_after, Time(t(43_200 + 86_400)));
        assert_eq!(a.spec.content_digest(), b.spec.content_digest(), "a renewal changes no member object");
        assert!(!build::up_to_date(a, b));
    }
    // New content a second later: a newer sequence even when the clock did not move.
    let original = w.clone();
    w.spec.template.spec["containers"][0]["image"] = json!("registry.example.mil/app:2");
    let changed = build::assignments(&w, &d, &own, &Issuance::at(t(0)));
    for (a, b) in first.iter().zip(&changed) {
        assert_eq!(b.spec.sequence, a.spec.sequence + 1, "never lower, never equal for other content");
    }
    // A member refused the instruction as expired: re-issued, but not within a minute of issuing it.
    let mut refused = first.clone();
    for a in &mut refused {
        a.status = Some(AssignmentStatus {
            phase: AssignmentPhase::Refused,
            message: "Expired: notAfter has passed on this member's clock".into(),
            ..Default::default()
        });
    }
    let own: Vec<&marshal::api::Assignment> = refused.iter().collect();
    let w = original;
    let soon = build::assignments(&w, &d, &own, &Issuance::at(t(30)));
    assert!(soon.iter().zip(&first).all(|(b, a)| b.spec.sequence == a.spec.sequence), "not within a minute");
    let later = build::assignments(&w, &d, &own, &Issuance::at(t(61)));
    assert!(later.iter().zip(&first).all(|(b, a)| b.spec.sequence > a.spec.sequence), "re-issued");
}

/// Only the workload's own Assignments count for it: in its cluster's namespace, under the canonical name, for
/// its UID. A transplant, a renamed copy or one of an earlier workload of that name count for nothing.
#[test]
fn foreign_assignments_do_not_belong_to_the_workload() {
    let w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let own = build::assignments(&w, &d, &[], &Issuance::at(t(0)));
    assert!(own.iter().all(|a| build::belongs_to(a, &w)));
    let mut transplant = own[0].clone();
    transplant.metadata.namespace = Some("marshal-ltu-1".into());
    let mut renamed = own[0].clone();
    renamed.metadata.name = Some("baltic-shield.isr-fusion-copy".into());
    let mut earlier = own[0].clone();
    earlier.spec.workload.uid = "uid-0".into();
    for a in [transplant, renamed, earlier] {
        assert!(!build::belongs_to(&a, &w), "{:?}", a.metadata);
        // So its refusal is no refusal of this workload's.
        let mut refused = a.clone();
        refused.status =
            Some(AssignmentStatus { phase: AssignmentPhase::Refused, message: "x: y".into(), ..Default::default() });
        let mine: Vec<&marshal::api::Assignment> =
            [&refused].into_iter().filter(|a| build::belongs_to(a, &w)).collect();
        assert!(build::refusals(mine).is_empty());
    }
}

#[test]
fn status_shows_the_desired_total_and_compliance_unknown_while_a_fact_is_missing() {
    // Duplicated on two clusters: one replica each is two in all, and the REPLICAS column says so.
    let mut w = mw();
    w.spec.replicas = 1;
    w.spec.placement.mode = marshal::api::PlacementMode::Duplicated;
    w.spec.placement.spread = None;
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(clusters(), &[]), &Default::default(), t(0));
    let s = status::build(&w, &d, &[], Time(t(0)));
    assert_eq!((s.desired_replicas, s.replicas), (2, 2));
    let compliant = s.conditions.iter().find(|c| c.type_ == "Compliant").expect("Compliant");
    assert_eq!(compliant.status, "True");

    // The SecurityPolicy disappears: what runs is held, and the workload says its compliance is unknown.
    let mut w = w.clone();
    w.status = Some(s.clone());
    let held = marshal::placement::Snapshot::new(&[], clusters(), &[], Default::default());
    let d = decide(&WorkloadModel::from_crd(&w), &held, &build::history(&w), t(10));
    assert_eq!(d.placed(), 2, "nothing is removed for a missing policy");
    let s2 = status::build(&w, &d, &[], Time(t(10)));
    let compliant = s2.conditions.iter().find(|c| c.type_ == "Compliant").expect("Compliant");
    assert_eq!((compliant.status.as_str(), compliant.reason.as_str()), ("Unknown", "FactsMissing"));
    assert!(compliant.message.contains("no SecurityPolicy with identifier NATO"), "{}", compliant.message);
    assert_eq!(compliant.last_transition_time, Time(t(10)));
    // Unchanged facts: the same status, byte for byte (no write).
    let mut w2 = w.clone();
    w2.status = Some(s2.clone());
    let d2 = decide(&WorkloadModel::from_crd(&w2), &held, &build::history(&w2), t(12));
    assert_eq!(status::build(&w2, &d2, &[], Time(t(12))), s2);
    // The policy is back: compliant again, from now.
    let d3 = decide(&WorkloadModel::from_crd(&w2), &snapshot(clusters(), &[]), &build::history(&w2), t(14));
    let s3 = status::build(&w2, &d3, &[], Time(t(14)));
    let compliant = s3.conditions.iter().find(|c| c.type_ == "Compliant").expect("Compliant");
    assert_eq!((compliant.status.as_str(), &compliant.last_transition_time), ("True", &Time(t(14))));
}
