//! The move protocol, step by step (issue 14 §0–§1): the controller's pure steps (engine, build, moves::plan,
//! status) run against simulated members, and after every step the invariants are checked in the members
//! themselves: a workload that ran somewhere still runs somewhere, and a `BreakBeforeMake` workload never runs on
//! two members. One test per sequence; each names the rule it holds.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use marshal::api::{Assignment, AssignmentPhase, AssignmentStatus, MissionWorkload};
use marshal::controller::build::{self, Issuance};
use marshal::controller::moves::{self, Step, Why};
use marshal::controller::status;
use marshal::placement::{ClusterFacts, Reason, WorkloadModel, decide};
use serde_json::{Value, json};

/// How a simulated member answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    /// Applies, and its pods become Ready.
    Ready,
    /// Applies, and its pods never become Ready (ImagePullBackOff).
    Stuck,
    /// Cannot apply (a same-named Deployment it does not manage): `Failed`.
    Fails,
    /// Its clearance ConfigMap is unreadable: refuses as unverifiable and keeps what it runs.
    Unverifiable,
}

/// The fleet: the hub's Assignments and workload status, and what each member runs.
struct Fleet {
    mw: MissionWorkload,
    clusters: Vec<ClusterFacts>,
    members: BTreeMap<String, Member>,
    /// Clusters cut off from the hub: their syncer does nothing, what they run keeps running.
    dark: BTreeSet<String>,
    /// Replicas each member runs (its own Deployment), whether or not the hub still asks for them.
    running: BTreeMap<String, i32>,
    assignments: BTreeMap<String, Assignment>,
    now: Timestamp,
    /// Every plan reason seen, per cluster.
    whys: Vec<(String, Why)>,
    ran: bool,
    /// The scenario accepts running nowhere (the envelope outranks it): only the other invariants are checked.
    lossy: bool,
}

impl Fleet {
    fn new(overrides: Value, clusters: Vec<ClusterFacts>, members: &[(&str, Member)]) -> Fleet {
        let mut mw = workload_crd("w", overrides);
        mw.metadata.uid = Some("uid-w".into());
        mw.metadata.generation = Some(1);
        Fleet {
            mw,
            clusters,
            members: members.iter().map(|(c, m)| (c.to_string(), *m)).collect(),
            dark: BTreeSet::new(),
            running: BTreeMap::new(),
            assignments: BTreeMap::new(),
            now: t(0),
            whys: Vec::new(),
            ran: false,
            lossy: false,
        }
    }

    /// One reconcile of the controller, executed as the reconcile executes its plan.
    fn reconcile(&mut self) {
        let now = self.now;
        for c in &mut self.clusters {
            if !self.dark.contains(&c.name) {
                c.heartbeat = Some(now);
            }
        }
        let snap = snapshot(self.clusters.clone(), &[]);
        let grace = i64::from(snap.settings.cluster_grace_seconds) * 1000;
        let existing: Vec<&Assignment> = self.assignments.values().collect();
        let backoff = moves::backoffs(&self.mw, &existing, now);
        let hist = moves::history(&self.mw, &existing, &backoff, now);
        let d = decide(&WorkloadModel::from_crd(&self.mw), &snap, &hist, now);
        let desired = build::assignments(&self.mw, &d, &existing, &Issuance::at(now));
        let reachable: BTreeSet<String> = self
            .clusters
            .iter()
            .filter(|c| c.heartbeat.is_some_and(|h| now.as_millisecond() - h.as_millisecond() <= grace))
            .map(|c| c.name.clone())
            .collect();
        let mw = self.mw.clone();
        let park = |a: &Assignment| build::parked(&mw, a, &Issuance::at(now));
        let reissue = |a: &Assignment| build::reissued(a, &Issuance::at(now));
        let plan = moves::plan(&moves::Input {
            exclusive: self.mw.spec.failover.mode == marshal::api::FailoverMode::BreakBeforeMake,
            decision: &d,
            desired: &desired,
            existing: &existing,
            reachable: &reachable,
            park: &park,
            reissue: &reissue,
        });
        drop(existing);
        for c in plan.changes {
            self.whys.push((c.cluster.clone(), c.why));
            match c.step {
                Some(Step::Apply(a)) => {
                    let status = self.assignments.get(&c.cluster).and_then(|old| old.status.clone());
                    let mut a = *a;
                    a.status = status;
                    self.assignments.insert(c.cluster, a);
                }
                Some(Step::Delete) => {
                    if let Some(a) = self.assignments.get_mut(&c.cluster) {
                        a.metadata.deletion_timestamp = Some(Time(now));
                    }
                }
                None => {}
            }
        }
        let all: Vec<Assignment> = self.assignments.values().cloned().collect();
        let mut s = status::build(&self.mw, &d, &all, Time(now));
        s.backoff = backoff;
        self.mw.status = Some(s);
    }

