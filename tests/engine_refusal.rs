//! A member's refusal is a fact the engine obeys: the refusing cluster is not eligible while the refusal stands,
//! a placement it refused moves away (even during a fleet freeze), and the cluster comes back once the member
//! accepts. Also the controller's pure side of it: which Assignments count as refusals, and the parked form.

mod common;

use std::collections::BTreeMap;

use common::*;
use marshal::api::{AssignmentPhase, AssignmentStatus, MissionWorkload, Phase};
use marshal::controller::build;
use marshal::placement::{ClusterFacts, History, Reason, WorkloadModel, decide};
use serde_json::json;

const SAID: &str = "ClassificationNotCleared: CONFIDENTIAL is not in the member's clearance [RESTRICTED]";

fn three() -> Vec<ClusterFacts> {
    vec![
        cluster("pol-1", "POL", &["core", "edge"]),
        cluster("deu-1", "DEU", &["core"]),
        cluster("ltu-1", "LTU", &["edge"]),
    ]
}

fn refused_by(cluster: &str) -> BTreeMap<String, String> {
    [(cluster.to_string(), SAID.to_string())].into()
}

fn ltu_first() -> WorkloadModel {
    workload(json!({"replicas": 2, "placement": {"preferredNations": ["LTU", "POL"]},
        "failover": {"tolerationSeconds": 30, "failbackAfterSeconds": 0}}))
}

#[test]
fn a_refusing_member_is_not_eligible_and_its_replicas_move() {
    let w = ltu_first();
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);

    let mut hist = history(&d0);
    hist.refused = refused_by("ltu-1");
    let d1 = decide(&w, &snapshot(three(), &[]), &hist, t(10));
    let v = verdict(&d1, "ltu-1", "edge");
    assert!(!v.eligible);
    assert_eq!(v.reason, Reason::RefusedByMember);
    assert!(v.message.contains("ltu-1 refused this workload") && v.message.contains(SAID), "{}", v.message);
    assert_eq!(placed(&d1), ["pol-1/core=2"], "the next preferred nation takes the replicas at once");
    assert_eq!(d1.moves.len(), 1);
    assert_eq!(d1.moves[0].reason, "RefusedByMember");
    assert_eq!(d1.phase, Phase::Placed);
    // The other clusters are judged as before.
    assert!(verdict(&d1, "pol-1", "core").eligible);
    assert_eq!(Reason::RefusedByMember.filter().map(|f| f.as_str()), Some("MemberRefusal"));
    assert_eq!("RefusedByMember".parse::<Reason>(), Ok(Reason::RefusedByMember));
}

#[test]
fn a_refusal_is_never_ridden_out_not_even_in_a_fleet_freeze() {
    let w = ltu_first();
    let mut cs = three();
    let d0 = decide(&w, &snapshot(cs.clone(), &[]), &History::default(), t(0));
    assert_eq!(placed(&d0), ["ltu-1/edge=2"]);
    // pol-1 and deu-1 go silent together: the fleet is frozen, yet ltu-1 refused, so nothing may stay there.
    cs[2].heartbeat = Some(t(100));
    let mut hist = history(&d0);
    hist.refused = refused_by("ltu-1");
    let d1 = decide(&w, &snapshot(cs, &[]), &hist, t(100));
    assert!(d1.frozen);
    assert!(placed(&d1).iter().all(|p| !p.starts_with("ltu-1")), "{:?}", placed(&d1));
    assert_eq!(d1.unplaced, 2);
}

#[test]
fn with_only_the_refusing_member_eligible_the_workload_is_unplaceable_not_forced() {
    let w = workload(json!({"replicas": 2, "residency": ["LTU"]}));
    let hist = History { refused: refused_by("ltu-1"), ..Default::default() };
    let d = decide(&w, &snapshot(three(), &[]), &hist, t(0));
    assert!(d.placements.is_empty());
    assert_eq!(d.phase, Phase::Unplaceable);
    assert!(d.message.contains("1 RefusedByMember"), "{}", d.message);
}

