//! Pure: the host workload policy. Beside its clearance, each member's host nation decides *what* may run in its
//! cluster, whatever the hub signs: a Pod Security level (`restricted` by default, `baseline` by explicit
//! choice), the namespaces Marshal may use (by default only those it created itself), allowed image prefixes,
//! ServiceAccounts, ServiceAccount tokens and volume types. The syncer checks every Assignment's pod template
//! against it before applying ([`check_pod`]) and refuses a violation (`HostPolicyViolation`) with messages
//! that name each offending field; the member guard (`crate::agent::guard`) applies the same rules in the
//! member's API server to the syncer's own identity.
//!
//! The Pod Security checks follow the Kubernetes Pod Security Standards (baseline and restricted, as of
//! Kubernetes 1.36) for the fields a Deployment's pod template can set. They are Marshal's own: they do not
//! rely on the member API server's `--allow-privileged` flag nor on its Pod Security admission (which the
//! namespaces Marshal creates also turn on, with the `pod-security.kubernetes.io/enforce` label).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};
use serde::{Deserialize, Serialize};

/// A Pod Security Standard level.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// The baseline standard: no known privilege escalations (host namespaces, privileged, hostPath, ...).
    Baseline,
    /// The restricted standard (default): baseline plus non-root, no privilege escalation, dropped
    /// capabilities, RuntimeDefault seccomp, a short list of volume types.
    #[default]
    Restricted,
}

impl PodSecurityLevel {
    /// The level's name, as in the `pod-security.kubernetes.io/enforce` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// Volume types the restricted standard allows.
pub const RESTRICTED_VOLUMES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
/// Every volume type of the Kubernetes API (baseline allows all but `hostPath`).
pub const ALL_VOLUMES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];
/// Capabilities the baseline standard allows to add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// Sysctls the baseline standard allows.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
/// SELinux types the baseline standard allows.
pub const SELINUX_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// The host's workload policy (the `workloadPolicy` of its host configuration). Every field has the strict
/// default; a host loosens it only by saying so.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPolicy {
    /// Pod Security level: `restricted` (default) or `baseline`.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    /// Namespaces that exist in the member and that Marshal may use although it did not create them. By
    /// default none: Marshal uses only namespaces it created (and marked) itself.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Allowed image prefixes (`registry.example.mil/`). Empty: any image.
    #[serde(default)]
    pub images: Vec<String>,
    /// Allowed `serviceAccountName`s (absent in a template means `default`).
    #[serde(default = "default_service_accounts")]
    pub service_accounts: Vec<String>,
    /// Whether pods may mount a ServiceAccount token. Default false: templates must say
    /// `automountServiceAccountToken: false`.
    #[serde(default)]
    pub automount_service_account_token: bool,
    /// Allowed volume types (`emptyDir`, `configMap`, ...). Absent: every type the level allows (restricted:
    /// [`RESTRICTED_VOLUMES`]; baseline: all but `hostPath`). It can narrow the level, never widen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
}

fn default_service_accounts() -> Vec<String> {
    vec!["default".into()]
}

impl Default for WorkloadPolicy {
    fn default() -> Self {
        WorkloadPolicy {
            pod_security: PodSecurityLevel::Restricted,
            namespaces: Vec::new(),
            images: Vec::new(),
            service_accounts: default_service_accounts(),
            automount_service_account_token: false,
            volumes: None,
        }
    }
}

