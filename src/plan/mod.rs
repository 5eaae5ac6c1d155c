//! `marshal plan`: the what-if planner. It runs the placement engine over the same YAML a user applies,
//! then through a scenario of timed events, with no cluster and no wall clock.

pub mod input;
pub mod render;
pub mod scenario;
pub mod validate;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{ClusterTaint, LinkState, MemberCluster, MissionWorkload, conditions};
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

fn at(t0: Timestamp, s: u64) -> Timestamp {
    Timestamp::from_millisecond(t0.as_millisecond().saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 2000) * 1000))
        .unwrap_or(t0)
}

struct ClusterState {
    crd: MemberCluster,
    /// `None`: heartbeats flowing (fresh at every step); `Some(t)`: stopped, last at `t`.
    stopped_heartbeat: Option<Option<Timestamp>>,
    /// Base free capacity per tier (before the planned workloads).
    free: BTreeMap<String, Resources>,
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
                facts.free = c
                    .free
                    .iter()
                    .map(|(tier, f)| {
                        let (cpu, mem, pods) =
                            used.get(&(facts.name.clone(), tier.clone())).copied().unwrap_or_default();
                        let sub = |a: Option<i64>, b: i64| a.map(|a| a - b);
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
                self.clusters[i].stopped_heartbeat = if c.reachable {
                    None
                } else {
                    // The last heartbeat is one grace period (and a millisecond) ago: unreachable from now on.
                    Some(Timestamp::from_millisecond(now.as_millisecond() - grace_ms - 1).ok())
                };
            }
            EventKind::Capacity(c) => {
                let i = cluster(self, &c.cluster)?;
                self.clusters[i].free.insert(c.tier.clone(), Resources::from_amounts(&c.free));
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
    e.0 += r.cpu_milli * n;
    e.1 += r.memory_bytes * n;
    e.2 += n;
}

/// Runs a plan. `now` overrides time zero. Errors name the event that could not be applied.
pub fn run(inputs: &Inputs, events: &[Event], now: Option<Timestamp>, settings: Settings) -> Result<Plan, String> {
    let t0 = now.unwrap_or_else(|| time_zero(inputs));
    let grace_ms = i64::from(settings.cluster_grace_seconds) * 1000;
    let clusters = inputs
        .clusters
        .iter()
        .map(|c| {
            let status = c.status.clone().unwrap_or_default();
            let reachable = conditions::is_true(&status.conditions, "Reachable");
            let stopped_heartbeat = if reachable {
                None
            } else {
                let last = status.last_heartbeat_time.map(|t| t.0);
                let latest_unreachable = Timestamp::from_millisecond(t0.as_millisecond() - grace_ms - 1).ok();
                Some(match (last, latest_unreachable) {
                    (Some(l), Some(u)) => Some(l.min(u)),
                    (l, _) => l,
                })
            };
            let free = status.capacity.iter().map(|(t, cap)| (t.clone(), Resources::from_amounts(&cap.free))).collect();
            ClusterState { crd: c.clone(), stopped_heartbeat, free }
        })
        .collect();
    let live_links = inputs
        .links
        .iter()
        .map(|l| {
            let fresh = l.status.as_ref().and_then(|s| s.observed_at.as_ref()).is_some_and(|t| {
                t0.as_millisecond() - t.0.as_millisecond() <= i64::from(l.spec.stale_after_seconds) * 1000
                    && l.status.as_ref().is_some_and(|s| s.state != LinkState::Unknown)
            });
            (l.metadata.name.clone().unwrap_or_default(), fresh)
        })
        .collect();
    let mut sim = Sim {
        settings,
        policies: inputs.policies.clone(),
        clusters,
        links: inputs.links.clone(),
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
    let last_event = events.last().map_or(0, |e| e.at_seconds);
    let mut ev = events.iter().peekable();
    let mut t = 0u64;
    while steps.len() < MAX_STEPS {
        let review = steps
            .last()
            .into_iter()
            .flat_map(|s| s.decisions.values())
            .filter_map(|d| d.next_review)
            .map(|r| u64::try_from((r.as_millisecond() - t0.as_millisecond() + 999) / 1000).unwrap_or(0))
            .filter(|&r| r > t)
            .min();
        let next_event = ev.peek().map(|e| e.at_seconds);
        let (when, is_event) = match (next_event, review) {
            (Some(e), Some(r)) if r < e => (r, false),
            (Some(e), _) => (e, true),
            (None, Some(r)) if r <= last_event + HORIZON_AFTER_LAST_EVENT_S => (r, false),
            _ => break,
        };
        t = when;
        let now = at(t0, t);
        let mut described = Vec::new();
        if is_event {
            while let Some(e) = ev.next_if(|e| e.at_seconds == when) {
                sim.apply(&e.kind, now).map_err(|m| format!("event at {}s ({}): {m}", e.at_seconds, e.kind))?;
                described.push(e.kind.to_string());
            }
        } else {
            described.push("time passes (toleration or failback window)".to_string());
        }
        let decisions = sim.step(now);
        steps.push(Step { at_seconds: t, event: Some(described.join("; ")), decisions });
    }
    Ok(Plan { now: t0, steps })
}