    /// Every member that is not cut off syncs its Assignment.
    fn sync_members(&mut self) {
        let names: Vec<String> = self.assignments.keys().cloned().collect();
        for cluster in names {
            if self.dark.contains(&cluster) {
                continue;
            }
            let behaviour = self.members.get(&cluster).copied().unwrap_or(Member::Ready);
            let Some(a) = self.assignments.get_mut(&cluster) else { continue };
            if a.metadata.deletion_timestamp.is_some() {
                self.running.remove(&cluster);
                self.assignments.remove(&cluster);
                continue;
            }
            let digest = a.spec.content_digest();
            let replicas = a.spec.replicas;
            let status = |phase, ready: i32, applied: &str, message: &str| AssignmentStatus {
                phase,
                ready_replicas: u32::try_from(ready).unwrap_or(0),
                message: message.into(),
                applied_digest: applied.into(),
                ..Default::default()
            };
            a.status = Some(match behaviour {
                Member::Ready | Member::Stuck => {
                    if replicas > 0 {
                        self.running.insert(cluster.clone(), replicas);
                    } else {
                        self.running.remove(&cluster);
                    }
                    let ready = if behaviour == Member::Ready { replicas } else { 0 };
                    status(AssignmentPhase::Applied, ready, &digest, "")
                }
                Member::Fails => status(
                    AssignmentPhase::Failed,
                    0,
                    "",
                    "Deployment test/w in the member belongs to another Assignment",
                ),
                Member::Unverifiable => {
                    let ready = self.running.get(&cluster).copied().unwrap_or(0);
                    status(AssignmentPhase::Refused, ready, "", "MemberClearanceInvalid: clearance: not a map")
                }
            });
        }
    }

    /// Members that run the workload (cut-off ones included: nothing stops their pods).
    fn runs_on(&self) -> Vec<String> {
        self.running.iter().filter(|(_, r)| **r > 0).map(|(c, _)| c.clone()).collect()
    }

    /// Members where it runs Ready.
    fn ready_on(&self) -> Vec<String> {
        self.runs_on()
            .into_iter()
            .filter(|c| matches!(self.members.get(c), Some(Member::Ready | Member::Unverifiable) | None))
            .collect()
    }

    /// One step: reconcile, members sync, the invariants hold; then `dt` seconds pass.
    fn step(&mut self, dt: i64) {
        let before = self.ready_on();
        self.reconcile();
        self.sync_members();
        self.check(&before);
        self.now = Timestamp::from_second(self.now.as_second() + dt).expect("time");
    }

    fn check(&mut self, before: &[String]) {
        let runs = self.runs_on();
        let ready = self.ready_on();
        if !before.is_empty() {
            self.ran = true;
        }
        if self.ran && !self.lossy {
            assert!(!ready.is_empty(), "at {}: the workload ran on {before:?} and runs nowhere now", self.now);
        }
        if self.mw.spec.failover.mode == marshal::api::FailoverMode::BreakBeforeMake {
            assert!(runs.len() <= 1, "at {}: a BreakBeforeMake workload runs on {runs:?}", self.now);
        }
    }

    fn steps(&mut self, n: usize, dt: i64) {
        for _ in 0..n {
            self.step(dt);
        }
    }

    fn placed(&self) -> Vec<String> {
        self.mw.status.iter().flat_map(|s| s.placements.iter()).map(|p| p.cluster.clone()).collect()
    }

    fn saw(&self, cluster: &str, why: Why) -> bool {
        self.whys.iter().any(|(c, w)| c == cluster && *w == why)
    }

    fn condition(&self, type_: &str) -> String {
        let s = self.mw.status.as_ref().expect("status");
        let c = s.conditions.iter().find(|c| c.type_ == type_).expect("condition");
        format!("{}: {}", c.status, c.message)
    }
}

/// One replica preferring POL, so that pol-1 is the better cluster and deu-1 the fallback.
fn one_replica(mode: &str) -> Value {
    json!({"replicas": 1, "placement": {"tiers": ["core"], "preferredNations": ["POL", "DEU"]},
           "failover": {"tolerationSeconds": 30, "failbackAfterSeconds": 60, "mode": mode}})
}

fn fleet() -> Vec<ClusterFacts> {
    vec![cluster("pol-1", "POL", &["core"]), cluster("deu-1", "DEU", &["core"]), cluster("ltu-1", "LTU", &["core"])]
}

/// Runs on deu-1 while pol-1 is cut off, then pol-1 returns with `pol`: the failback moves the workload there.
fn failback_to(pol: Member, mode: &str) -> Fleet {
    let mut f = Fleet::new(one_replica(mode), fleet(), &[("pol-1", pol)]);
    f.dark.insert("pol-1".into());
    f.clusters[0].heartbeat = None;
    f.steps(3, 10);
    assert_eq!(f.placed(), ["deu-1"], "pol-1 was never heard from");
    assert_eq!(f.ready_on(), ["deu-1"]);
    f.dark.clear();
    f
}

