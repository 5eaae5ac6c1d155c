//! Link probes: for each ClusterLink whose `from` is this agent's cluster and which has `spec.probe.address`,
//! measure TCP connect round-trip time every interval and write `status.state`, `rttMs`, `observedAt` and
//! `reporter` (bandwidth is left to external monitors).
//!
//! A probe round makes [`ProbeConfig::samples`] connects: all fail → `Down`; some fail, or the median RTT is
//! above `degraded_rtt_ms` → `Degraded`; otherwise `Up`. Writes: only when the state changes, when the RTT
//! moves to another bucket (see [`rtt_bucket`]: 1, 2, 5, 10, 20, 50 … ms boundaries), or when the written
//! `observedAt` is older than a third of the link's `staleAfterSeconds` (a coarse refresh, so the engine never
//! sees the fact go stale while the link is steady). A steady link costs one status write per
//! `staleAfterSeconds / 3`, nothing more.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::api::{ClusterLink, LinkState, SYNCER_FIELD_MANAGER, cluster_namespace};
use crate::metrics::Metrics;

/// Probe settings (flags of `marshal agent`).
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// One connect attempt's timeout (a timeout counts as a failure).
    pub timeout: Duration,
    /// Median RTT above this is `Degraded`.
    pub degraded_rtt_ms: u32,
    /// Connects per round.
    pub samples: usize,
    /// Links to probe; empty: those whose status this agent may patch (SelfSubjectRulesReview).
    pub links: Vec<String>,
    /// The host's configuration file holding its pinned probe targets (`probes:`), re-read every round. Without
    /// one (or without a pin for a link) nothing is dialled: the agent never dials an address the hub chose.
    pub pins: Option<std::path::PathBuf>,
}

/// The probe targets the host pinned, from its configuration file (an unreadable file pins nothing).
pub fn pinned(file: Option<&std::path::Path>) -> std::collections::BTreeMap<String, String> {
    let Some(path) = file else { return Default::default() };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| crate::sync::recheck::parse_clearance_file(&t, &path.display().to_string()).ok())
        .map(|c| c.probes)
        .unwrap_or_default()
}

/// Where to dial for `link` (`hub_address`: the ClusterLink's `spec.probe.address`): the host's pin, and whether
/// the hub asked for another address (refused: it is never dialled).
pub fn target(
    link: &str,
    hub_address: Option<&str>,
    pins: &std::collections::BTreeMap<String, String>,
) -> (Option<String>, bool) {
    let pin = pins.get(link).cloned();
    let refused = hub_address.is_some_and(|a| pin.as_deref() != Some(a));
    (pin, refused)
}

/// Boundaries of the RTT buckets (ms): a change inside a bucket is not written.
const BUCKETS: [u32; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// The bucket of an RTT: the number of boundaries it reaches.
pub fn rtt_bucket(ms: u32) -> usize {
    BUCKETS.iter().take_while(|b| ms >= **b).count()
}

/// State and median RTT (ms, rounded up) of one round.
pub fn classify(samples: &[Option<Duration>], degraded_rtt_ms: u32) -> (LinkState, Option<u32>) {
    let mut ok: Vec<Duration> = samples.iter().flatten().copied().collect();
    if ok.is_empty() {
        return (LinkState::Down, None);
    }
    ok.sort();
    let median = ok[ok.len() / 2];
    let ms = u32::try_from(median.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
    let state = if ok.len() < samples.len() || ms > degraded_rtt_ms { LinkState::Degraded } else { LinkState::Up };
    (state, Some(ms))
}

/// Whether a measurement must be written over the link's current status.
pub fn should_write(
    link: &ClusterLink,
    state: LinkState,
    rtt_ms: Option<u32>,
    reporter: &str,
    now: jiff::Timestamp,
) -> bool {
    let Some(s) = &link.status else { return true };
    if s.state != state || s.reporter.as_deref() != Some(reporter) {
        return true;
    }
    if s.rtt_ms.map(rtt_bucket) != rtt_ms.map(rtt_bucket) {
        return true;
    }
    let refresh_ms = i64::from(link.spec.stale_after_seconds) * 1000 / 3;
    match &s.observed_at {
        Some(t) => now.as_millisecond() - t.0.as_millisecond() >= refresh_ms,
        None => true,
    }
}

/// One TCP connect: its duration, or None on failure or timeout.
async fn connect(address: &str, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Some(start.elapsed()),
        _ => None,
    }
}

/// The links whose status this identity may patch, from a SelfSubjectRulesReview in its hub namespace.
async fn discover(hub: &Client, cluster: &str) -> Result<Vec<String>, kube::Error> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(cluster_namespace(cluster)) },
        ..Default::default()
    };
    let r = Api::<SelfSubjectRulesReview>::all(hub.clone()).create(&PostParams::default(), &review).await?;
    Ok(super::rbac::probed_links(cluster, &r.status.map(|s| s.resource_rules).unwrap_or_default()))
}

/// Re-discover the links this often.
const DISCOVER_EVERY: Duration = Duration::from_secs(300);

