//! `marshal agent`: pull mode. The agent runs in (or beside) a member cluster with the member's in-cluster
//! config or `--kubeconfig`, and reaches the hub with `--hub-kubeconfig` as the ServiceAccount that
//! `marshal agent rbac` creates (it holds no key of the member on the hub, and the host can cut it off).
//!
//! It runs the same syncer as push mode ([`crate::sync::run_member`]: Assignments, heartbeat Lease, capacity)
//! plus the link probes ([`probe`]). The member's own clearance — the `--clearance` file, or else the member
//! ConfigMap `marshal-system/marshal-clearance` — is authoritative; the hub's MemberCluster spec is never
//! used. Only Assignments signed by a key in `--trusted-keys` are applied. When the hub is unreachable the
//! syncer keeps its last picture: nothing already running is deleted because the hub went silent.

pub mod guard;
pub mod probe;
pub mod rbac;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::signing::{KeyRing, Trust};
use crate::sync::credentials::{CONNECT_TIMEOUT, WRITE_TIMEOUT, member_client, vet_kubeconfig};
use crate::sync::recheck::{Authority, ClearanceSource, install_authority, parse_clearance_file};
use crate::sync::{SyncConfig, SyncContext, run_member};

/// Flags of `marshal agent` (running the agent).
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// This member cluster's name (its MemberCluster on the hub).
    #[arg(long)]
    pub cluster: String,
    /// Kubeconfig for the hub (a token of the agent's ServiceAccount; never an admin credential).
    #[arg(long)]
    pub hub_kubeconfig: PathBuf,
    /// Kubeconfig for the member; default: in-cluster config (or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The member's own clearance (YAML: nation, clearance, admission, policies); re-read at every check.
    /// Without it the member ConfigMap marshal-system/marshal-clearance is required.
    #[arg(long)]
    pub clearance: Option<PathBuf>,
    /// The hub's trusted public keys (`ed25519:<base64>` lines); re-read at every check, so a key rotation
    /// needs no restart.
    #[arg(long)]
    pub trusted_keys: PathBuf,
    /// Where /metrics, /healthz and /readyz listen. Loopback by default; the member chart binds the pod's own
    /// address (and a NetworkPolicy admits only the scraper).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub metrics_addr: std::net::SocketAddr,
    /// Heartbeat Lease renewal (seconds).
    #[arg(long, default_value_t = 5)]
    pub heartbeat_interval: u64,
    /// The Lease duration written for the hub (seconds; match the controller's --cluster-grace).
    #[arg(long, default_value_t = 15)]
    pub cluster_grace: u64,
    /// Capacity observation (seconds).
    #[arg(long, default_value_t = 10)]
    pub capacity_interval: u64,
    /// Link probe round (seconds).
    #[arg(long, default_value_t = 10)]
    pub probe_interval: u64,
    /// One TCP connect's timeout (milliseconds); a timeout counts as a lost sample.
    #[arg(long, default_value_t = 1000)]
    pub probe_timeout_ms: u64,
    /// TCP connects per round.
    #[arg(long, default_value_t = 3)]
    pub probe_samples: usize,
    /// Median RTT above this (ms) reports the link Degraded (any lost sample does too; all lost: Down).
    #[arg(long, default_value_t = 50)]
    pub link_degraded_rtt_ms: u32,
    /// Links to probe (`<cluster>.<to>`); default: those this agent's RBAC lets it report. Only those with an
    /// address pinned in the host configuration (`probes:` in `--clearance`) are dialled.
    #[arg(long = "link")]
    pub links: Vec<String>,
}

/// `marshal agent [rbac | guard]`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum AgentCommand {
    /// Print the hub RBAC of one agent: Namespace, ServiceAccount, Role, ClusterRole and bindings.
    Rbac {
        /// The member cluster.
        #[arg(long)]
        cluster: String,
        /// Clusters this agent probes links to (links `<cluster>.<to>`).
        #[arg(long = "link-to", value_delimiter = ',')]
        link_to: Vec<String>,
        /// Also read the links whose `from` is this cluster from the hub (ambient kubeconfig).
        #[arg(long)]
        links_from_hub: bool,
    },
    /// Print the member guard (ValidatingAdmissionPolicy and binding) for a member's own host configuration.
    Guard {
        /// The member cluster (named in the guard's messages).
        #[arg(long)]
        cluster: String,
        /// The member's own host configuration file: its clearance and workload policy are written into the policy.
        #[arg(long)]
        clearance: PathBuf,
        /// The syncer's identity in the member (repeatable): every Deployment it writes is checked, labels or not.
        /// Default: the member chart's agent, `system:serviceaccount:marshal-system:marshal-agent`.
        #[arg(long = "syncer-user")]
        syncer_users: Vec<String>,
    },
}

/// Validates the local files and installs the process's authority. Errors name the file.
pub fn install(args: &RunArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.trusted_keys)
        .map_err(|e| format!("--trusted-keys {}: {e}", args.trusted_keys.display()))?;
    let ring = KeyRing::parse(&text).map_err(|e| format!("--trusted-keys {}: {e}", args.trusted_keys.display()))?;
    let clearance = match &args.clearance {
        Some(p) => {
            let path = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| format!("--clearance {path}: {e}"))?;
            let c = parse_clearance_file(&text, &path)?;
            info!(classifications = ?c.clearance.classifications, file = %path, "member clearance");
            ClearanceSource::File(p.clone())
        }
        None => {
            info!("member clearance from the member ConfigMap marshal-system/marshal-clearance");
            ClearanceSource::ConfigMap
        }
    };
    info!(keys = ?ring.ids(), "trusted signing keys");
    install_authority(Authority { clearance, trust: Trust::File(args.trusted_keys.clone()) });
    Ok(())
}

