//! The syncer's part of `MemberCluster.status`: its conditions (`CredentialsValid`), `capacity` and
//! `observedAt`. Every write is a server-side apply with `SYNCER_FIELD_MANAGER` that carries the whole
//! syncer-owned part (read back from the object first), so one write never drops another's fields, and
//! nothing is written when nothing changed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde_json::json;

use super::SyncContext;
use super::error::Error;
use crate::api::conditions::{ConditionSpec, merge};
use crate::api::{MemberCluster, SYNCER_FIELD_MANAGER, TierCapacity};

/// Condition types the syncer owns on a MemberCluster.
pub const SYNCER_CONDITIONS: &[&str] = &[CREDENTIALS_VALID, super::assignments::ORPHANS_HELD];
/// Whether the member's kubeconfig Secret is usable.
pub const CREDENTIALS_VALID: &str = "CredentialsValid";

/// The syncer-owned part of the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncerStatus {
    /// Conditions of [`SYNCER_CONDITIONS`] types.
    pub conditions: Vec<Condition>,
    /// Capacity per tier.
    pub capacity: BTreeMap<String, TierCapacity>,
    /// When the capacity was observed.
    pub observed_at: Option<Time>,
}

impl SyncerStatus {
    /// The syncer-owned part of a MemberCluster's current status.
    pub fn of(mc: &MemberCluster) -> Self {
        let status = mc.status.clone().unwrap_or_default();
        SyncerStatus {
            conditions: status
                .conditions
                .into_iter()
                .filter(|c| SYNCER_CONDITIONS.contains(&c.type_.as_str()))
                .collect(),
            capacity: status.capacity,
            observed_at: status.observed_at,
        }
    }

    /// Sets one condition, keeping `lastTransitionTime` unless the status flips.
    pub fn set_condition(&mut self, spec: ConditionSpec, generation: Option<i64>, now: Time) {
        let mut specs: Vec<ConditionSpec> = self
            .conditions
            .iter()
            .filter(|c| c.type_ != spec.type_)
            .filter_map(|c| {
                SYNCER_CONDITIONS.iter().find(|t| **t == c.type_).map(|t| ConditionSpec {
                    type_: t,
                    status: c.status == "True",
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
            })
            .collect();
        specs.push(spec);
        let keep: Vec<Condition> = self.conditions.clone();
        let mut merged = merge(&keep, specs, generation, now);
        // Conditions that did not change keep their observedGeneration too.
        for c in &mut merged {
            if let Some(old) = keep.iter().find(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
                && old.message == c.message
            {
                c.observed_generation = old.observed_generation;
            }
        }
        self.conditions = merged;
    }
}

/// Reads the MemberCluster, lets `change` edit the syncer-owned part, and applies it if it changed.
/// Returns whether a write happened, or `None` when the MemberCluster is gone.
pub async fn update(
    ctx: &SyncContext,
    cluster: &str,
    change: impl FnOnce(&mut SyncerStatus, &MemberCluster),
) -> Result<Option<bool>, Error> {
    let api: Api<MemberCluster> = Api::all(ctx.hub.clone());
    let Some(mc) = api.get_opt(cluster).await.map_err(Error::hub(format!("read MemberCluster {cluster}")))? else {
        return Ok(None);
    };
    let old = SyncerStatus::of(&mc);
    let mut new = old.clone();
    change(&mut new, &mc);
    if new == old {
        return Ok(Some(false));
    }
    tracing::debug!(%cluster, ?old, ?new, "writing MemberCluster status");
    let mut status = serde_json::Map::new();
    status.insert("conditions".into(), json!(new.conditions));
    status.insert("capacity".into(), json!(new.capacity));
    if let Some(t) = &new.observed_at {
        status.insert("observedAt".into(), json!(t));
    }
    let body = json!({
        "apiVersion": MemberCluster::api_version(&()),
        "kind": MemberCluster::kind(&()),
        "metadata": {"name": cluster},
        "status": status,
    });
    api.patch_status(cluster, &PatchParams::apply(SYNCER_FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(Error::hub(format!("apply MemberCluster {cluster} status")))?;
    // A write that only moves `observedAt` renews a report (like a heartbeat), it changes nothing.
    let verb = if new.conditions == old.conditions && new.capacity == old.capacity { "renew" } else { "apply" };
    ctx.metrics.write("hub", verb, "memberclusters/status");
    Ok(Some(true))
}

/// Now as a `Time`.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn cond(status: bool, reason: &str) -> ConditionSpec {
        ConditionSpec { type_: CREDENTIALS_VALID, status, reason: reason.into(), message: "m".into() }
    }

    #[test]
    fn unchanged_condition_is_no_change() {
        let mut s = SyncerStatus::default();
        s.set_condition(cond(true, "Valid"), Some(1), t(10));
        let before = s.clone();
        s.set_condition(cond(true, "Valid"), Some(2), t(20));
        assert_eq!(s, before);
        s.set_condition(cond(false, "SecretNotFound"), Some(2), t(30));
        assert_eq!(s.conditions[0].last_transition_time, t(30));
        assert_eq!(s.conditions[0].reason, "SecretNotFound");
    }
}