impl WorkloadPolicy {
    /// A policy that contradicts its own level (a volume type the level forbids) is an error in the host's
    /// configuration: it fails closed, naming the entry.
    pub fn validate(&self) -> Result<(), String> {
        for (i, v) in self.volumes.iter().flatten().enumerate() {
            if !ALL_VOLUMES.contains(&v.as_str()) {
                return Err(format!("workloadPolicy.volumes[{i}]: {v:?} is not a Kubernetes volume type"));
            }
        }
        for v in self.volumes.iter().flatten() {
            if !level_allows_volume(self.pod_security, v) {
                return Err(format!(
                    "workloadPolicy.volumes: {v} is not allowed at podSecurity {} (the list can only narrow the level)",
                    self.pod_security.as_str()
                ));
            }
        }
        for (i, p) in self.images.iter().enumerate() {
            if p.is_empty() {
                return Err(format!("workloadPolicy.images[{i}]: an empty prefix would allow every image"));
            }
        }
        // These names are written into the member guard's CEL: only the characters Kubernetes names and image
        // references use.
        let safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:/@".contains(&b));
        for (what, list) in
            [("namespaces", &self.namespaces), ("images", &self.images), ("serviceAccounts", &self.service_accounts)]
        {
            if let Some((i, bad)) = list.iter().enumerate().find(|(_, s)| !safe(s)) {
                return Err(format!(
                    "workloadPolicy.{what}[{i}]: {bad:?} has characters no Kubernetes name or image uses"
                ));
            }
        }
        Ok(())
    }

    /// The volume types allowed: the host's list, or every type its level allows.
    pub fn allowed_volumes(&self) -> Vec<String> {
        match &self.volumes {
            Some(l) => l.clone(),
            None => ALL_VOLUMES
                .iter()
                .filter(|v| level_allows_volume(self.pod_security, v))
                .map(|v| v.to_string())
                .collect(),
        }
    }

    fn volume_allowed(&self, kind: &str) -> bool {
        level_allows_volume(self.pod_security, kind)
            && self.volumes.as_ref().is_none_or(|l| l.iter().any(|v| v == kind))
    }
}

fn level_allows_volume(level: PodSecurityLevel, kind: &str) -> bool {
    match level {
        PodSecurityLevel::Restricted => RESTRICTED_VOLUMES.contains(&kind),
        PodSecurityLevel::Baseline => kind != "hostPath",
    }
}

/// One violation: the field (from `spec.template`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `spec.template.spec.containers[0].securityContext.privileged`.
    pub field: String,
    /// What the policy says.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The violations as one message (the first few in full, then a count).
pub fn summary(v: &[Violation]) -> String {
    const SHOWN: usize = 6;
    let mut out: Vec<String> = v.iter().take(SHOWN).map(Violation::to_string).collect();
    if v.len() > SHOWN {
        out.push(format!("and {} more", v.len() - SHOWN));
    }
    out.join("; ")
}

const SPEC: &str = "spec.template.spec";

struct Checker<'a> {
    policy: &'a WorkloadPolicy,
    out: Vec<Violation>,
}

impl Checker<'_> {
    fn deny(&mut self, field: String, what: &str) {
        let level = self.policy.pod_security.as_str();
        self.out.push(Violation { field, message: format!("{what} under the host's policy ({level})") });
    }

    fn restricted(&self) -> bool {
        self.policy.pod_security == PodSecurityLevel::Restricted
    }
}