#[test]
fn the_cluster_returns_once_the_member_accepts() {
    let w = ltu_first();
    let d0 = decide(&w, &snapshot(three(), &[]), &History::default(), t(0));
    let mut hist = history(&d0);
    hist.refused = refused_by("ltu-1");
    let d1 = decide(&w, &snapshot(three(), &[]), &hist, t(5));
    assert_eq!(placed(&d1), ["pol-1/core=2"]);
    // (Every heartbeat is from t=0: decisions stay within the 15 s grace.) No refusal any more (the member accepted its parked Assignment): eligible again, and with
    // failbackAfterSeconds 0 the preferred nation takes the work back.
    let d2 = decide(&w, &snapshot(three(), &[]), &history(&d1), t(10));
    assert!(verdict(&d2, "ltu-1", "edge").eligible);
    let d3 = decide(&w, &snapshot(three(), &[]), &history(&d2), t(12));
    assert_eq!(placed(&d3), ["ltu-1/edge=2"]);
}

fn mw() -> MissionWorkload {
    let mut w = workload_crd("sigint-triage", json!({"replicas": 2}));
    w.metadata.namespace = Some("baltic-shield".into());
    w.metadata.uid = Some("uid-7".into());
    w
}

#[test]
fn refusals_come_from_refused_assignments_that_are_not_being_removed() {
    let w = mw();
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(three(), &[]), &History::default(), t(0));
    let mut asg = build::assignments(&w, &d, &[], &marshal::controller::build::Issuance::at(t(0)));
    assert!(!asg.is_empty());
    assert!(build::refusals(&asg).is_empty(), "no status yet: no refusal");
    asg[0].status =
        Some(AssignmentStatus { phase: AssignmentPhase::Refused, message: SAID.into(), ..Default::default() });
    let cluster = asg[0].spec.cluster.clone();
    assert_eq!(build::refusals(&asg), [(cluster, SAID.to_string())].into());
    // An integrity refusal is about the instruction (the controller writes its signed Assignment again), not a
    // host refusing the label.
    asg[0].status = Some(AssignmentStatus {
        phase: AssignmentPhase::Refused,
        message: "DigestMismatch: spec.digest does not match the spec".into(),
        ..Default::default()
    });
    assert!(build::refusals(&asg).is_empty());
    assert!(build::refused(&asg[0]) && !build::host_refused(&asg[0]), "refused, but the copy keeps running");
    asg[0].status =
        Some(AssignmentStatus { phase: AssignmentPhase::Refused, message: SAID.into(), ..Default::default() });
    assert!(build::host_refused(&asg[0]));
    // Being deleted: no longer an answer from the member.
    asg[0].metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(5)));
    assert!(build::refusals(&asg).is_empty());
    // Applied is acceptance.
    asg[0].metadata.deletion_timestamp = None;
    asg[0].status = Some(AssignmentStatus { phase: AssignmentPhase::Applied, ..Default::default() });
    assert!(build::refusals(&asg).is_empty());
}

#[test]
fn a_parked_assignment_asks_the_same_question_with_no_replicas() {
    let w = mw();
    let at = marshal::controller::build::Issuance::at(t(0));
    let d = decide(&WorkloadModel::from_crd(&w), &snapshot(three(), &[]), &History::default(), t(0));
    let placed = build::assignments(&w, &d, &[], &at);
    let mut refused = placed[0].clone();
    refused.metadata.namespace = Some("marshal-ltu-1".into());
    refused.spec.cluster = "ltu-1".into();
    refused.spec.tier = "edge".into();
    let parked = build::parked(&w, &refused, &at);
    assert_eq!(parked.metadata.name.as_deref(), Some("baltic-shield.sigint-triage"));
    assert_eq!(parked.metadata.namespace.as_deref(), Some("marshal-ltu-1"));
    assert_eq!(parked.spec.replicas, 0);
    assert_eq!(parked.spec.confidentiality, w.spec.confidentiality);
    assert_eq!(parked.spec.template, w.spec.template);
    assert_eq!(parked.spec.digest, parked.compute_digest());
    assert!(build::belongs_to(&parked, &w));
    assert!(build::up_to_date(&parked, &build::parked(&w, &parked, &at)), "parking twice writes nothing");
}
