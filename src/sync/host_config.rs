//! The host nation's own configuration of its member: what it is cleared for, what it admits, the security
//! policies it trusts, what may run (the host workload policy), whose signatures it demands and which link probe
//! targets it pinned. It lives in the member (the ConfigMap `marshal-system/marshal-clearance`, key
//! `clearance.yaml`; the agent's `--clearance` file; the member chart's values), is owned by the host, and is
//! never completed from the hub's copy: whatever it does not say is the strict default, or fails closed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;

use super::host_policy::WorkloadPolicy;
use crate::api::{Admission, Clearance, SecurityPolicySpec};
use crate::signing::KeyRing;

/// Key of the host configuration in the member ConfigMap.
pub const CLEARANCE_KEY: &str = "clearance.yaml";

/// Push mode: the member demands signed Assignments, verified with keys it names itself.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureDemand {
    /// Refuse every Assignment not signed by one of `trustedKeys`.
    #[serde(default)]
    pub required: bool,
    /// The hub's public keys the host trusts (`ed25519:<base64>`, as `marshal keygen --public-out` prints).
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// The host configuration (the YAML of the ConfigMap's `clearance.yaml` or the agent's `--clearance` file).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberClearance {
    /// Host nation (ISO 3166-1 alpha-3). Required: the member never takes its nation from the hub.
    pub nation: String,
    /// What the member may hold.
    pub clearance: Clearance,
    /// What the host accepts; absent: every owner, up to what the clearance allows.
    #[serde(default)]
    pub admission: Option<Admission>,
    /// The security policies (SPIFs) the host trusts. The re-check uses only these: a label under a policy the
    /// member does not hold here is refused (`PolicyNotHeld`), whatever SecurityPolicies the hub has.
    #[serde(default)]
    pub policies: Vec<SecurityPolicySpec>,
    /// What may run in the member (Pod Security level, namespaces, images, ServiceAccounts, volumes).
    #[serde(default)]
    pub workload_policy: WorkloadPolicy,
    /// Push mode: demand signatures by these keys (the agent always demands them, from `--trusted-keys`).
    #[serde(default)]
    pub signatures: Option<SignatureDemand>,
    /// Pull mode: the link probe targets the host pinned, by ClusterLink name (`<cluster>.<to>`). The agent
    /// dials only these addresses; a different `spec.probe.address` on the hub is refused.
    #[serde(default)]
    pub probes: BTreeMap<String, String>,
}

impl MemberClearance {
    /// Checks what serde cannot: the nation's form, the workload policy, the demanded keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.nation.len() != 3 || !self.nation.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("nation {:?}: expected an ISO 3166-1 alpha-3 code such as POL", self.nation));
        }
        self.workload_policy.validate()?;
        if let Some(s) = &self.signatures
            && s.required
        {
            self.demanded_keys().map(|_| ())?;
        }
        for (link, addr) in &self.probes {
            if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
                return Err(format!("probes.{link}: {addr:?} is not host:port"));
            }
        }
        Ok(())
    }

    /// The key ring of a signature demand: `Ok(None)` when the host demands none.
    pub fn demanded_keys(&self) -> Result<Option<KeyRing>, String> {
        match &self.signatures {
            Some(s) if s.required => {
                KeyRing::parse(&s.trusted_keys.join("\n")).map(Some).map_err(|e| format!("signatures.trustedKeys: {e}"))
            }
            _ => Ok(None),
        }
    }
}

/// Parses and validates host configuration text; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<MemberClearance, String> {
    let c: MemberClearance = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml's message names the field and the position, never a value.
        format!("{source}: {e}")
    })?;
    c.validate().map_err(|e| format!("{source}: {e}"))?;
    Ok(c)
}

/// Parses the member ConfigMap. An error is fail-closed: every Assignment is refused until it is fixed.
pub fn parse_member_clearance(cm: &ConfigMap) -> Result<MemberClearance, String> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CLEARANCE_KEY))
        .ok_or_else(|| format!("ConfigMap marshal-system/marshal-clearance has no key {CLEARANCE_KEY}"))?;
    parse(text, &format!("ConfigMap marshal-system/marshal-clearance {CLEARANCE_KEY}"))
}

/// Parses a clearance file (the same YAML as the ConfigMap's `clearance.yaml`).
pub fn parse_clearance_file(text: &str, path: &str) -> Result<MemberClearance, String> {
    parse(text, &format!("clearance file {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "clearance: {policy: NATO, classifications: [UNCLASSIFIED], reviewBy: \"2099-01-01T00:00:00Z\"}\n";

    #[test]
    fn the_nation_is_required_and_checked() {
        let e = parse(BASE, "f").unwrap_err();
        assert!(e.contains("nation"), "{e}");
        let e = parse(&format!("nation: Poland\n{BASE}"), "f").unwrap_err();
        assert!(e.contains("alpha-3"), "{e}");
        let c = parse(&format!("nation: POL\n{BASE}"), "f").unwrap();
        assert_eq!(c.nation, "POL");
        assert_eq!(c.workload_policy, WorkloadPolicy::default(), "strict defaults");
        assert!(c.signatures.is_none() && c.probes.is_empty() && c.policies.is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_policies_fail_closed() {
        let e = parse(&format!("nation: POL\nnaton: POL\n{BASE}"), "f").unwrap_err();
        assert!(e.contains("naton"), "{e}");
        let e = parse(&format!("nation: POL\n{BASE}workloadPolicy: {{volumes: [hostPath]}}\n"), "f").unwrap_err();
        assert!(e.contains("hostPath"), "{e}");
        let e =
            parse(&format!("nation: POL\n{BASE}signatures: {{required: true, trustedKeys: []}}\n"), "f").unwrap_err();
        assert!(e.contains("signatures.trustedKeys"), "{e}");
    }

    #[test]
    fn signature_demands_parse_their_keys() {
        let s = crate::signing::Signer::generate().unwrap();
        let key = crate::signing::public_key_text(&s.public());
        let c = parse(&format!("nation: POL\n{BASE}signatures: {{required: true, trustedKeys: [\"{key}\"]}}\n"), "f")
            .unwrap();
        assert_eq!(c.demanded_keys().unwrap().unwrap().ids(), [s.id().to_string()]);
        let off = parse(&format!("nation: POL\n{BASE}signatures: {{required: false}}\n"), "f").unwrap();
        assert!(off.demanded_keys().unwrap().is_none());
    }
}
