//! Filter 10: the path from the data source meets the workload's needs with fresh facts.
//!
//! Stale facts are unknown and fail closed; a current placement rides them out for `tolerationSeconds` from
//! the moment they went stale (`observedAt + staleAfterSeconds`). A link that is reported bad rides it out from
//! the moment the engine first saw it bad. A link that was never measured, or does not exist, has nothing to
//! tolerate.

use jiff::Timestamp;

use super::filters::{age_s, at_most, plus_s};
use super::model::{LinkFacts, Snapshot, WorkloadModel};
use super::reasons::{Fail, Hold, Reason};
use crate::api::LinkState;

/// `source` is the data source's cluster index (`Some(None)` when the source is not a known cluster). Returns
/// the RTT used for scoring (0 at the source).
pub fn link(
    ci: usize,
    w: &WorkloadModel,
    snap: &Snapshot,
    source: Option<Option<usize>>,
    now: Timestamp,
) -> Result<u32, Fail> {
    let (Some(ds), Some(source)) = (&w.placement.data_source, source) else { return Ok(0) };
    let Some(src) = source else {
        return Err(Fail::no(
            Reason::LinkInsufficient,
            format!("data source cluster {} is not a MemberCluster", ds.cluster),
        ));
    };
    if src == ci {
        return Ok(0);
    }
    let Some(((from, to), l)) = snap.link_between(src, ci) else {
        let name = format!("{}.{}", ds.cluster, snap.clusters[ci].name);
        return Err(Fail::no(Reason::LinkInsufficient, format!("no ClusterLink {name} (or reverse)")));
    };
    check(l, from, to, ds.max_rtt_ms, ds.min_bandwidth_mbps, now)
}

/// A failure of a link whose facts are current: tolerated from the moment the engine saw it.
fn bad(message: String) -> Fail {
    Fail { reason: Reason::LinkInsufficient, message, observed_at: None, hold: Hold::Tolerate(None) }
}

fn check(
    l: &LinkFacts,
    from: &str,
    to: &str,
    max_rtt: Option<u32>,
    min_bw: Option<u32>,
    now: Timestamp,
) -> Result<u32, Fail> {
    let Some(at) = l.observed_at.map(|t| at_most(t, now)) else {
        return Err(Fail::no(
            Reason::LinkInsufficient,
            format!("link {from}.{to} has never been measured: nothing to tolerate"),
        ));
    };
    if age_s(now, at) > i64::from(l.stale_after_seconds) {
        return Err(Fail {
            reason: Reason::LinkInsufficient,
            message: format!(
                "link {from}.{to} facts from {at} are stale (staleAfterSeconds {})",
                l.stale_after_seconds
            ),
            observed_at: Some(at),
            hold: Hold::Tolerate(Some(plus_s(at, i64::from(l.stale_after_seconds)))),
        });
    }
    if l.state != LinkState::Up {
        return Err(bad(format!("link {from}.{to} is {:?}", l.state)));
    }
    let rtt = match (l.rtt_ms, max_rtt) {
        (Some(r), Some(max)) if r > max => return Err(bad(format!("link {from}.{to} rtt {r}ms > maxRttMs {max}"))),
        (None, Some(_)) => return Err(bad(format!("link {from}.{to} rtt unknown"))),
        (r, _) => r.unwrap_or(0),
    };
    match (l.bandwidth_mbps, min_bw) {
        (Some(b), Some(min)) if b < min => {
            Err(bad(format!("link {from}.{to} bandwidth {b}Mbps < minBandwidthMbps {min}")))
        }
        (None, Some(_)) => Err(bad(format!("link {from}.{to} bandwidth unknown"))),
        _ => Ok(rtt),
    }
}

/// When the facts of a link go stale (the first whole second after `observedAt + staleAfterSeconds`), if they
/// have not yet at `now`. Facts dated in the future count as observed `now`.
pub fn stale_at(l: &LinkFacts, now: Timestamp) -> Option<Timestamp> {
    let at = at_most(l.observed_at?, now);
    let t = plus_s(at, i64::from(l.stale_after_seconds) + 1);
    (t > now).then_some(t)
}
