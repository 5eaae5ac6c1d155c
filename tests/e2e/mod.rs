//! Helpers for the end-to-end tests: kubectl against the federation's clusters, polling, the controller
//! process and its metrics. Run inside the federation's network namespace (`e2e/federation run ...`).
#![allow(dead_code)]

pub mod agent;
pub mod attack;
pub mod fleet;
pub mod refusal;
pub mod storm;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kubeconfig of a cluster from the federation's environment (`hub`, `pol-1`, ...).
pub fn kubeconfig(cluster: &str) -> String {
    let var = format!("KUBECONFIG_{}", cluster.to_uppercase().replace('-', "_"));
    std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not set: run inside `e2e/federation run`"))
}

/// Runs kubectl against a cluster; Ok(stdout) or Err(stderr).
pub fn kubectl(cluster: &str, args: &[&str]) -> Result<String, String> {
    kubectl_stdin(cluster, args, None)
}

/// Runs kubectl with `input` on stdin.
pub fn kubectl_stdin(cluster: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig(cluster)).args(args);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl in PATH");
    if let Some(text) = input {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl ran");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `kubectl get -o json`, or None when not found.
pub fn get(cluster: &str, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    match kubectl(cluster, &a) {
        Ok(s) => serde_json::from_str(&s).ok(),
        Err(e) if e.contains("NotFound") || e.contains("not found") => None,
        Err(e) => panic!("kubectl get {args:?} on {cluster}: {e}"),
    }
}

/// Applies YAML to a cluster.
pub fn apply(cluster: &str, yaml: &str) -> Result<String, String> {
    kubectl_stdin(cluster, &["apply", "-f", "-"], Some(yaml))
}

/// Polls `f` every 500 ms until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_opt(timeout, f).unwrap_or_else(|| panic!("timed out after {}s waiting for {what}", timeout.as_secs()))
}

/// Polls `f` every 500 ms until it returns Some, or gives None after `timeout`.
pub fn wait_for_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The federation's control script.
pub fn federation(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/federation");
    let out = Command::new(script).args(args).output().expect("e2e/federation");
    assert!(out.status.success(), "e2e/federation {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A running `marshal controller`.
pub struct ControllerProcess {
    child: Child,
    /// Its metrics address.
    pub metrics_addr: String,
}

impl ControllerProcess {
    /// Starts `marshal controller` and waits for `/readyz`.
    pub fn start(metrics_port: u16, extra: &[&str]) -> Self {
        let mut p = Self::start_unready(metrics_port, extra);
        let state = std::env::var("MARSHAL_TB_STATE").unwrap_or_else(|_| "/tmp".into());
        wait_for("controller /readyz", Duration::from_secs(60), || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("marshal controller exited ({status}); see {state}/marshal-controller.log");
            }
            p.http("/readyz").filter(|b| b == "ok")
        });
        p
    }

    /// Starts `marshal controller` against the hub (logs to `$MARSHAL_TB_STATE/marshal-controller.log`) and
    /// waits only for its metrics endpoint.
    pub fn start_unready(metrics_port: u16, extra: &[&str]) -> Self {
        Self::start_with_kubeconfig(metrics_port, extra, &kubeconfig("hub"))
    }

    /// Starts `marshal controller` with its own hub kubeconfig (for example one through a link proxy) and waits
    /// only for its metrics endpoint.
    pub fn start_with_kubeconfig(metrics_port: u16, extra: &[&str], hub_kubeconfig: &str) -> Self {
        let metrics_addr = format!("127.0.0.1:{metrics_port}");
        let state = std::env::var("MARSHAL_TB_STATE").unwrap_or_else(|_| "/tmp".into());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{state}/marshal-controller.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_marshal"))
            .args(["controller", "--metrics-addr", &metrics_addr])
            .args(extra)
            .env("KUBECONFIG", hub_kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start marshal controller");
        let _ = std::fs::write(format!("{state}/marshal-controller.pid"), child.id().to_string());
        let p = ControllerProcess { child, metrics_addr };
        wait_for("controller /metrics", Duration::from_secs(60), || p.http("/metrics"));
        p
    }

    /// GET a path on the metrics server.
    pub fn http(&self, path: &str) -> Option<String> {
        http_get(&self.metrics_addr, path)
    }

    /// Sum of `marshal_api_writes_total` over the series `keep` accepts (by their label text).
    pub fn writes(&self, keep: impl Fn(&str) -> bool) -> f64 {
        let text = self.http("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("marshal_api_writes_total{"))
            .filter(|l| keep(l))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process.
    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// GET a path from a metrics server: the body of a 200 answer.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, rest) = body.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| rest.to_string())
}

/// Every write except heartbeat renewals (which are the liveness mechanism, expected every interval).
pub fn not_heartbeat(series: &str) -> bool {
    !series.contains("verb=\"renew\"")
}

/// Status placements of a workload as `cluster/tier=replicas`.
pub fn placements(mw: &Value) -> Vec<String> {
    mw["status"]["placements"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{}/{}={}",
                        p["cluster"].as_str().unwrap_or(""),
                        p["tier"].as_str().unwrap_or(""),
                        p["replicas"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The status of a condition.
pub fn condition(obj: &Value, type_: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
}

/// Members of the federation.
pub const MEMBERS: [&str; 3] = ["pol-1", "deu-1", "ltu-1"];

/// A member's Deployment of a workload, if any.
pub fn member_deployment(cluster: &str, ns: &str, name: &str) -> Option<Value> {
    get(cluster, &["deployment", "-n", ns, name])
}
