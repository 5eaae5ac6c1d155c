//! `marshal plan`: the what-if planner. It runs the placement engine over the same YAML a user applies,
//! then through a scenario of timed events, with no cluster and no wall clock.

pub mod input;
pub mod render;
pub mod scenario;
pub mod validate;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{ClusterTaint, LinkState, MemberCluster, MissionWorkload};
use crate::placement::{self, ClusterFacts, Decision, History, Request, Resources, Settings, Snapshot, WorkloadModel};
use input::Inputs;
use scenario::{Event, EventKind};

/// One step of the plan: the state after an event (or a time-driven review).
#[derive(Clone, Debug)]
pub struct Step {
    /// Seconds since time zero.
    pub at_seconds: u64,
    /// What happened (`None` at time zero).
    pub event: Option<String>,
    /// Decisions per workload key.
    pub decisions: BTreeMap<String, Decision>,
}

/// A whole plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Time zero.
    pub now: Timestamp,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Safety bounds on time-driven review steps.
const MAX_STEPS: usize = 2000;
const HORIZON_AFTER_LAST_EVENT_S: u64 = 7 * 86400;

/// Time zero: the newest observation in the inputs (heartbeats, capacity, link measurements, condition
/// transitions). `reviewBy` is a deadline, not an observation. Without any, the Unix epoch.
pub fn time_zero(inputs: &Inputs) -> Timestamp {
    let mut newest: Option<Timestamp> = None;
    let mut see = |t: Timestamp| {
        if newest.is_none_or(|n| t > n) {
            newest = Some(t);
        }
    };
    for c in &inputs.clusters {
        if let Some(s) = &c.status {
            s.last_heartbeat_time.iter().for_each(|t| see(t.0));
            s.observed_at.iter().for_each(|t| see(t.0));
            s.conditions.iter().for_each(|c| see(c.last_transition_time.0));
        }
    }
    for l in &inputs.links {
        if let Some(t) = l.status.as_ref().and_then(|s| s.observed_at.as_ref()) {
            see(t.0);
        }
    }
    newest.unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Time zero plus `s` seconds, if that is a time at all.
fn at(t0: Timestamp, s: u64) -> Result<Timestamp, String> {
    let ms = i64::try_from(s).ok().and_then(|s| s.checked_mul(1000)).and_then(|ms| t0.as_millisecond().checked_add(ms));
    ms.and_then(|ms| Timestamp::from_millisecond(ms).ok()).ok_or_else(|| {
        format!("time zero ({t0}) plus {s}s lies beyond the last time that can be computed ({})", Timestamp::MAX)
    })
}

/// Seconds from time zero to `t`, rounded up (0 for times before it).
fn offset_of(t0: Timestamp, t: Timestamp) -> u64 {
    let ms = t.as_millisecond().saturating_sub(t0.as_millisecond());
    u64::try_from(ms.saturating_add(999).div_euclid(1000)).unwrap_or(0)
}

struct ClusterState {
    crd: MemberCluster,
    /// `None`: heartbeats flowing (fresh at every step); `Some(t)`: stopped, last at `t` (`None`: never).
    stopped_heartbeat: Option<Option<Timestamp>>,
    /// Base free capacity per tier (before the planned workloads).
    free: BTreeMap<String, Resources>,
    /// Whether the syncer keeps reporting capacity while heartbeats flow (fresh at every step).
    capacity_live: bool,
    /// When capacity was last reported, for a report that is not live.
    capacity_at: Option<Timestamp>,
}

struct Sim {
    settings: Settings,
    policies: Vec<crate::api::SecurityPolicy>,
    clusters: Vec<ClusterState>,
    links: Vec<crate::api::ClusterLink>,
    /// Links whose monitor keeps reporting (fresh at every step).
    live_links: BTreeMap<String, bool>,
    workloads: BTreeMap<String, (MissionWorkload, WorkloadModel)>,
    history: BTreeMap<String, History>,
}

impl Sim {
    fn snapshot(&self, now: Timestamp, used: &BTreeMap<(String, String), (i64, i64, i64)>) -> Snapshot {
        let clusters = self
            .clusters
            .iter()
            .map(|c| {
                let heartbeat = match c.stopped_heartbeat {
                    None => Some(now),
                    Some(hb) => hb,
                };
                let mut facts = ClusterFacts::from_crd(&c.crd, heartbeat);
                facts.capacity_observed_at =
                    if c.capacity_live && c.stopped_heartbeat.is_none() { Some(now) } else { c.capacity_at };
                facts.free = c
                    .free
                    .iter()
                    .map(|(tier, f)| {
                        let (cpu, mem, pods) =
                            used.get(&(facts.name.clone(), tier.clone())).copied().unwrap_or_default();
                        let sub = |a: Option<i64>, b: i64| a.map(|a| a.saturating_sub(b));
                        (
                            tier.clone(),
                            Resources {
                                cpu_milli: sub(f.cpu_milli, cpu),
                                memory_bytes: sub(f.memory_bytes, mem),
                                pods: sub(f.pods, pods),
                            },
                        )
                    })
                    .collect();
                facts
            })
            .collect();
        let mut links = self.links.clone();
        for l in &mut links {
            let name = l.metadata.name.clone().unwrap_or_default();
            if self.live_links.get(&name).copied().unwrap_or(false)
                && let Some(s) = l.status.as_mut()
            {
                s.observed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
        }
        Snapshot::new(&self.policies, clusters, &links, self.settings)
    }

    /// Capacity used by every workload's current placements, per (cluster, tier).
    fn usage(&self) -> BTreeMap<(String, String), (i64, i64, i64)> {
        let mut used = BTreeMap::new();
        for (key, h) in &self.history {
            let Some((_, m)) = self.workloads.get(key) else { continue };
            for p in &h.placements {
                add_usage(&mut used, &p.cluster, &p.tier, m.request, i64::from(p.replicas));
            }
        }
        used
    }

    /// Decides every workload in key order; each decision sees the capacity the earlier ones took.
    fn step(&mut self, now: Timestamp) -> BTreeMap<String, Decision> {
        let mut used = self.usage();
        let mut out = BTreeMap::new();
        let keys: Vec<String> = self.workloads.keys().cloned().collect();
        for key in keys {
            let Some((_, model)) = self.workloads.get(&key) else { continue };
            let snap = self.snapshot(now, &used);
            let hist = self.history.get(&key).cloned().unwrap_or_default();
            let d = placement::decide(model, &snap, &hist, now);
            for p in &hist.placements {
                add_usage(&mut used, &p.cluster, &p.tier, model.request, -i64::from(p.replicas));
            }
            for p in &d.placements {
                add_usage(&mut used, &p.cluster, &p.tier, model.request, i64::from(p.replicas));
            }
            let next = d.history();
            self.history.insert(key.clone(), next);
            out.insert(key, d);
        }
        out
    }

    fn apply(&mut self, e: &EventKind, now: Timestamp) -> Result<(), String> {
        let grace_ms = i64::from(self.settings.cluster_grace_seconds) * 1000;
        let cluster = |sim: &mut Sim, name: &str| -> Result<usize, String> {
            sim.clusters
                .iter()
                .position(|c| c.crd.metadata.name.as_deref() == Some(name))
                .ok_or_else(|| format!("unknown cluster {name}"))
        };
        match e {
            EventKind::Link(l) => {
                let link = self
                    .links
                    .iter_mut()
                    .find(|x| x.metadata.name.as_deref() == Some(l.name.as_str()))
                    .ok_or_else(|| format!("unknown ClusterLink {}", l.name))?;
                let status = link.status.get_or_insert_with(Default::default);
                if let Some(s) = l.state {
                    status.state = s;
                }
                if l.rtt_ms.is_some() {
                    status.rtt_ms = l.rtt_ms;
                }
                if l.bandwidth_mbps.is_some() {
                    status.bandwidth_mbps = l.bandwidth_mbps;
                }
                status.observed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
                let reporting = l.reporting.unwrap_or(true);
                self.live_links.insert(l.name.clone(), reporting);
            }
            EventKind::Cluster(c) => {
                let i = cluster(self, &c.name)?;
                let state = &mut self.clusters[i];
                if c.reachable {
                    // The syncer is back: heartbeats and capacity reports flow again.
                    state.stopped_heartbeat = None;
                    state.capacity_live = true;
                } else if state.stopped_heartbeat.is_none() {
                    // The last heartbeat is one grace period (and a millisecond) ago: unreachable from now on. The
                    // syncer's capacity reports stop with it.
                    let last = Timestamp::from_millisecond(now.as_millisecond().saturating_sub(grace_ms + 1)).ok();
                    state.stopped_heartbeat = Some(last);
                    if state.capacity_live {
                        state.capacity_at = last;
                    }
                    state.capacity_live = false;
                }
            }
            EventKind::Capacity(c) => {
                let i = cluster(self, &c.cluster)?;
                let state = &mut self.clusters[i];
                state.free.insert(c.tier.clone(), Resources::from_amounts(&c.free));
                state.capacity_at = Some(now);
                state.capacity_live = state.stopped_heartbeat.is_none();
            }
            EventKind::Taint(t) => {
                let i = cluster(self, &t.cluster)?;
                let effect = t.effect.ok_or("taint needs an effect")?;
                let taints = &mut self.clusters[i].crd.spec.taints;
                taints.retain(|x| x.key != t.key);
                taints.push(ClusterTaint { key: t.key.clone(), value: t.value.clone(), effect });
            }
            EventKind::Untaint(t) => {
                let i = cluster(self, &t.cluster)?;
                self.clusters[i].crd.spec.taints.retain(|x| x.key != t.key);
            }
            EventKind::AddWorkload(w) => {
                // As the hub's admission policy would: the label is valid under each SecurityPolicy of its policy.
                let label = &w.spec.confidentiality;
                for p in self.policies.iter().filter(|p| p.spec.policy_identifier == label.policy) {
                    placement::validity::check(&label.policy, &p.spec, &label.classification, &label.categories)
                        .map_err(|why| format!("addWorkload: field spec.confidentiality: {why}"))?;
                }
                let model = WorkloadModel::from_crd(w);
                self.workloads.insert(model.key.clone(), ((**w).clone(), model));
            }
            EventKind::DeleteWorkload(w) => {
                let key = format!("{}/{}", w.namespace, w.name);
                self.workloads.remove(&key).ok_or_else(|| format!("unknown workload {key}"))?;
                self.history.remove(&key);
            }
            EventKind::ScaleWorkload(w) => {
                let key = format!("{}/{}", w.namespace, w.name);
                let (crd, model) = self.workloads.get_mut(&key).ok_or_else(|| format!("unknown workload {key}"))?;
                crd.spec.replicas = w.replicas.unwrap_or(crd.spec.replicas);
                *model = WorkloadModel::from_crd(crd);
            }
        }
        Ok(())
    }
}

fn add_usage(used: &mut BTreeMap<(String, String), (i64, i64, i64)>, cluster: &str, tier: &str, r: Request, n: i64) {
    let e = used.entry((cluster.to_string(), tier.to_string())).or_default();
    e.0 = e.0.saturating_add(r.cpu_milli.saturating_mul(n));
    e.1 = e.1.saturating_add(r.memory_bytes.saturating_mul(n));
    e.2 = e.2.saturating_add(n);
}

impl Sim {
    /// Facts that stop updating go stale at a known moment: links whose monitor stopped reporting and capacity
    /// reports of clusters whose syncer stopped. The earliest such moment after `after` seconds, with the facts
    /// that go stale then.
    fn next_stale(&self, t0: Timestamp, after: u64) -> Option<(u64, Vec<String>)> {
        let mut moments: Vec<(u64, String)> = Vec::new();
        for l in &self.links {
            let name = l.metadata.name.clone().unwrap_or_default();
            if self.live_links.get(&name).copied().unwrap_or(false) {
                continue;
            }
            let facts = crate::placement::LinkFacts::from_crd(l);
            if let Some(at) = facts.observed_at {
                let t = crate::placement::filters::plus_s(at, i64::from(facts.stale_after_seconds) + 1);
                moments.push((offset_of(t0, t), format!("link {name}")));
            }
        }
        let bound = i64::from(self.settings.capacity_stale_seconds) + 1;
        for c in &self.clusters {
            if c.capacity_live && c.stopped_heartbeat.is_none() {
                continue;
            }
            if let Some(at) = c.capacity_at {
                let t = crate::placement::filters::plus_s(at, bound);
                moments.push((
                    offset_of(t0, t),
                    format!("capacity of {}", c.crd.metadata.name.as_deref().unwrap_or_default()),
                ));
            }
        }
        let first = moments.iter().map(|(s, _)| *s).filter(|s| *s > after).min()?;
        let mut names: Vec<String> = moments.into_iter().filter(|(s, _)| *s == first).map(|(_, n)| n).collect();
        names.sort();
        Some((first, names))
    }
}

/// Runs a plan. `now` overrides time zero. Errors name the event that could not be applied.
pub fn run(inputs: &Inputs, events: &[Event], now: Option<Timestamp>, settings: Settings) -> Result<Plan, String> {
    let t0 = now.unwrap_or_else(|| time_zero(inputs));
    for e in events {
        at(t0, e.at_seconds).map_err(|m| format!("event at {}s ({}): {m}", e.at_seconds, e.kind))?;
    }
    let grace_ms = i64::from(settings.cluster_grace_seconds) * 1000;
    let capacity_bound_ms = i64::from(settings.capacity_stale_seconds) * 1000;
    // No fact is younger than time zero: one dated later counts as observed at time zero.
    let clamp = |t: Timestamp| t.min(t0);
    let clusters = inputs
        .clusters
        .iter()
        .map(|c| {
            let status = c.status.clone().unwrap_or_default();
            // Reachability is judged from the heartbeat's time, as the controller does: a `Reachable` condition that
            // says True over a heartbeat older than the grace is contradicted by it. A condition that says the
            // cluster is not reachable is believed (fail closed).
            let hb = status.last_heartbeat_time.map(|t| clamp(t.0));
            let fresh = hb.is_some_and(|h| t0.as_millisecond().saturating_sub(h.as_millisecond()) <= grace_ms);
            let says_not = status.conditions.iter().any(|c| c.type_ == "Reachable" && c.status != "True");
            let stopped_heartbeat = if fresh && !says_not {
                None
            } else {
                let latest_unreachable =
                    Timestamp::from_millisecond(t0.as_millisecond().saturating_sub(grace_ms + 1)).ok();
                Some(match (hb, latest_unreachable) {
                    (Some(l), Some(u)) => Some(l.min(u)),
                    (l, _) => l,
                })
            };
            let capacity_at = status.observed_at.map(|t| clamp(t.0));
            let capacity_fresh = !status.capacity.is_empty()
                && capacity_at
                    .is_some_and(|a| t0.as_millisecond().saturating_sub(a.as_millisecond()) <= capacity_bound_ms);
            let free = status.capacity.iter().map(|(t, cap)| (t.clone(), Resources::from_amounts(&cap.free))).collect();
            ClusterState {
                crd: c.clone(),
                capacity_live: capacity_fresh && stopped_heartbeat.is_none(),
                stopped_heartbeat,
                free,
                capacity_at,
            }
        })
        .collect();
    let mut links = inputs.links.clone();
    for l in &mut links {
        if let Some(t) = l.status.as_mut().and_then(|s| s.observed_at.as_mut()) {
            t.0 = clamp(t.0);
        }
    }
    let live_links = links
        .iter()
        .map(|l| {
            let fresh = l.status.as_ref().and_then(|s| s.observed_at.as_ref()).is_some_and(|t| {
                t0.as_millisecond().saturating_sub(t.0.as_millisecond()) <= i64::from(l.spec.stale_after_seconds) * 1000
                    && l.status.as_ref().is_some_and(|s| s.state != LinkState::Unknown)
            });
            (l.metadata.name.clone().unwrap_or_default(), fresh)
        })
        .collect();
    let mut sim = Sim {
        settings,
        policies: inputs.policies.clone(),
        clusters,
        links,
        live_links,
        workloads: BTreeMap::new(),
        history: BTreeMap::new(),
    };
    for w in &inputs.workloads {
        let model = WorkloadModel::from_crd(w);
        let hist = History::from_status(w.status.as_ref());
        sim.history.insert(model.key.clone(), hist);
        sim.workloads.insert(model.key.clone(), (w.clone(), model));
    }

    let mut steps = vec![Step { at_seconds: 0, event: None, decisions: sim.step(t0) }];
    let horizon = events.last().map_or(0, |e| e.at_seconds).saturating_add(HORIZON_AFTER_LAST_EVENT_S);
    let mut ev = events.iter().peekable();
    let mut t = 0u64;
    while steps.len() < MAX_STEPS {
        let review = steps
            .last()
            .into_iter()
            .flat_map(|s| s.decisions.values())
            .filter_map(|d| d.next_review)
            .map(|r| offset_of(t0, r))
            .filter(|&r| r > t && r <= horizon)
            .min();
        let stale = sim.next_stale(t0, t).filter(|(s, _)| *s <= horizon);
        let next_event = ev.peek().map(|e| e.at_seconds);
        let timed = match (review, stale.as_ref().map(|(s, _)| *s)) {
            (Some(r), Some(s)) => Some(r.min(s)),
            (r, s) => r.or(s),
        };
        let (when, is_event) = match (next_event, timed) {
            (Some(e), Some(r)) if r < e => (r, false),
            (Some(e), _) => (e, true),
            (None, Some(r)) => (r, false),
            (None, None) => break,
        };
        t = when;
        let now = at(t0, t)?;
        let mut described = Vec::new();
        if is_event {
            while let Some(e) = ev.next_if(|e| e.at_seconds == when) {
                sim.apply(&e.kind, now).map_err(|m| format!("event at {}s ({}): {m}", e.at_seconds, e.kind))?;
                described.push(e.kind.to_string());
            }
        } else {
            if let Some((s, names)) = stale.as_ref().filter(|(s, _)| *s == when) {
                let _ = s;
                described.push(format!("facts go stale: {}", names.join(", ")));
            }
            if review == Some(when) {
                described.push("time passes (toleration or failback window)".to_string());
            }
        }
        let decisions = sim.step(now);
        steps.push(Step { at_seconds: t, event: Some(described.join("; ")), decisions });
    }
    Ok(Plan { now: t0, steps })
}
