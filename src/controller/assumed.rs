//! Capacity the controller has promised but no member has reported yet (kube-scheduler's "assume").
//!
//! A member's capacity summary counts the pods that exist there. Between a decision and the next summary that
//! counts its pods, the summary still shows the tier's capacity as free, and every other decision made in that
//! window would place into the same room: at a failover of a hundred workloads, a 30-pod edge node was chosen by
//! 71 of them and most then had to move on (`InsufficientPods`). The ledger holds each new placement's requests
//! against its tier until the member's summary can count them, so decisions made together share the room.
//!
//! It only ever lowers a tier's free capacity to zero, never below: a placement made earlier keeps fitting (the
//! engine adds a workload's own replicas back), so promises cannot make work move, they only steer new replicas.
//! The ledger is in memory: after a restart the members' summaries count everything again within one interval.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::placement::{Request, Resources, Snapshot};

/// How long after the member reported a promise's replicas ready its capacity summary may still miss them:
/// syncers observe every `--capacity-interval` (10 s) and report only a changed summary.
pub const READY_SETTLE_S: i64 = 12;
/// How long a promise waits for its Assignment to appear with its digest (the write failed, or a later decision
/// replaced it).
pub const WRITE_SETTLE_S: i64 = 10;
/// A promise is dropped after this long whatever happened (its pods exist by then, ready or not, and pending
/// pods are counted by the summary too).
pub const MAX_AGE_S: i64 = 120;

/// Replicas added to a (cluster, tier) by one Assignment write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise {
    /// Cluster.
    pub cluster: String,
    /// Tier.
    pub tier: String,
    /// Replicas added (beyond what the Assignment had before).
    pub replicas: u32,
    /// One replica's requests.
    pub request: Request,
    /// Digest of the Assignment written.
    pub digest: String,
    /// When it was decided.
    pub at: Timestamp,
    /// When the hub first saw the member report those replicas ready.
    pub ready_seen: Option<Timestamp>,
}

/// What the hub's store says about a promise's Assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not there, or with another digest.
    Absent,
    /// There with the promised digest; `ready` once the member reports every replica ready for it.
    Written {
        /// Ready for this digest.
        ready: bool,
    },
}

/// The promises not yet counted by the members, keyed by Assignment (`namespace/name`).
#[derive(Debug, Default)]
pub struct Ledger {
    promises: BTreeMap<String, Promise>,
}

fn secs(from: Timestamp, to: Timestamp) -> i64 {
    (to.as_millisecond() - from.as_millisecond()).div_euclid(1000)
}

/// `reported` lowered by `held`, never below zero; a negative (overcommitted) report stays as it is.
pub fn less(reported: Option<i64>, held: i64) -> Option<i64> {
    reported.map(|r| if r < 0 { r } else { (r - held).max(0) })
}

impl Ledger {
    /// Records that the Assignment `key` adds `replicas` to `cluster`/`tier`. A promise for the same Assignment that
    /// is still outstanding is folded in (its replicas are not counted yet either).
    pub fn promise(&mut self, key: &str, mut p: Promise) {
        if let Some(old) = self.promises.remove(key)
            && old.cluster == p.cluster
            && old.tier == p.tier
        {
            p.replicas = p.replicas.saturating_add(old.replicas);
        }
        if p.replicas > 0 {
            self.promises.insert(key.to_string(), p);
        }
    }

    /// Drops the promises the members' summaries now count. `seen` reads the Assignment; `observed` is when a
    /// cluster's capacity summary was last reported.
    pub fn refresh(
        &mut self,
        now: Timestamp,
        seen: impl Fn(&str, &Promise) -> Seen,
        observed: impl Fn(&str) -> Option<Timestamp>,
    ) {
        self.promises.retain(|key, p| {
            if secs(p.at, now) > MAX_AGE_S {
                return false;
            }
            match seen(key, p) {
                Seen::Absent => return secs(p.at, now) <= WRITE_SETTLE_S,
                Seen::Written { ready: true } if p.ready_seen.is_none() => p.ready_seen = Some(now),
                Seen::Written { .. } => {}
            }
            match p.ready_seen {
                None => true,
                Some(r) => secs(r, now) <= READY_SETTLE_S && observed(&p.cluster).is_none_or(|o| o <= r),
            }
        });
    }