#[test]
fn make_before_break_never_deletes_the_last_healthy_copy() {
    // §1.1: pol-1's pods never become Ready. The old rule deleted deu-1 after 120 s and the workload ran nowhere.
    let mut f = failback_to(Member::Stuck, "MakeBeforeBreak");
    let backoff =
        |f: &Fleet| f.mw.status.as_ref().and_then(|s| s.backoff.iter().find(|b| b.cluster == "pol-1")).cloned();
    while backoff(&f).is_none() {
        assert!(f.now < t(900), "no backoff for the stuck replacement");
        f.step(10);
    }
    assert!(f.saw("pol-1", Why::Place), "the failback was tried");
    assert!(f.saw("deu-1", Why::KeptUntilReady), "deu-1 stayed while pol-1 was not Ready");
    assert_eq!(f.ready_on(), ["deu-1"]);
    let b = backoff(&f).expect("backoff");
    assert_eq!((b.reason.as_str(), b.count), ("NotReadyOnMember", 1), "{b:?}");
    assert!(b.message.contains("not Ready"), "{}", b.message);
    f.steps(3, 10);
    let s = f.mw.status.clone().expect("status");
    let v = s.verdicts.iter().find(|v| v.cluster == "pol-1").expect("verdict");
    assert_eq!(v.reason, Reason::NotReadyOnMember.as_str(), "{v:?}");
    assert_eq!(f.placed(), ["deu-1"], "the work stays where it runs");
    assert!(!f.assignments.contains_key("pol-1"), "the stuck replacement is removed once deu-1 is the placement");

    // After the backoff (5 min) the failback is tried again, fails again, and the next backoff doubles.
    while backoff(&f).is_none_or(|b| b.count < 2) {
        assert!(f.now < t(3000), "no second backoff: {:?}", backoff(&f));
        f.step(10);
    }
    let b = backoff(&f).expect("backoff");
    assert!(b.until.0.as_second() - f.now.as_second() > 500, "the second backoff doubles: {b:?} at {}", f.now);
    assert_eq!(f.ready_on(), ["deu-1"]);
}

#[test]
fn a_failed_replacement_is_a_fact_at_once() {
    // §1.1: the member says Failed (a same-named Deployment exists there): no wait for a timeout.
    let mut f = failback_to(Member::Fails, "MakeBeforeBreak");
    let start = f.now;
    while !f.mw.status.as_ref().is_some_and(|s| s.backoff.iter().any(|b| b.cluster == "pol-1")) {
        assert!(f.now.as_second() - start.as_second() < 600, "no backoff for the failed replacement");
        f.step(10);
    }
    let b = f.mw.status.as_ref().and_then(|s| s.backoff.iter().find(|b| b.cluster == "pol-1")).cloned();
    let b = b.expect("backoff");
    assert!(b.message.contains("belongs to another Assignment"), "the member's message: {}", b.message);
    f.steps(10, 10);
    assert_eq!(f.placed(), ["deu-1"]);
    assert_eq!(f.ready_on(), ["deu-1"]);
}

#[test]
fn moving_off_an_unreachable_cluster_keeps_the_old_copy_until_the_replacement_is_ready() {
    // §1.2: pol-1 runs it and is cut off; the move goes to deu-1, whose pods are slow. pol-1 returns before they
    // are Ready: its copy must still be there (the old rule deleted the Assignment at once).
    let mut f =
        Fleet::new(one_replica("MakeBeforeBreak"), fleet(), &[("deu-1", Member::Stuck), ("ltu-1", Member::Stuck)]);
    f.steps(3, 10);
    assert_eq!(f.ready_on(), ["pol-1"]);
    f.dark.insert("pol-1".into());
    f.steps(8, 10); // grace 15 s + toleration 30 s, and then some
    assert_eq!(f.placed(), ["deu-1"], "moved off the unreachable cluster");
    assert!(f.saw("pol-1", Why::KeptUnreachable), "the unreachable copy is kept");
    assert!(f.assignments.get("pol-1").is_some_and(|a| a.metadata.deletion_timestamp.is_none()));
    f.dark.clear();
    f.steps(3, 10);
    assert_eq!(f.ready_on(), ["pol-1"], "the returning member kept the only copy that could run");
    // deu-1 becomes Ready: now the old copy may go, and the failback brings it back to pol-1 later.
    f.members.insert("deu-1".into(), Member::Ready);
    f.steps(30, 10);
    assert!(!f.ready_on().is_empty());
}

