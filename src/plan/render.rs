//! Rendering a plan as a table (what changed at each step) or as one JSON object (everything).

use std::fmt::Write as _;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Plan;
use crate::placement::{Decision, Move, Slot, Verdict};

fn slot(s: &Option<Slot>) -> Value {
    match s {
        Some(s) => json!({"cluster": s.cluster, "tier": s.tier}),
        None => Value::Null,
    }
}

fn age(now: Timestamp, t: Option<Timestamp>) -> Option<String> {
    t.map(|t| format!("{}s", (now.as_millisecond() - t.as_millisecond()).div_euclid(1000)))
}

fn at(plan: &Plan, s: u64) -> Timestamp {
    Timestamp::from_millisecond(plan.now.as_millisecond() + i64::try_from(s).unwrap_or(0) * 1000).unwrap_or(plan.now)
}

fn decision_json(d: &Decision, now: Timestamp) -> Value {
    json!({
        "phase": format!("{:?}", d.phase),
        "message": d.message,
        "placed": d.placed(),
        "unplaced": d.unplaced,
        "placements": d.placements.iter().map(|p| json!({
            "cluster": p.cluster, "tier": p.tier, "replicas": p.replicas, "reason": p.reason,
            "since": p.since.to_string(),
        })).collect::<Vec<_>>(),
        "verdicts": d.verdicts.iter().map(|v| {
            let mut o = json!({
                "cluster": v.cluster, "tier": v.tier, "eligible": v.eligible,
                "reason": v.reason.as_str(), "message": v.message,
            });
            if let Some(a) = age(now, v.observed_at) { o["factAge"] = json!(a); }
            if let Some(t) = v.tolerated_until { o["toleratedUntil"] = json!(t.to_string()); }
            o
        }).collect::<Vec<_>>(),
        "moves": d.moves.iter().map(|m| json!({
            "from": slot(&m.from), "to": slot(&m.to), "replicas": m.replicas, "reason": m.reason,
        })).collect::<Vec<_>>(),
        "failbackPending": d.failback.as_ref().map(|f| json!({"since": f.since.to_string(), "targets": f.targets})),
    })
}

/// The plan as one JSON object: `{"now": .., "steps": [{"at": "90s", "event": .., "workloads": {..}}]}`.
pub fn json(plan: &Plan) -> Value {
    json!({
        "now": plan.now.to_string(),
        "steps": plan.steps.iter().map(|s| {
            let now = at(plan, s.at_seconds);
            json!({
                "at": format!("{}s", s.at_seconds),
                "time": now.to_string(),
                "event": s.event,
                "workloads": s.decisions.iter().map(|(k, d)| (k.clone(), decision_json(d, now))).collect::<serde_json::Map<_, _>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

fn slot_str(s: &Option<Slot>) -> String {
    s.as_ref().map_or("-".into(), |s| format!("{}/{}", s.cluster, s.tier))
}

fn move_line(m: &Move) -> String {
    match (&m.from, &m.to) {
        (None, Some(_)) => format!("+{} on {} ({})", m.replicas, slot_str(&m.to), m.reason),
        (Some(_), None) => format!("-{} from {} ({})", m.replicas, slot_str(&m.from), m.reason),
        _ => format!("{} {} -> {} ({})", m.replicas, slot_str(&m.from), slot_str(&m.to), m.reason),
    }
}

fn verdict_line(out: &mut String, v: &Verdict, now: Timestamp) {
    let fact = age(now, v.observed_at).map(|a| format!(" [fact age {a}]")).unwrap_or_default();
    let tol = v
        .tolerated_until
        .map(|t| format!(" [tolerated {}s more]", (t.as_millisecond() - now.as_millisecond()) / 1000))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "    {:<10} {:<6} {:<4} {:<24} {}{}{}",
        v.cluster,
        v.tier,
        if v.eligible { "yes" } else { "no" },
        v.reason.as_str(),
        v.message,
        fact,
        tol
    );
}

/// The plan as text: the full state at time zero, then what changed at each later step.
pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "time zero: {}", plan.now);
    let mut prev: Option<&super::Step> = None;
    for step in &plan.steps {
        let now = at(plan, step.at_seconds);
        let _ = writeln!(out, "\n== t={}s  {}", step.at_seconds, step.event.as_deref().unwrap_or("initial state"));
        let mut quiet = true;
        for (key, d) in &step.decisions {
            let before = prev.and_then(|p| p.decisions.get(key));
            let changed_verdicts: Vec<&Verdict> = d
                .verdicts
                .iter()
                .filter(|v| {
                    before.is_none_or(|b| {
                        !b.verdicts.iter().any(|o| {
                            o.cluster == v.cluster
                                && o.tier == v.tier
                                && o.eligible == v.eligible
                                && o.reason == v.reason
                                && o.tolerated_until.is_some() == v.tolerated_until.is_some()
                        })
                    })
                })
                .collect();
            let unchanged = before.is_some_and(|b| b.phase == d.phase && b.placements == d.placements)
                && d.moves.is_empty()
                && changed_verdicts.is_empty()
                && before.is_some_and(|b| b.failback == d.failback);
            if unchanged {
                continue;
            }
            quiet = false;
            let _ = writeln!(out, "  {key}: {:?}  {}", d.phase, d.message);
            for p in &d.placements {
                let _ = writeln!(
                    out,
                    "    placed   {:<10} {:<6} replicas={:<3} {}",
                    p.cluster, p.tier, p.replicas, p.reason
                );
            }
            for m in &d.moves {
                let _ = writeln!(out, "    moved    {}", move_line(m));
            }
            if !changed_verdicts.is_empty() {
                let _ = writeln!(out, "    {:<10} {:<6} {:<4} {:<24} DETAIL", "CLUSTER", "TIER", "OK", "REASON");
                for v in changed_verdicts {
                    verdict_line(&mut out, v, now);
                }
            }
        }
        if quiet {
            let _ = writeln!(out, "  (no change)");
        }
        prev = Some(step);
    }
    out
}