    /// Lowers the free capacity of every tier in `snap` by what is promised there.
    pub fn apply_to(&self, snap: &mut Snapshot) {
        if self.promises.is_empty() {
            return;
        }
        let mut held: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
        for p in self.promises.values() {
            let n = i64::from(p.replicas);
            let e = held.entry((p.cluster.as_str(), p.tier.as_str())).or_default();
            e.0 += n * p.request.cpu_milli;
            e.1 += n * p.request.memory_bytes;
            e.2 += n;
        }
        for c in &mut snap.clusters {
            for (tier, free) in &mut c.free {
                if let Some((cpu, memory, pods)) = held.get(&(c.name.as_str(), tier.as_str())) {
                    *free = Resources {
                        cpu_milli: less(free.cpu_milli, *cpu),
                        memory_bytes: less(free.memory_bytes, *memory),
                        pods: less(free.pods, *pods),
                    };
                }
            }
        }
    }

    /// Replicas promised and not yet counted, over all clusters.
    pub fn outstanding(&self) -> u64 {
        self.promises.values().map(|p| u64::from(p.replicas)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn p(replicas: u32, at: i64) -> Promise {
        Promise {
            cluster: "pol-1".into(),
            tier: "edge".into(),
            replicas,
            request: Request { cpu_milli: 100, memory_bytes: 64 << 20 },
            digest: "sha256:a".into(),
            at: t(at),
            ready_seen: None,
        }
    }

    #[test]
    fn lowers_free_to_zero_never_below_and_keeps_an_overcommit_as_reported() {
        assert_eq!(less(Some(30), 12), Some(18));
        assert_eq!(less(Some(5), 12), Some(0));
        assert_eq!(less(Some(-3), 12), Some(-3));
        assert_eq!(less(None, 12), None, "unknown stays unknown (fails closed in the engine)");
    }

    #[test]
    fn a_promise_lives_until_the_summary_can_count_it() {
        let mut l = Ledger::default();
        l.promise("marshal-pol-1/ns.a", p(2, 0));
        let written = |ready| move |_: &str, _: &Promise| Seen::Written { ready };
        l.refresh(t(5), written(false), |_| Some(t(4)));
        assert_eq!(l.outstanding(), 2, "written, not ready: pods may not exist yet");
        l.refresh(t(8), written(true), |_| Some(t(4)));
        assert_eq!(l.outstanding(), 2, "ready at 8, summary from 4: not counted yet");
        l.refresh(t(9), written(true), |_| Some(t(8)));
        assert_eq!(l.outstanding(), 2, "a summary from the same moment may predate the pods");
        l.refresh(t(10), written(true), |_| Some(t(9)));
        assert_eq!(l.outstanding(), 0, "a summary after the replicas were ready counts them");
    }

    #[test]
    fn an_unchanged_summary_means_the_pods_were_counted_already() {
        let mut l = Ledger::default();
        l.promise("k", p(1, 0));
        l.refresh(t(3), |_, _| Seen::Written { ready: true }, |_| Some(t(2)));
        l.refresh(t(3 + READY_SETTLE_S), |_, _| Seen::Written { ready: true }, |_| Some(t(2)));
        assert_eq!(l.outstanding(), 1);
        l.refresh(t(4 + READY_SETTLE_S), |_, _| Seen::Written { ready: true }, |_| Some(t(2)));
        assert_eq!(l.outstanding(), 0);
    }

    #[test]
    fn unwritten_and_old_promises_go() {
        let mut l = Ledger::default();
        l.promise("never-written", p(1, 0));
        l.promise("never-ready", p(1, 0));
        let seen =
            |k: &str, _: &Promise| if k == "never-written" { Seen::Absent } else { Seen::Written { ready: false } };
        l.refresh(t(WRITE_SETTLE_S), seen, |_| None);
        assert_eq!(l.outstanding(), 2);
        l.refresh(t(WRITE_SETTLE_S + 1), seen, |_| None);
        assert_eq!(l.outstanding(), 1);
        l.refresh(t(MAX_AGE_S + 1), seen, |_| None);
        assert_eq!(l.outstanding(), 0);
    }

    #[test]
    fn a_second_increase_adds_to_an_outstanding_promise_and_a_move_replaces_it() {
        let mut l = Ledger::default();
        l.promise("k", p(2, 0));
        l.promise("k", p(1, 1));
        assert_eq!(l.outstanding(), 3);
        let mut core = p(1, 2);
        core.tier = "core".into();
        l.promise("k", core);
        assert_eq!(l.outstanding(), 1, "the Assignment now asks for another tier");
    }
}
