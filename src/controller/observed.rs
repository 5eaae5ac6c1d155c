//! Dated facts on the hub's clock. Members and monitors stamp what they report (a Lease's `renewTime`, a link's or
//! a capacity summary's `observedAt`) with their own clocks, which may run fast. The hub never lets such a stamp
//! make a fact fresher than the hub itself has seen it:
//! - a **heartbeat** is the moment the hub saw the Lease's `renewTime` change (the stamp is only compared for
//!   change). When a Lease is first seen (at a controller start) its stamp counts, but never later than now.
//! - a **fact** (`observedAt`) counts as the earlier of its stamp and the moment the hub first saw that stamp.
//!
//! So a member whose clock runs ten minutes fast and then falls silent is unreachable after the grace period,
//! and a link reported "observed" in the future goes stale `staleAfterSeconds` after the hub saw it.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// Per key: the stamp last seen, and the hub-clock time the fact counts from.
type Seen<T> = Mutex<HashMap<String, (T, T)>>;

/// What the hub saw, per key: the stamp and when (hub clock) it first saw that stamp.
#[derive(Default)]
pub struct Observed {
    heartbeats: Seen<Option<Timestamp>>,
    facts: Seen<Timestamp>,
}

impl Observed {
    /// Records a heartbeat Lease of `cluster` with stamp `renew` as seen at `now` (hub clock).
    pub fn observe_heartbeat(&self, cluster: &str, renew: Option<Timestamp>, now: Timestamp) {
        let Ok(mut m) = self.heartbeats.lock() else { return };
        match m.get(cluster) {
            // Unchanged stamp: the heartbeat stays where the hub first saw it.
            Some((stamp, _)) if *stamp == renew => {}
            // Changed: the member is alive now, whatever its clock says.
            Some(_) => {
                m.insert(cluster.to_string(), (renew, renew.map(|_| now)));
            }
            // First sight (a start): the stamp, never later than now.
            None => {
                m.insert(cluster.to_string(), (renew, renew.map(|r| r.min(now))));
            }
        }
    }

    /// The last heartbeat of `cluster` on the hub's clock.
    pub fn heartbeat_of(&self, cluster: &str) -> Option<Timestamp> {
        self.heartbeats.lock().ok()?.get(cluster).and_then(|(_, seen)| *seen)
    }

    /// A fact stamped `claimed` (key: what it is about), as the hub may trust it at `now`: the earlier of the
    /// stamp and the moment the hub first saw this stamp.
    pub fn fact(&self, key: &str, claimed: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        let claimed = claimed?;
        let Ok(mut m) = self.facts.lock() else { return Some(claimed.min(now)) };
        let seen = match m.get(key) {
            Some((stamp, seen)) if *stamp == claimed => *seen,
            _ => {
                m.insert(key.to_string(), (claimed, now));
                now
            }
        };
        Some(claimed.min(seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_fast_member_clock_never_extends_a_heartbeat() {
        let o = Observed::default();
        // First sight of a Lease stamped ten minutes ahead: it counts as now at most.
        o.observe_heartbeat("ltu-1", Some(t(1_600)), t(1_000));
        assert_eq!(o.heartbeat_of("ltu-1"), Some(t(1_000)));
        // Seen again unchanged later: still the moment it was first seen.
        o.observe_heartbeat("ltu-1", Some(t(1_600)), t(1_030));
        assert_eq!(o.heartbeat_of("ltu-1"), Some(t(1_000)));
        // A renewal (a new stamp, whatever its value) is dated by the hub.
        o.observe_heartbeat("ltu-1", Some(t(1_700)), t(1_035));
        assert_eq!(o.heartbeat_of("ltu-1"), Some(t(1_035)));
        // A stale Lease first seen at a start counts as what it says.
        o.observe_heartbeat("pol-1", Some(t(900)), t(1_000));
        assert_eq!(o.heartbeat_of("pol-1"), Some(t(900)));
        o.observe_heartbeat("deu-1", None, t(1_000));
        assert_eq!(o.heartbeat_of("deu-1"), None);
        assert_eq!(o.heartbeat_of("lva-1"), None);
    }

    #[test]
    fn facts_from_the_future_are_dated_when_the_hub_saw_them() {
        let o = Observed::default();
        assert_eq!(o.fact("link/a.b", Some(t(1_600)), t(1_000)), Some(t(1_000)));
        assert_eq!(o.fact("link/a.b", Some(t(1_600)), t(1_100)), Some(t(1_000)), "ages on the hub's clock");
        // A past stamp counts as itself.
        assert_eq!(o.fact("link/a.b", Some(t(1_090)), t(1_100)), Some(t(1_090)));
        assert_eq!(o.fact("link/a.b", None, t(1_100)), None);
    }
}
