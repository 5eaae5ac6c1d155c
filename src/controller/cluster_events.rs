//! Which MemberCluster events trigger a re-decision of every workload.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::MemberCluster;

/// A MemberCluster event that matters for decisions: not one that only renews its capacity report's `observedAt`
/// (a syncer renews it every 1.5 capacity intervals; the engine judges its age at every decision, and an aging
/// report holds what runs, so it needs no reconcile of every workload).
/// A deletion (the object is no longer in the store) always matters.
pub fn significant(
    store: Store<MemberCluster>,
) -> impl FnMut(&Arc<MemberCluster>) -> std::future::Ready<bool> + Send + 'static {
    let last: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    move |mc| {
        if store.get(&ObjectRef::from_obj(mc.as_ref())).is_none() {
            if let Ok(mut m) = last.lock() {
                m.remove(&mc.name_any());
            }
            return std::future::ready(true);
        }
        let mut copy = (**mc).clone();
        copy.metadata.resource_version = None;
        copy.metadata.managed_fields = None;
        if let Some(s) = copy.status.as_mut() {
            s.observed_at = None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&serde_json::to_string(&copy).unwrap_or_default(), &mut h);
        let print = std::hash::Hasher::finish(&h);
        let changed = match last.lock() {
            Ok(mut m) => m.insert(mc.name_any(), print) != Some(print),
            Err(_) => true,
        };
        std::future::ready(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn mc(observed: &str, free_cpu: &str) -> MemberCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "MemberCluster",
            "metadata": {"name": "pol-1", "resourceVersion": observed},
            "spec": {"nation": "POL", "connection": {"mode": "Pull"},
                     "clearance": {"policy": "NATO", "classifications": ["SECRET"], "reviewBy": "2027-01-01T00:00:00Z"},
                     "admission": {"ownerNations": ["*"]}},
            "status": {"observedAt": observed, "capacity": {"core": {"free": {"cpu": free_cpu}}}}
        }))
        .expect("MemberCluster")
    }

    #[test]
    fn a_renewed_capacity_report_is_not_an_event_but_a_change_and_a_deletion_are() {
        let (reader, mut writer) = store::<MemberCluster>();
        let mut filter = significant(reader);
        let mut see = |o: MemberCluster| {
            writer.apply_watcher_event(&Event::Apply(o.clone()));
            futures::executor::block_on(filter(&Arc::new(o)))
        };
        assert!(see(mc("2026-11-28T09:00:00Z", "4")), "first sight");
        assert!(!see(mc("2026-11-28T09:00:15Z", "4")), "only observedAt moved");
        assert!(see(mc("2026-11-28T09:00:30Z", "3")), "capacity changed");
        let gone = mc("2026-11-28T09:00:30Z", "3");
        writer.apply_watcher_event(&Event::Delete(gone.clone()));
        assert!(futures::executor::block_on(filter(&Arc::new(gone))), "a deletion always matters");
    }
}