/// Hub requests may wait this long for bytes: above the watch timeout the API server applies (290 s), so
/// idle watches are closed by the server, not cut by the client.
const HUB_READ_TIMEOUT: Duration = Duration::from_secs(300);

async fn client_from_file(path: &PathBuf, what: &str) -> Result<kube::Client, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    member_client(&text).await.map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The hub client: the kubeconfig is vetted like a member's (TLS verified with embedded CA data, embedded
/// credentials), with a read timeout that lets watches idle.
async fn hub_client(path: &PathBuf) -> Result<kube::Client, String> {
    let what = |e: String| format!("--hub-kubeconfig {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
    let kc = vet_kubeconfig(&text).map_err(|e| what(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| what(e.to_string()))?;
    config.accept_invalid_certs = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(HUB_READ_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| what(e.to_string()))
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(args: RunArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<(), String> {
    install(&args)?;
    let hub = hub_client(&args.hub_kubeconfig).await?;
    let member = match &args.kubeconfig {
        Some(p) => client_from_file(p, "--kubeconfig").await?,
        None => kube::Client::try_default().await.map_err(|e| format!("member in-cluster config: {e}"))?,
    };
    let metrics = crate::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let ready = Arc::new(AtomicBool::new(false));
    let http = crate::http::HttpState { metrics: metrics.clone(), ready: ready.clone() };
    let addr = args.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = crate::http::serve(addr, http).await {
            tracing::error!(error = %e, %addr, "cannot serve metrics");
            std::process::exit(2);
        }
    });
    let ctx = Arc::new(SyncContext {
        hub: hub.clone(),
        metrics: metrics.clone(),
        config: SyncConfig {
            heartbeat_interval: Duration::from_secs(args.heartbeat_interval),
            cluster_grace: Duration::from_secs(args.cluster_grace),
            capacity_interval: Duration::from_secs(args.capacity_interval),
            ..SyncConfig::default()
        },
    });
    let cluster = args.cluster.clone();
    let probes = probe::ProbeConfig {
        interval: Duration::from_secs(args.probe_interval.max(1)),
        timeout: Duration::from_millis(args.probe_timeout_ms.max(1)),
        degraded_rtt_ms: args.link_degraded_rtt_ms,
        samples: args.probe_samples.max(1),
        links: args.links.clone(),
        pins: args.clearance.clone(),
    };
    let probe_task = tokio::spawn(probe::run(hub, metrics.clone(), cluster.clone(), probes));
    ready.store(true, Ordering::Relaxed);
    info!(%cluster, "agent started");
    let syncer = async {
        let mut backoff = Duration::from_secs(1);
        loop {
            // run_member returns only on a fatal error (a watch stream ended); its stores are rebuilt from a
            // full list before anything is acted on, so a hub outage never deletes what runs.
            if let Err(e) = run_member(ctx.clone(), cluster.clone(), member.clone(), format!("agent/{cluster}")).await {
                warn!(%cluster, error = %e, category = e.category(), ?backoff, "syncer failed; restarting");
                metrics.reconcile_errors_total.with_label_values(&["syncer", e.category()]).inc();
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    };
    tokio::select! {
        _ = syncer => {}
        _ = shutdown => info!(%cluster, "agent stopping"),
    }
    probe_task.abort();
    Ok(())
}

/// `marshal agent rbac`: the YAML, with the links from flags and (optionally) the hub.
pub async fn rbac_yaml(cluster: &str, link_to: &[String], from_hub: bool) -> Result<String, String> {
    let mut to: Vec<String> = link_to.to_vec();
    if from_hub {
        let client = kube::Client::try_default().await.map_err(|e| format!("hub: {e}"))?;
        let links = kube::Api::<crate::api::ClusterLink>::all(client)
            .list(&Default::default())
            .await
            .map_err(|e| format!("list ClusterLinks: {e}"))?;
        to.extend(links.items.into_iter().filter(|l| l.spec.from == cluster).map(|l| l.spec.to));
    }
    rbac::yaml(cluster, &rbac::link_names(cluster, &to)).map_err(|e| e.to_string())
}

/// The agent's identity in its member when the member chart installs it.
pub const DEFAULT_SYNCER_USER: &str = "system:serviceaccount:marshal-system:marshal-agent";

/// `marshal agent guard`: the policy for the member's own host configuration file.
pub fn guard_yaml(cluster: &str, clearance: &std::path::Path, syncers: &[String]) -> Result<String, String> {
    let path = clearance.display().to_string();
    let text = std::fs::read_to_string(clearance).map_err(|e| format!("--clearance {path}: {e}"))?;
    let syncers = if syncers.is_empty() { vec![DEFAULT_SYNCER_USER.to_string()] } else { syncers.to_vec() };
    guard::policy_yaml(cluster, &parse_clearance_file(&text, &path)?, &syncers)
}
