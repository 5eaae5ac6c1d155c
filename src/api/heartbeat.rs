//! The heartbeat Lease as the hub reads it: a `coordination.k8s.io/v1` Lease, with only what reachability needs
//! and with `renewTime` read as any time the API server accepts (clamped, see [`super::time`]). k8s-openapi's own
//! `Lease` fails on a `renewTime` beyond its time library's range (`9999-12-31T23:59:59.999999Z`, which an agent
//! may write), and one such object would fail the whole LIST.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// A heartbeat Lease (`marshal-<cluster>/heartbeat`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct HeartbeatLease {
    /// Standard metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Lease spec, as far as the hub reads it.
    #[serde(default)]
    pub spec: HeartbeatSpec,
}

/// The parts of a Lease spec the hub reads.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatSpec {
    /// Who renews it (`syncer/<cluster>` or `agent/<cluster>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// The renewer's stamp of its last renewal (its own clock: compared only for change).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::time::clamped_opt")]
    pub renew_time: Option<Time>,
}

impl kube::Resource for HeartbeatLease {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Lease")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("coordination.k8s.io")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("leases")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renew_time_beyond_the_time_library_is_read() {
        let l: HeartbeatLease = serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "heartbeat", "namespace": "marshal-ltu-1"},
            "spec": {"holderIdentity": "agent/ltu-1", "leaseDurationSeconds": 15,
                     "renewTime": "9999-12-31T23:59:59.999999Z"}
        }))
        .unwrap();
        assert!(l.spec.renew_time.is_some());
        assert!(
            serde_json::from_value::<k8s_openapi::api::coordination::v1::Lease>(serde_json::json!({
                "metadata": {"name": "heartbeat"}, "spec": {"renewTime": "9999-12-31T23:59:59.999999Z"}
            }))
            .is_err(),
            "the strict type fails on it (the reason for this one)"
        );
    }
}
