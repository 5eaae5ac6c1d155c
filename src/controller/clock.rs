//! Fact times on the hub's clock: a heartbeat, link measurement or capacity report dated in the future (a member
//! or monitor whose clock runs ahead) counts as observed when the hub first saw it, so that it never extends
//! freshness. Times in the past are taken as they are.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// What a fact time belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    /// A cluster's heartbeat Lease renewal.
    Heartbeat(String),
    /// A cluster's capacity report (`status.observedAt`).
    Capacity(String),
    /// A link's measurement (`status.observedAt`).
    Link(String),
}

/// Future-dated fact times and when the hub first saw each.
#[derive(Debug, Default)]
pub struct FactClock {
    seen: Mutex<BTreeMap<Fact, (Timestamp, Timestamp)>>,
}

impl FactClock {
    /// The time to judge `reported` by at `now`: `reported` if it is not in the future, else the moment the hub first
    /// saw this value (a new future value starts again at `now`).
    pub fn judge(&self, fact: Fact, reported: Timestamp, now: Timestamp) -> Timestamp {
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if reported <= now {
            seen.remove(&fact);
            return reported;
        }
        if seen.len() > 100_000 {
            seen.clear();
        }
        let entry = seen.entry(fact).or_insert((reported, now));
        if entry.0 != reported {
            *entry = (reported, now);
        }
        entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn a_future_time_counts_from_when_the_hub_first_saw_it() {
        let clock = FactClock::default();
        let hb = Fact::Heartbeat("pol-1".into());
        // A heartbeat an hour ahead, first seen at t=0, still the same at t=20: 20 s old, not fresh for an hour.
        assert_eq!(clock.judge(hb.clone(), t(3600), t(0)), t(0));
        assert_eq!(clock.judge(hb.clone(), t(3600), t(20)), t(0));
        // A renewal (a new value, still ahead) is fresh again from when it was seen.
        assert_eq!(clock.judge(hb.clone(), t(3605), t(25)), t(25));
        // Times in the past are themselves; other facts are separate.
        assert_eq!(clock.judge(hb.clone(), t(10), t(30)), t(10));
        assert_eq!(clock.judge(Fact::Link("a.b".into()), t(100), t(30)), t(30));
        assert_eq!(clock.judge(Fact::Capacity("pol-1".into()), t(29), t(30)), t(29));
    }
}
