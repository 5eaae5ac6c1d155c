//! Deterministic conditions: `lastTransitionTime` moves only when a condition's status flips, so an
//! unchanged decision gives a byte-identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition to set, without its transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSpec {
    /// Condition type, e.g. `Placed`.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Builds the new condition list from the old one: keeps `lastTransitionTime` of every condition whose
/// status did not change and stamps `now` on the others. The result is sorted by type.
pub fn merge(old: &[Condition], new: Vec<ConditionSpec>, generation: Option<i64>, now: Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = new
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_string();
            let last_transition_time = old
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == status)
                .map(|o| o.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Whether `conditions` holds `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).expect("valid"))
    }

    fn spec(status: bool) -> ConditionSpec {
        ConditionSpec { type_: "Placed", status, reason: "R".into(), message: "m".into() }
    }

    #[test]
    fn transition_time_moves_only_on_flip() {
        let first = merge(&[], vec![spec(true)], Some(1), t(100));
        assert_eq!(first[0].last_transition_time, t(100));
        let same = merge(&first, vec![spec(true)], Some(2), t(200));
        assert_eq!(same[0].last_transition_time, t(100));
        let flipped = merge(&same, vec![spec(false)], Some(2), t(300));
        assert_eq!(flipped[0].last_transition_time, t(300));
        assert!(!is_true(&flipped, "Placed"));
        assert!(is_true(&same, "Placed"));
    }
}
