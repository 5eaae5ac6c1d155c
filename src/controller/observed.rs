//! Heartbeats on the hub's clock. A member stamps its heartbeat Lease (`renewTime`) with its own clock, which may
//! run fast or slow. The hub compares the stamp only for change: a heartbeat is the moment the hub saw the stamp
//! change. When a Lease is first seen (at a controller start) its stamp counts, never later than now. So a member
//! whose clock runs ten minutes fast and then falls silent is unreachable after the grace period, and one whose
//! clock runs slow stays reachable while it renews. (Dated facts, a link's or a capacity summary's `observedAt`,
//! count from when the hub first saw a stamp from the future: [`super::clock`].)

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// Per cluster: the stamp last seen, and the hub-clock time of the last change.
type Seen = Mutex<HashMap<String, (Option<Timestamp>, Option<Timestamp>)>>;

/// What the hub saw of each cluster's heartbeat.
#[derive(Default)]
pub struct Observed {
    heartbeats: Seen,
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
}
