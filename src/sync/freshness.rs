//! Fresh instructions only: a member applies an Assignment only before its `notAfter`, and never one older than
//! what it already applied for that workload. It records the sequence it applied on its Deployment
//! ([`SEQUENCE_ANNOTATION`]) and, when it removes a workload, keeps a tombstone (the ConfigMap
//! `marshal-system/marshal-removed`, one key per workload) until the removed instruction's `notAfter` has passed:
//! a saved, validly signed Assignment replayed later (an older version, or the last one of a deleted workload) is
//! refused (`StaleSequence`), as is one past its `notAfter` (`Expired`). Neither removes anything that runs.
//! The checks are made with the member's own clock.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::recheck::Refusal;
use crate::api::Assignment;

/// Annotation of a member Deployment: the sequence of the Assignment it was last applied from.
pub const SEQUENCE_ANNOTATION: &str = "marshal.dev/sequence";
/// Annotation of a member Deployment: the workload UID it was applied for.
pub const WORKLOAD_UID_ANNOTATION: &str = "marshal.dev/workload-uid";
/// The member ConfigMap (in `marshal-system`) holding the tombstones of removed workloads.
pub const TOMBSTONES_CONFIGMAP: &str = "marshal-removed";

/// A removed workload: the last sequence the member held for it, and until when that instruction was valid.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    /// Workload UID.
    pub uid: String,
    /// The highest sequence applied or removed.
    pub sequence: i64,
    /// The removed instruction's `notAfter`: after it, any replay is refused as expired anyway.
    pub not_after: Timestamp,
}

/// The tombstone key of a workload: `<namespace>.<name>` (valid as a ConfigMap data key).
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Parses the tombstones of the ConfigMap's data; an unreadable entry counts as a tombstone that refuses every
/// sequence (fail closed) until its key is rewritten.
pub fn parse(data: &BTreeMap<String, String>) -> BTreeMap<String, Tombstone> {
    data.iter()
        .map(|(k, v)| {
            let t = serde_json::from_str(v).unwrap_or(Tombstone {
                uid: String::new(),
                sequence: i64::MAX,
                not_after: Timestamp::MAX,
            });
            (k.clone(), t)
        })
        .collect()
}

/// The data of the ConfigMap after adding `new` and dropping tombstones whose instruction expired before `now`.
pub fn render(
    mut all: BTreeMap<String, Tombstone>,
    new: &[(String, Tombstone)],
    now: Timestamp,
) -> BTreeMap<String, String> {
    for (k, t) in new {
        let merged = match all.get(k) {
            Some(old) if old.sequence > t.sequence => old.clone(),
            _ => t.clone(),
        };
        all.insert(k.clone(), merged);
    }
    all.into_iter()
        .filter(|(_, t)| t.not_after >= now)
        .filter_map(|(k, t)| Some((k, serde_json::to_string(&t).ok()?)))
        .collect()
}

/// The sequence recorded on a member Deployment (`None`: not recorded, e.g. applied by an older Marshal).
pub fn applied_sequence(annotations: &BTreeMap<String, String>) -> Option<i64> {
    annotations.get(SEQUENCE_ANNOTATION).and_then(|s| s.parse().ok())
}

/// Whether the member may apply `a` now: before its `notAfter`, not older than what the member applied
/// (`applied`: the sequence on its Deployment) and newer than the workload's tombstone.
pub fn check(
    a: &Assignment,
    applied: Option<i64>,
    tombstone: Option<&Tombstone>,
    now: Timestamp,
) -> Result<(), Refusal> {
    let not_after = a.spec.not_after.0;
    if now >= not_after {
        return Err(Refusal {
            reason: "Expired",
            message: format!(
                "notAfter {not_after} has passed on this member's clock: the instruction is not applied (what runs \
                 stays) until the hub renews it"
            ),
        });
    }
    let seq = a.spec.sequence;
    if let Some(applied) = applied
        && seq < applied
    {
        return Err(Refusal {
            reason: "StaleSequence",
            message: format!(
                "sequence {seq} is older than {applied}, the one this member applied: a replayed instruction"
            ),
        });
    }
    if let Some(t) = tombstone
        && seq <= t.sequence
    {
        return Err(Refusal {
            reason: "StaleSequence",
            message: format!(
                "workload {}/{} was removed from this member at sequence {}; sequence {seq} is not newer: a replayed \
                 instruction",
                a.spec.workload.namespace, a.spec.workload.name, t.sequence
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apply::tests::assignment;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn expired_older_and_removed_instructions_are_refused() {
        let mut a = assignment("SECRET");
        a.spec.sequence = 100;
        a.spec.not_after = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(2_000));
        assert_eq!(check(&a, None, None, at(1_000)), Ok(()));
        assert_eq!(check(&a, Some(100), None, at(1_000)), Ok(()), "the same instruction again");
        assert_eq!(check(&a, Some(99), None, at(1_000)), Ok(()), "newer than applied");
        assert_eq!(check(&a, Some(101), None, at(1_000)).unwrap_err().reason, "StaleSequence");
        assert_eq!(check(&a, None, None, at(2_000)).unwrap_err().reason, "Expired");
        let t = Tombstone { uid: "u".into(), sequence: 100, not_after: at(2_000) };
        let r = check(&a, None, Some(&t), at(1_000)).unwrap_err();
        assert!(r.reason == "StaleSequence" && r.message.contains("was removed"), "{r:?}");
        a.spec.sequence = 101;
        assert_eq!(check(&a, None, Some(&t), at(1_000)), Ok(()), "placed again later: a newer sequence");
        assert!(r.keeps_running());
    }

    #[test]
    fn tombstones_keep_the_highest_sequence_and_expire() {
        let old = Tombstone { uid: "u".into(), sequence: 5, not_after: at(100) };
        let newer = Tombstone { uid: "u".into(), sequence: 9, not_after: at(300) };
        let data = render(BTreeMap::new(), &[("ns.a".into(), newer.clone()), ("ns.b".into(), old.clone())], at(50));
        let all = parse(&data);
        assert_eq!(all["ns.a"], newer);
        // A lower sequence never overwrites a higher one; an expired tombstone is dropped.
        let data = render(all, &[("ns.a".into(), old.clone())], at(200));
        let all = parse(&data);
        assert_eq!(all["ns.a"], newer);
        assert!(!all.contains_key("ns.b"), "expired tombstones are pruned");
        // An unreadable entry refuses everything.
        let bad = parse(&[("ns.c".to_string(), "not json".to_string())].into());
        assert_eq!(bad["ns.c"].sequence, i64::MAX);
    }
}
