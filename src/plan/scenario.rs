//! Scenario files: timed events for the what-if planner.
//!
//! ```yaml
//! events:
//!   - at: 30s
//!     link: {name: ltu-1.pol-1, state: Degraded, rttMs: 140}
//!   - at: 2m
//!     cluster: {name: deu-1, reachable: false}
//!   - at: 3m
//!     capacity: {cluster: pol-1, tier: core, free: {cpu: "2", memory: 8Gi, pods: "20"}}
//!   - at: 4m
//!     taint: {cluster: pol-1, key: marshal.dev/maintenance, effect: NoExecute}
//!   - at: 5m
//!     untaint: {cluster: pol-1, key: marshal.dev/maintenance}
//!   - at: 6m
//!     scaleWorkload: {namespace: baltic-shield, name: isr-fusion, replicas: 6}
//!   - at: 7m
//!     deleteWorkload: {namespace: baltic-shield, name: isr-fusion}
//!   - at: 8m
//!     addWorkload: {apiVersion: marshal.dev/v1alpha1, kind: MissionWorkload, ...}
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::api::{LinkState, MissionWorkload, ResourceAmounts, TaintEffect};
use crate::error::Error;

/// A link's new measured state. Fields left out keep their value.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkChange {
    /// ClusterLink name (`<from>.<to>`).
    pub name: String,
    /// New state.
    #[serde(default)]
    pub state: Option<LinkState>,
    /// New RTT.
    #[serde(default)]
    pub rtt_ms: Option<u32>,
    /// New bandwidth.
    #[serde(default)]
    pub bandwidth_mbps: Option<u32>,
    /// `false`: the monitor stops reporting, so the facts go stale; `true`: reporting resumes.
    #[serde(default)]
    pub reporting: Option<bool>,
}

/// A cluster becomes unreachable or reachable again.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterChange {
    /// MemberCluster name.
    pub name: String,
    /// Heartbeats flowing or not.
    pub reachable: bool,
}

/// A tier's free capacity changes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityChange {
    /// MemberCluster name.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// New free amounts (before the planned workloads).
    pub free: ResourceAmounts,
}

/// A taint added to (or removed from) a cluster.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintChange {
    /// MemberCluster name.
    pub cluster: String,
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default)]
    pub value: Option<String>,
    /// Effect (required to add).
    #[serde(default)]
    pub effect: Option<TaintEffect>,
}

/// Names a workload.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadName {
    /// Namespace (default `default`).
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// New replicas (for `scaleWorkload`).
    #[serde(default)]
    pub replicas: Option<i32>,
}

fn default_ns() -> String {
    "default".into()
}

/// What happens.
#[derive(Clone, Debug)]
pub enum EventKind {
    /// Link facts change.
    Link(LinkChange),
    /// Reachability changes.
    Cluster(ClusterChange),
    /// Capacity changes.
    Capacity(CapacityChange),
    /// A taint is added.
    Taint(TaintChange),
    /// A taint is removed.
    Untaint(TaintChange),
    /// A workload is added.
    AddWorkload(Box<MissionWorkload>),
    /// A workload is deleted.
    DeleteWorkload(WorkloadName),
    /// A workload's replicas change.
    ScaleWorkload(WorkloadName),
}