/// Checks a pod template (its spec and its metadata annotations) against the host's workload policy. Empty:
/// allowed.
pub fn check_pod(policy: &WorkloadPolicy, pod: &PodSpec, annotations: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut c = Checker { policy, out: Vec::new() };
    for (flag, name) in [(pod.host_network, "hostNetwork"), (pod.host_pid, "hostPID"), (pod.host_ipc, "hostIPC")] {
        if flag == Some(true) {
            c.deny(format!("{SPEC}.{name}"), "not allowed");
        }
    }
    let psc = pod.security_context.clone().unwrap_or_default();
    let pf = format!("{SPEC}.securityContext");
    if psc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        c.deny(format!("{pf}.windowsOptions.hostProcess"), "not allowed");
    }
    if let Some(se) = &psc.se_linux_options {
        selinux(&mut c, &format!("{pf}.seLinuxOptions"), se);
    }
    if let Some(t) = psc.seccomp_profile.as_ref().map(|s| s.type_.as_str())
        && t == "Unconfined"
    {
        c.deny(format!("{pf}.seccompProfile.type"), "Unconfined is not allowed");
    }
    if let Some(t) = psc.app_armor_profile.as_ref().map(|a| a.type_.as_str())
        && t == "Unconfined"
    {
        c.deny(format!("{pf}.appArmorProfile.type"), "Unconfined is not allowed");
    }
    for (i, s) in psc.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            c.deny(format!("{pf}.sysctls[{i}].name"), &format!("sysctl {} is not allowed", s.name));
        }
    }
    if c.restricted() && psc.run_as_user == Some(0) {
        c.deny(format!("{pf}.runAsUser"), "0 (root) is not allowed");
    }
    for (k, v) in annotations {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v == "runtime/default" || v.starts_with("localhost/"))
        {
            c.deny(format!("spec.template.metadata.annotations[{k}]"), &format!("AppArmor profile {v} is not allowed"));
        }
    }
    let groups: [(&str, Vec<Container>); 3] = [
        ("containers", pod.containers.clone()),
        ("initContainers", pod.init_containers.clone().unwrap_or_default()),
        (
            "ephemeralContainers",
            pod.ephemeral_containers
                .iter()
                .flatten()
                .map(|e| Container {
                    name: e.name.clone(),
                    image: e.image.clone(),
                    ports: e.ports.clone(),
                    security_context: e.security_context.clone(),
                    ..Container::default()
                })
                .collect(),
        ),
    ];
    for (group, containers) in &groups {
        for (i, ctr) in containers.iter().enumerate() {
            container(&mut c, &format!("{SPEC}.{group}[{i}]"), ctr, &psc);
        }
    }
    for (i, v) in pod.volumes.iter().flatten().enumerate() {
        let kind = volume_kind(v);
        if !c.policy.volume_allowed(&kind) {
            let field = format!("{SPEC}.volumes[{i}].{kind}");
            c.deny(field, &format!("volume type {kind} is not allowed"));
        }
    }
    let sa = pod.service_account_name.as_deref().or(pod.service_account.as_deref()).unwrap_or("default");
    if !c.policy.service_accounts.iter().any(|s| s == sa) {
        let field = if pod.service_account_name.is_some() { "serviceAccountName" } else { "serviceAccount" };
        let allowed = c.policy.service_accounts.join(", ");
        c.deny(format!("{SPEC}.{field}"), &format!("ServiceAccount {sa} is not allowed (allowed: {allowed})"));
    }
    if !c.policy.automount_service_account_token && pod.automount_service_account_token != Some(false) {
        c.deny(format!("{SPEC}.automountServiceAccountToken"), "must be false (no ServiceAccount token is mounted)");
    }
    c.out
}

fn selinux(c: &mut Checker<'_>, field: &str, se: &k8s_openapi::api::core::v1::SELinuxOptions) {
    if !SELINUX_TYPES.contains(&se.type_.as_deref().unwrap_or("")) {
        c.deny(format!("{field}.type"), "this SELinux type is not allowed");
    }
    if se.user.is_some() {
        c.deny(format!("{field}.user"), "setting an SELinux user is not allowed");
    }
    if se.role.is_some() {
        c.deny(format!("{field}.role"), "setting an SELinux role is not allowed");
    }
}

