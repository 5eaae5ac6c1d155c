//! The syncer: one per member cluster. It re-checks and applies the member's Assignments, reports their
//! readiness, the member's capacity and a heartbeat. Push mode runs it inside the hub controller with a
//! kubeconfig Secret ([`run_push`]); pull mode (`marshal agent`) runs [`run_member`] inside the member.

pub mod apply;
pub mod assignments;
pub mod budget;
pub mod capacity;
pub mod credentials;
pub mod drift;
pub mod error;
pub mod freshness;
pub mod heartbeat;
pub mod host_config;
pub mod host_policy;
pub mod member_objects;
pub mod member_status;
pub mod recheck;
pub mod supervisor;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use error::Error;
pub use supervisor::run_push;

/// Intervals of the syncer.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Heartbeat Lease renewal (default 5 s).
    pub heartbeat_interval: Duration,
    /// A Lease older than this makes the cluster unreachable; written as `leaseDurationSeconds` (default 15 s).
    pub cluster_grace: Duration,
    /// Capacity observation (default 10 s); Node changes trigger an observation at once.
    pub capacity_interval: Duration,
    /// Write budget of each member (default 20 writes/s, burst 20).
    pub write_budget: budget::Budget,
    /// The hub's signing-key Secret (`NAMESPACE/NAME`): never accepted as a member kubeconfig Secret.
    pub signing_secret: Option<String>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            heartbeat_interval: Duration::from_secs(5),
            cluster_grace: Duration::from_secs(15),
            capacity_interval: Duration::from_secs(10),
            write_budget: budget::Budget::default(),
            signing_secret: None,
        }
    }
}

/// What every syncer shares.
pub struct SyncContext {
    /// Hub client.
    pub hub: kube::Client,
    /// Metrics (writes, refusals, errors).
    pub metrics: crate::metrics::Metrics,
    /// Intervals.
    pub config: SyncConfig,
}

/// Runs everything for one member with an already-built member client: heartbeat, capacity and the
/// Assignment loop, concurrently. `identity` is the Lease holder, `syncer/<cluster>` or `agent/<cluster>`.
/// Returns only on a fatal error; transient failures are retried inside.
pub async fn run_member(
    ctx: Arc<SyncContext>,
    cluster: String,
    member: kube::Client,
    identity: String,
) -> Result<(), Error> {
    let member = budget::budgeted(member, ctx.config.write_budget, ctx.metrics.clone(), &cluster);
    let up = Arc::new(AtomicBool::new(false));
    tokio::try_join!(
        heartbeat::run(ctx.clone(), cluster.clone(), member.clone(), identity.clone(), up.clone()),
        capacity::run(ctx.clone(), cluster.clone(), member.clone()),
        assignments::run(ctx.clone(), cluster.clone(), member.clone(), identity.clone(), up),
    )?;
    Ok(())
}