/// Probes every round until the process ends. Failures to reach the hub are logged and retried.
pub async fn run(hub: Client, metrics: Metrics, cluster: String, cfg: ProbeConfig) {
    let reporter = format!("agent/{cluster}");
    let api: Api<ClusterLink> = Api::all(hub.clone());
    let mut links = cfg.links.clone();
    let mut discovered_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if cfg.links.is_empty() && discovered_at.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY) {
            match discover(&hub, &cluster).await {
                Ok(found) => {
                    if found != links {
                        info!(%cluster, links = ?found, "links to probe (from this agent's RBAC)");
                    }
                    links = found;
                    discovered_at = Some(Instant::now());
                }
                Err(e) => debug!(%cluster, error = %e, "cannot discover links; retrying"),
            }
        }
        for name in &links {
            let link = match api.get_opt(name).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    debug!(%cluster, link = %name, error = %e, "cannot read link");
                    continue;
                }
            };
            if link.spec.from != cluster {
                continue;
            }
            let hub_address = link.spec.probe.as_ref().map(|p| p.address.as_str());
            let (pin, refused) = target(name, hub_address, &pinned(cfg.pins.as_deref()));
            if refused {
                metrics.probe_refusals_total.with_label_values(&[name]).inc();
                warn!(%cluster, link = %name, hub = ?hub_address, pinned = ?pin,
                      "the hub's probe address is not one the host pinned: not dialled");
            }
            let Some(address) = pin else { continue };
            let mut samples = Vec::with_capacity(cfg.samples);
            for _ in 0..cfg.samples.max(1) {
                samples.push(connect(&address, cfg.timeout).await);
            }
            let (state, rtt) = classify(&samples, cfg.degraded_rtt_ms);
            let to = link.spec.to.as_str();
            metrics.link_state.with_label_values(&[&cluster, to]).set(state_value(state));
            if let Some(ms) = rtt {
                metrics.link_rtt_seconds.with_label_values(&[&cluster, to]).set(f64::from(ms) / 1000.0);
            }
            let now = jiff::Timestamp::now();
            if !should_write(&link, state, rtt, &reporter, now) {
                continue;
            }
            let mut status = json!({"state": state, "observedAt": Time(now), "reporter": reporter});
            if let Some(ms) = rtt {
                status["rttMs"] = json!(ms);
            }
            let body = json!({
                "apiVersion": ClusterLink::api_version(&()), "kind": ClusterLink::kind(&()),
                "metadata": {"name": name}, "status": status,
            });
            match api.patch_status(name, &PatchParams::apply(SYNCER_FIELD_MANAGER).force(), &Patch::Apply(&body)).await
            {
                Ok(_) => {
                    metrics.write("hub", "apply", "clusterlinks/status");
                    debug!(%cluster, link = %name, ?state, ?rtt, "link status written");
                }
                Err(e) => warn!(%cluster, link = %name, error = %e, "link status not written"),
            }
        }
    }
}

/// `marshal_link_state` value: 0 Unknown, 1 Down, 2 Degraded, 3 Up.
pub fn state_value(s: LinkState) -> i64 {
    match s {
        LinkState::Unknown => 0,
        LinkState::Down => 1,
        LinkState::Degraded => 2,
        LinkState::Up => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn classify_states() {
        assert_eq!(classify(&[None, None, None], 50), (LinkState::Down, None));
        assert_eq!(classify(&[ms(3), ms(5), ms(4)], 50), (LinkState::Up, Some(4)));
        assert_eq!(classify(&[ms(60), ms(70), ms(80)], 50), (LinkState::Degraded, Some(70)));
        assert_eq!(classify(&[ms(3), None, ms(4)], 50), (LinkState::Degraded, Some(4)));
        assert_eq!(classify(&[Some(Duration::from_micros(300))], 50), (LinkState::Up, Some(1)));
    }

    #[test]
    fn only_pinned_addresses_are_dialled() {
        let pins: std::collections::BTreeMap<String, String> =
            [("ltu-1.pol-1".to_string(), "10.0.0.1:443".to_string())].into();
        assert_eq!(target("ltu-1.pol-1", Some("10.0.0.1:443"), &pins), (Some("10.0.0.1:443".into()), false));
        assert_eq!(target("ltu-1.pol-1", None, &pins), (Some("10.0.0.1:443".into()), false));
        assert_eq!(target("ltu-1.pol-1", Some("203.0.113.9:22"), &pins), (Some("10.0.0.1:443".into()), true));
        assert_eq!(target("ltu-1.deu-1", Some("203.0.113.9:22"), &pins), (None, true));
        assert_eq!(target("ltu-1.deu-1", None, &pins), (None, false));
        assert!(pinned(None).is_empty());
    }

    #[test]
    fn buckets() {
        assert_eq!(rtt_bucket(0), 0);
        assert_eq!(rtt_bucket(1), 1);
        assert_eq!(rtt_bucket(12), rtt_bucket(19));
        assert_ne!(rtt_bucket(19), rtt_bucket(20));
        assert_eq!(rtt_bucket(9000), BUCKETS.len());
    }

    fn link(status: serde_json::Value) -> ClusterLink {
        serde_json::from_value(json!({
            "apiVersion": "marshal.dev/v1alpha1", "kind": "ClusterLink", "metadata": {"name": "ltu-1.pol-1"},
            "spec": {"from": "ltu-1", "to": "pol-1", "probe": {"address": "127.0.0.1:1"}, "staleAfterSeconds": 60},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn writes_only_on_change_or_refresh() {
        let t0 = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        let l = link(json!({"state": "Up", "rttMs": 12, "observedAt": t0.to_string(), "reporter": "agent/ltu-1"}));
        let r = "agent/ltu-1";
        assert!(!should_write(&l, LinkState::Up, Some(15), r, at(5)), "same bucket, fresh");
        assert!(should_write(&l, LinkState::Up, Some(25), r, at(5)), "bucket changed");
        assert!(should_write(&l, LinkState::Degraded, Some(12), r, at(5)), "state changed");
        assert!(should_write(&l, LinkState::Up, Some(12), "monitor/x", at(5)), "another reporter wrote last");
        assert!(!should_write(&l, LinkState::Up, Some(12), r, at(19)));
        assert!(should_write(&l, LinkState::Up, Some(12), r, at(20)), "refresh at staleAfterSeconds / 3");
        assert!(should_write(&link(serde_json::Value::Null), LinkState::Down, None, r, at(0)));
    }
}