fn container(c: &mut Checker<'_>, base: &str, ctr: &Container, pod: &k8s_openapi::api::core::v1::PodSecurityContext) {
    let sc: SecurityContext = ctr.security_context.clone().unwrap_or_default();
    let f = format!("{base}.securityContext");
    if sc.privileged == Some(true) {
        c.deny(format!("{f}.privileged"), "not allowed");
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        c.deny(format!("{f}.windowsOptions.hostProcess"), "not allowed");
    }
    if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
        c.deny(format!("{f}.procMount"), "only Default is allowed");
    }
    if let Some(se) = &sc.se_linux_options {
        selinux(c, &format!("{f}.seLinuxOptions"), se);
    }
    if sc.app_armor_profile.as_ref().is_some_and(|a| a.type_ == "Unconfined") {
        c.deny(format!("{f}.appArmorProfile.type"), "Unconfined is not allowed");
    }
    let seccomp = sc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
    if seccomp == Some("Unconfined") {
        c.deny(format!("{f}.seccompProfile.type"), "Unconfined is not allowed");
    }
    for (j, p) in ctr.ports.iter().flatten().enumerate() {
        if p.host_port.is_some_and(|h| h != 0) {
            c.deny(format!("{base}.ports[{j}].hostPort"), "host ports are not allowed");
        }
    }
    let added: Vec<String> = sc.capabilities.as_ref().and_then(|k| k.add.clone()).unwrap_or_default();
    let allowed_add: &[&str] = if c.restricted() { &["NET_BIND_SERVICE"] } else { BASELINE_CAPABILITIES };
    let bad: Vec<&String> = added.iter().filter(|a| !allowed_add.contains(&a.as_str())).collect();
    if !bad.is_empty() {
        let list: Vec<&str> = bad.iter().map(|s| s.as_str()).collect();
        c.deny(format!("{f}.capabilities.add"), &format!("adding {} is not allowed", list.join(", ")));
    }
    if let Some(image) = ctr.image.as_deref()
        && !c.policy.images.is_empty()
        && !c.policy.images.iter().any(|p| image.starts_with(p.as_str()))
    {
        let allowed = c.policy.images.join(", ");
        c.deny(format!("{base}.image"), &format!("image {image} is not from an allowed registry ({allowed})"));
    }
    if !c.restricted() {
        return;
    }
    if sc.allow_privilege_escalation != Some(false) {
        c.deny(format!("{f}.allowPrivilegeEscalation"), "must be false");
    }
    if sc.run_as_non_root.or(pod.run_as_non_root) != Some(true) {
        c.deny(format!("{f}.runAsNonRoot"), "must be true (here or in the pod's securityContext)");
    }
    if sc.run_as_user == Some(0) {
        c.deny(format!("{f}.runAsUser"), "0 (root) is not allowed");
    }
    let effective = seccomp.or(pod.seccomp_profile.as_ref().map(|s| s.type_.as_str()));
    if !matches!(effective, Some("RuntimeDefault" | "Localhost")) {
        c.deny(format!("{f}.seccompProfile.type"), "must be RuntimeDefault or Localhost (here or in the pod's)");
    }
    let drops_all =
        sc.capabilities.as_ref().and_then(|k| k.drop.as_ref()).is_some_and(|d| d.iter().any(|x| x == "ALL"));
    if !drops_all {
        c.deny(format!("{f}.capabilities.drop"), "must include ALL");
    }
}

/// The type of a volume: the name of its one source field (`emptyDir`, `hostPath`, ...).
pub fn volume_kind(v: &k8s_openapi::api::core::v1::Volume) -> String {
    let value = serde_json::to_value(v).unwrap_or_default();
    value
        .as_object()
        .and_then(|m| m.keys().find(|k| k.as_str() != "name").cloned())
        .unwrap_or_else(|| "emptyDir".to_string())
}

/// The label that marks a member namespace Marshal created itself.
pub const CREATED_LABEL: &str = "marshal.dev/created";
/// The Pod Security enforce label.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// Its version label.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// Whether Marshal may use member namespace `name`, given its labels if it exists (`None`: it does not, and
/// Marshal will create it).
pub fn namespace_allowed(
    policy: &WorkloadPolicy,
    name: &str,
    existing: Option<&BTreeMap<String, String>>,
) -> Result<(), Violation> {
    let Some(labels) = existing else { return Ok(()) };
    if labels.get(CREATED_LABEL).map(String::as_str) == Some("true") || policy.namespaces.iter().any(|n| n == name) {
        return Ok(());
    }
    Err(Violation {
        field: "spec.workload.namespace".into(),
        message: format!(
            "namespace {name} exists in the member and Marshal did not create it: the host's policy allows only \
             namespaces Marshal created (or those listed in workloadPolicy.namespaces)"
        ),
    })
}

