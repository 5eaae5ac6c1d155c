//! The pull-mode agent as the e2e tests run it: ltu-1's `marshal agent` process, its hub identity (a token of
//! the ServiceAccount `marshal-ltu-1/marshal-agent`) and the helpers that ask what that identity may do.

use std::process::{Child, Command};
use std::time::Duration;

use super::{http_get, kubeconfig, wait_for};

/// The agent's metrics address.
pub const AGENT_METRICS: &str = "127.0.0.1:18181";
/// The agent's hub identity.
pub const AGENT_USER: &str = "system:serviceaccount:marshal-ltu-1:marshal-agent";

/// The federation state directory.
pub fn state() -> String {
    std::env::var("MARSHAL_TB_STATE").unwrap_or_else(|_| "/tmp/marshal-tb".into())
}

/// The agent's working directory (clearance, trusted keys, hub kubeconfig), created on first use.
pub fn dir() -> String {
    let d = format!("{}/agent", state());
    std::fs::create_dir_all(&d).expect("agent dir");
    d
}

/// A variable `e2e/federation run` sets.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} not set: run inside `e2e/federation run`"))
}

/// Runs the marshal binary; Ok(stdout) or Err(stderr).
pub fn marshal(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(args)
        .env("KUBECONFIG", kubeconfig("hub"))
        .output()
        .expect("marshal binary");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// kubectl with an explicit kubeconfig file.
pub fn kubectl_as(kc: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kc).args(args).output().expect("kubectl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `kubectl auth can-i` as the agent's ServiceAccount (it prints yes or no, and exits 1 on no).
pub fn can_i(args: &[&str]) -> bool {
    let out = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig("hub"), "auth", "can-i", "--as", AGENT_USER])
        .args(args)
        .output()
        .expect("kubectl");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("can-i {args:?}: {other} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A kubeconfig for the hub with a token of the agent's ServiceAccount (server and CA from the admin one).
pub fn agent_hub_kubeconfig() -> String {
    super::attack::token_kubeconfig("marshal-ltu-1", "marshal-agent", "hub.kubeconfig")
}

/// A running `marshal agent` for ltu-1.
pub struct Agent {
    child: Child,
}

impl Agent {
    pub fn start(hub_kc: &str) -> Agent {
        let d = dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}/marshal-agent.log", state()))
            .expect("log");
        let member_kc = env("MARSHAL_TB_MEMBER_KUBECONFIG_LTU_1");
        let child = Command::new(env!("CARGO_BIN_EXE_marshal"))
            .args(["agent", "--cluster", "ltu-1", "--hub-kubeconfig", hub_kc, "--kubeconfig", &member_kc])
            .args(["--clearance", &format!("{d}/clearance.yaml"), "--trusted-keys", &format!("{d}/trusted.pub")])
            .args(["--metrics-addr", AGENT_METRICS, "--probe-interval", "2"])
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info,kube=warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start marshal agent");
        let _ = std::fs::write(format!("{}/marshal-agent.pid", state()), child.id().to_string());
        let a = Agent { child };
        wait_for("agent /metrics", Duration::from_secs(30), || a.metrics());
        a
    }

    /// The agent's `/metrics` text.
    pub fn metrics(&self) -> Option<String> {
        http_get(AGENT_METRICS, "/metrics")
    }

    /// Sum of the agent's `marshal_assignment_refusals_total` series with this reason.
    pub fn refusals(&self, reason: &str) -> f64 {
        let needle = format!("reason=\"{reason}\"");
        self.metrics()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("marshal_assignment_refusals_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