#[test]
fn with_nothing_to_move_to_the_unreachable_copy_stays() {
    // deu-1 and ltu-1 are reachable (no fleet freeze) but not cleared for the label.
    let mut clusters = fleet();
    clusters[1].clearance.classifications.clear();
    clusters[2].clearance.classifications.clear();
    let mut f = Fleet::new(one_replica("MakeBeforeBreak"), clusters, &[]);
    f.steps(3, 10);
    f.dark.insert("pol-1".into());
    f.steps(10, 10);
    assert!(f.saw("pol-1", Why::KeptNoReplacement), "{:?}", f.whys);
    assert!(f.assignments.get("pol-1").is_some_and(|a| a.metadata.deletion_timestamp.is_none()));
    f.dark.clear();
    f.steps(3, 10);
    assert_eq!(f.ready_on(), ["pol-1"]);
}

#[test]
fn break_before_make_never_runs_two_copies() {
    // §1.6: the failback of an exclusive workload removes the old copy before the new one starts.
    let mut f = failback_to(Member::Ready, "BreakBeforeMake");
    f.lossy = true; // a BreakBeforeMake move has a gap by design: only "never twice" is asserted here
    for _ in 0..30 {
        let before = f.runs_on();
        f.reconcile();
        f.sync_members();
        assert!(f.runs_on().len() <= 1, "two copies: {:?} (before {before:?})", f.runs_on());
        f.now = Timestamp::from_second(f.now.as_second() + 10).expect("time");
    }
    assert!(f.saw("deu-1", Why::BreakFirst), "{:?}", f.whys);
    assert!(f.saw("pol-1", Why::WaitForOldGone), "{:?}", f.whys);
    assert_eq!(f.runs_on(), ["pol-1"]);
    let a = f.assignments.get("pol-1").expect("pol-1");
    assert!(a.spec.exclusive, "the signed Assignment says the workload is exclusive");
}

#[test]
fn a_member_that_cannot_verify_keeps_what_runs() {
    // §1.3: a typo in pol-1's clearance ConfigMap. The old rule removed everything on it before any replacement.
    let mut f = Fleet::new(one_replica("MakeBeforeBreak"), fleet(), &[]);
    f.steps(3, 10);
    assert_eq!(f.ready_on(), ["pol-1"]);
    f.members.insert("pol-1".into(), Member::Unverifiable);
    f.steps(30, 10);
    assert_eq!(f.ready_on(), ["pol-1"], "the copy keeps running");
    assert_eq!(f.placed(), ["pol-1"], "the placement is held");
    let compliant = f.condition("Compliant");
    assert!(compliant.starts_with("Unknown"), "{compliant}");
    assert!(f.assignments.get("pol-1").is_some_and(|a| a.spec.replicas == 1), "not parked");
    // The host fixes its ConfigMap: nothing moved meanwhile.
    f.members.insert("pol-1".into(), Member::Ready);
    f.steps(3, 10);
    assert!(f.condition("Compliant").starts_with("True"));
}

#[test]
fn a_member_that_cannot_verify_and_runs_nothing_does_not_strand_new_work() {
    // Never running nowhere: a new workload whose best member cannot verify goes to the next eligible one.
    let mut f = Fleet::new(one_replica("MakeBeforeBreak"), fleet(), &[("pol-1", Member::Unverifiable)]);
    f.steps(10, 10);
    assert_eq!(f.ready_on(), ["deu-1"], "placed where it can run");
    assert!(f.assignments.get("pol-1").is_some_and(|a| a.spec.replicas == 0), "pol-1's question is parked");
}

#[test]
fn a_fact_that_says_no_still_revokes_at_once() {
    // Invariant 1 outranks make-before-break: pol-1's clearance no longer covers RESTRICTED. Its copy goes at
    // once, although the replacement on deu-1 is not Ready.
    let mut f =
        Fleet::new(one_replica("MakeBeforeBreak"), fleet(), &[("deu-1", Member::Stuck), ("ltu-1", Member::Stuck)]);
    f.steps(3, 10);
    f.clusters[0].clearance.classifications.remove("RESTRICTED");
    f.lossy = true; // nothing else is cleared and Ready: running nowhere is the price of the envelope here
    f.step(10);
    assert!(f.saw("pol-1", Why::Revoked), "{:?}", f.whys);
    f.step(10);
    assert!(!f.runs_on().contains(&"pol-1".to_string()), "pol-1 runs it no more: {:?}", f.runs_on());
}

#[test]
fn an_unchanged_fleet_writes_nothing() {
    // Invariant 4: once settled, a reconcile plans no write.
    let mut f = Fleet::new(one_replica("MakeBeforeBreak"), fleet(), &[]);
    f.steps(3, 10);
    let n = f.whys.len();
    f.steps(5, 10);
    assert_eq!(f.whys.len(), n, "writes planned on an unchanged fleet: {:?}", &f.whys[n..]);
}