/// The labels a namespace Marshal creates (or uses) carries for the level: the member's own Pod Security
/// admission then enforces it too.
pub fn namespace_labels(policy: &WorkloadPolicy) -> [(&'static str, &'static str); 2] {
    [(ENFORCE_LABEL, policy.pod_security.as_str()), (ENFORCE_VERSION_LABEL, "latest")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn safe() -> serde_json::Value {
        json!({
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.example.mil/a:1",
                            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        })
    }

    fn fields(policy: &WorkloadPolicy, spec: serde_json::Value) -> Vec<String> {
        let pod: PodSpec = serde_json::from_value(spec).unwrap();
        check_pod(policy, &pod, &BTreeMap::new()).into_iter().map(|v| v.field).collect()
    }

    fn with(path: &str, value: serde_json::Value) -> serde_json::Value {
        let mut s = safe();
        let parts: Vec<&str> = path.split('/').collect();
        let mut cur = &mut s;
        for p in &parts[..parts.len() - 1] {
            cur = match p.parse::<usize>() {
                Ok(i) => &mut cur[i],
                Err(_) => {
                    if cur.get(*p).is_none() {
                        cur[*p] = json!({});
                    }
                    &mut cur[*p]
                }
            };
        }
        cur[parts[parts.len() - 1]] = value;
        s
    }

    #[test]
    fn the_safe_template_passes_both_levels() {
        let restricted = WorkloadPolicy::default();
        assert!(fields(&restricted, safe()).is_empty());
        let baseline = WorkloadPolicy { pod_security: PodSecurityLevel::Baseline, ..Default::default() };
        assert!(fields(&baseline, safe()).is_empty());
    }

    #[test]
    fn each_attack_names_its_field() {
        let p = WorkloadPolicy::default();
        let cases = [
            (
                "containers/0/securityContext/privileged",
                json!(true),
                "spec.template.spec.containers[0].securityContext.privileged",
            ),
            ("hostNetwork", json!(true), "spec.template.spec.hostNetwork"),
            ("hostPID", json!(true), "spec.template.spec.hostPID"),
            ("hostIPC", json!(true), "spec.template.spec.hostIPC"),
            ("volumes", json!([{"name": "r", "hostPath": {"path": "/"}}]), "spec.template.spec.volumes[0].hostPath"),
            ("securityContext/runAsUser", json!(0), "spec.template.spec.securityContext.runAsUser"),
            (
                "containers/0/securityContext/capabilities/add",
                json!(["SYS_ADMIN"]),
                "spec.template.spec.containers[0].securityContext.capabilities.add",
            ),
            (
                "containers/0/securityContext/allowPrivilegeEscalation",
                json!(true),
                "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
            ),
            (
                "containers/0/ports",
                json!([{"containerPort": 80, "hostPort": 80}]),
                "spec.template.spec.containers[0].ports[0].hostPort",
            ),
            (
                "containers/0/securityContext/procMount",
                json!("Unmasked"),
                "spec.template.spec.containers[0].securityContext.procMount",
            ),
            (
                "securityContext/seccompProfile/type",
                json!("Unconfined"),
                "spec.template.spec.securityContext.seccompProfile.type",
            ),
            ("serviceAccountName", json!("admin"), "spec.template.spec.serviceAccountName"),
            ("automountServiceAccountToken", json!(true), "spec.template.spec.automountServiceAccountToken"),
            (
                "securityContext/sysctls",
                json!([{"name": "kernel.msgmax", "value": "1"}]),
                "spec.template.spec.securityContext.sysctls[0].name",
            ),
            (
                "securityContext/seLinuxOptions/type",
                json!("spc_t"),
                "spec.template.spec.securityContext.seLinuxOptions.type",
            ),
        ];
        for (path, value, field) in cases {
            let got = fields(&p, with(path, value));
            assert!(got.iter().any(|f| f == field), "{path}: {got:?}");
        }
    }

    #[test]
    fn restricted_needs_explicit_hardening_baseline_does_not() {
        let bare = json!({"automountServiceAccountToken": false, "containers": [{"name": "a", "image": "x"}]});
        let got = fields(&WorkloadPolicy::default(), bare.clone());
        for f in ["allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile.type", "capabilities.drop"] {
            assert!(got.iter().any(|g| g.ends_with(f)), "{f}: {got:?}");
        }
        let baseline = WorkloadPolicy { pod_security: PodSecurityLevel::Baseline, ..Default::default() };
        assert!(fields(&baseline, bare).is_empty());
        // Baseline still refuses what is privileged, and capabilities outside its list.
        let caps = with("containers/0/securityContext/capabilities/add", json!(["CHOWN", "SYS_ADMIN"]));
        let got = fields(&baseline, caps);
        assert_eq!(got, ["spec.template.spec.containers[0].securityContext.capabilities.add"]);
    }

    #[test]
    fn volumes_images_and_service_accounts() {
        let p = WorkloadPolicy {
            images: vec!["registry.example.mil/".into()],
            service_accounts: vec!["default".into(), "reader".into()],
            volumes: Some(vec!["emptyDir".into()]),
            ..Default::default()
        };
        assert!(p.validate().is_ok());
        let s = with("volumes", json!([{"name": "a", "emptyDir": {}}, {"name": "b", "secret": {"secretName": "s"}}]));
        assert_eq!(fields(&p, s), ["spec.template.spec.volumes[1].secret"]);
        let s = with("containers/0/image", json!("docker.io/evil:1"));
        assert_eq!(fields(&p, s), ["spec.template.spec.containers[0].image"]);
        assert!(fields(&p, with("serviceAccountName", json!("reader"))).is_empty());
        let allow = WorkloadPolicy { automount_service_account_token: true, ..Default::default() };
        assert!(fields(&allow, with("automountServiceAccountToken", json!(true))).is_empty());
        // A list that widens the level is an invalid host configuration, and so is a name that is no name.
        let wide = WorkloadPolicy { volumes: Some(vec!["hostPath".into()]), ..Default::default() };
        assert!(wide.validate().unwrap_err().contains("hostPath"));
        let typo = WorkloadPolicy { volumes: Some(vec!["emptydir".into()]), ..Default::default() };
        assert!(typo.validate().unwrap_err().contains("not a Kubernetes volume type"));
        let inject = WorkloadPolicy { images: vec!["x' + 'y".into()], ..Default::default() };
        assert!(inject.validate().is_err());
        assert_eq!(WorkloadPolicy::default().allowed_volumes(), RESTRICTED_VOLUMES);
        let baseline = WorkloadPolicy { pod_security: PodSecurityLevel::Baseline, ..Default::default() };
        assert_eq!(baseline.allowed_volumes().len(), ALL_VOLUMES.len() - 1);
        assert!(!baseline.allowed_volumes().contains(&"hostPath".to_string()));
    }

    #[test]
    fn messages_name_field_and_level() {
        let pod: PodSpec =
            serde_json::from_value(with("containers/0/securityContext/privileged", json!(true))).unwrap();
        let v = check_pod(&WorkloadPolicy::default(), &pod, &BTreeMap::new());
        assert_eq!(
            summary(&v),
            "spec.template.spec.containers[0].securityContext.privileged: not allowed under the host's policy (restricted)"
        );
    }

    #[test]
    fn namespaces_marshal_did_not_create_are_refused() {
        let p = WorkloadPolicy::default();
        assert!(namespace_allowed(&p, "new", None).is_ok());
        let marked: BTreeMap<String, String> = [(CREATED_LABEL.to_string(), "true".to_string())].into();
        assert!(namespace_allowed(&p, "mine", Some(&marked)).is_ok());
        let other = BTreeMap::new();
        let e = namespace_allowed(&p, "default", Some(&other)).unwrap_err();
        assert!(e.message.contains("Marshal did not create"), "{e}");
        let listed = WorkloadPolicy { namespaces: vec!["ops".into()], ..Default::default() };
        assert!(namespace_allowed(&listed, "ops", Some(&other)).is_ok());
    }
}