/// One timed event.
#[derive(Clone, Debug)]
pub struct Event {
    /// Offset from time zero, in seconds.
    pub at_seconds: u64,
    /// What happens.
    pub kind: EventKind,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEvent {
    at: String,
    #[serde(default)]
    link: Option<LinkChange>,
    #[serde(default)]
    cluster: Option<ClusterChange>,
    #[serde(default)]
    capacity: Option<CapacityChange>,
    #[serde(default)]
    taint: Option<TaintChange>,
    #[serde(default)]
    untaint: Option<TaintChange>,
    #[serde(default)]
    add_workload: Option<serde_json::Value>,
    #[serde(default)]
    delete_workload: Option<WorkloadName>,
    #[serde(default)]
    scale_workload: Option<WorkloadName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    events: Vec<RawEvent>,
}

/// Parses `30s`, `2m`, `1h30m`, `90` (seconds) into seconds.
pub fn parse_offset(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            'd' => 86400,
            _ => return None,
        };
        let n: u64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// Reads a scenario file. Events are sorted by time (stable for equal times).
pub fn read(path: &Path) -> Result<Vec<Event>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let doc = super::input::documents(&text, path)?.into_iter().next().unwrap_or(serde_json::Value::Null);
    let raw: RawScenario = super::input::typed(doc, path, "scenario")?;
    let mut out = Vec::new();
    for (i, e) in raw.events.into_iter().enumerate() {
        let object = format!("events[{i}]");
        let bad = |message: String| Error::Input { path: path.to_path_buf(), object: object.clone(), message };
        let at_seconds = parse_offset(&e.at)
            .ok_or_else(|| bad(format!("field at: {:?} is not a duration like 30s, 2m or 1h30m", e.at)))?;
        let mut kinds = Vec::new();
        if let Some(x) = e.link {
            kinds.push(EventKind::Link(x));
        }
        if let Some(x) = e.cluster {
            kinds.push(EventKind::Cluster(x));
        }
        if let Some(x) = e.capacity {
            kinds.push(EventKind::Capacity(x));
        }
        if let Some(x) = e.taint {
            if x.effect.is_none() {
                return Err(bad("field taint.effect: required (NoSchedule or NoExecute)".into()));
            }
            kinds.push(EventKind::Taint(x));
        }
        if let Some(x) = e.untaint {
            kinds.push(EventKind::Untaint(x));
        }
        if let Some(x) = e.add_workload {
            let problems = super::validate::Schemas::new().check("MissionWorkload", &x);
            if let Some(first) = problems.into_iter().next() {
                return Err(bad(format!("addWorkload: {first}")));
            }
            let mut w: MissionWorkload = super::input::typed(x, path, &format!("{object}.addWorkload"))?;
            if w.metadata.namespace.is_none() {
                w.metadata.namespace = Some("default".into());
            }
            kinds.push(EventKind::AddWorkload(Box::new(w)));
        }
        if let Some(x) = e.delete_workload {
            kinds.push(EventKind::DeleteWorkload(x));
        }
        if let Some(x) = e.scale_workload {
            if x.replicas.is_none_or(|r| r < 0) {
                return Err(bad("field scaleWorkload.replicas: required, at least 0".into()));
            }
            kinds.push(EventKind::ScaleWorkload(x));
        }
        let kind = match kinds.len() {
            1 => kinds.remove(0),
            0 => return Err(bad("one of link, cluster, capacity, taint, untaint, addWorkload, deleteWorkload, scaleWorkload is required".into())),
            _ => return Err(bad("exactly one event kind per event".into())),
        };
        out.push(Event { at_seconds, kind });
    }
    out.sort_by_key(|e| e.at_seconds);
    Ok(out)
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventKind::Link(l) => {
                write!(f, "link {}", l.name)?;
                if let Some(s) = l.state {
                    write!(f, " state={s:?}")?;
                }
                if let Some(r) = l.rtt_ms {
                    write!(f, " rttMs={r}")?;
                }
                if let Some(b) = l.bandwidth_mbps {
                    write!(f, " bandwidthMbps={b}")?;
                }
                if let Some(r) = l.reporting {
                    write!(f, " reporting={r}")?;
                }
                Ok(())
            }
            EventKind::Cluster(c) => {
                write!(f, "cluster {} {}", c.name, if c.reachable { "reachable" } else { "unreachable" })
            }
            EventKind::Capacity(c) => write!(
                f,
                "capacity {}/{} free cpu={} memory={} pods={}",
                c.cluster,
                c.tier,
                c.free.cpu.as_deref().unwrap_or("?"),
                c.free.memory.as_deref().unwrap_or("?"),
                c.free.pods.as_deref().unwrap_or("?")
            ),
            EventKind::Taint(t) => {
                let effect = match t.effect {
                    Some(crate::api::TaintEffect::NoSchedule) => "NoSchedule",
                    Some(crate::api::TaintEffect::NoExecute) => "NoExecute",
                    None => "(no effect)",
                };
                write!(f, "taint {} {}:{effect}", t.cluster, t.key)
            }
            EventKind::Untaint(t) => write!(f, "untaint {} {}", t.cluster, t.key),
            EventKind::AddWorkload(w) => write!(
                f,
                "add workload {}/{}",
                w.metadata.namespace.as_deref().unwrap_or_default(),
                w.metadata.name.as_deref().unwrap_or_default()
            ),
            EventKind::DeleteWorkload(w) => write!(f, "delete workload {}/{}", w.namespace, w.name),
            EventKind::ScaleWorkload(w) => {
                write!(f, "scale workload {}/{} to {}", w.namespace, w.name, w.replicas.unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("30s"), Some(30));
        assert_eq!(parse_offset("2m"), Some(120));
        assert_eq!(parse_offset("1h30m"), Some(5400));
        assert_eq!(parse_offset("90"), Some(90));
        assert_eq!(parse_offset("5x"), None);
        assert_eq!(parse_offset("m"), None);
        assert_eq!(parse_offset("1m3"), None);
    }
}
