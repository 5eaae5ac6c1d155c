//! Prometheus metrics (prefix `marshal_`, bounded labels: never object names).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Marshal exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles per controller.
    pub reconcile_total: IntCounterVec,
    /// Failed reconciles per controller and static error category.
    pub reconcile_errors_total: IntCounterVec,
    /// Reconcile latency per controller.
    pub reconcile_duration_seconds: HistogramVec,
    /// Time spent in the pure engine per decision.
    pub decision_duration_seconds: Histogram,
    /// Workloads per phase.
    pub workloads: IntGaugeVec,
    /// Replicas placed per cluster and tier.
    pub placed_replicas: IntGaugeVec,
    /// 1 when the cluster's heartbeat is fresh.
    pub cluster_reachable: IntGaugeVec,
    /// Age of the cluster's last heartbeat.
    pub cluster_heartbeat_age_seconds: prometheus::GaugeVec,
    /// Free capacity per cluster, tier and resource (cpu in cores, memory in bytes, pods).
    pub cluster_free: prometheus::GaugeVec,
    /// Link state (0 Unknown, 1 Down, 2 Degraded, 3 Up).
    pub link_state: IntGaugeVec,
    /// Link RTT.
    pub link_rtt_seconds: prometheus::GaugeVec,
    /// Replica moves per reason (link, unreachable, capacity, failback, spec, policy).
    pub replacements_total: IntCounterVec,
    /// Backoffs started because a replacement was not Ready in time (or failed) on a cluster, per cluster.
    pub not_ready_backoffs_total: IntCounterVec,
    /// Unreachable detected → replacement ready.
    pub failover_seconds: Histogram,
    /// Filter rejections per filter.
    pub filter_rejections_total: IntCounterVec,
    /// Assignments a member refused, per cluster and reason.
    pub assignment_refusals_total: IntCounterVec,
    /// API writes per target (`hub` or `member`) and verb.
    pub api_writes_total: IntCounterVec,
    /// Seconds member writes waited for the member's write budget, per cluster.
    pub write_budget_wait_seconds_total: prometheus::CounterVec,
    /// 1 while a fleet freeze is in force.
    pub fleet_frozen: IntGauge,
    /// Member objects whose removal is held (a mass deletion waiting for confirmation), per cluster.
    pub orphans_held: IntGaugeVec,
    /// 1 while this replica leads.
    pub leader: IntGauge,
    /// Objects a reflector could not read (skipped), per kind.
    pub unreadable_objects_total: IntCounterVec,
    /// Assignments the controller ignored as not its own (wrong namespace, name or workload UID), per reason.
    pub assignments_ignored_total: IntCounterVec,
    /// Assignments the controller deleted because their workload is gone (or is another one now), per reason.
    pub assignments_orphaned_total: IntCounterVec,
    /// Link probes the agent refused to dial (an address its host did not pin), per link.
    pub probe_refusals_total: IntCounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("marshal_{name}"), help)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |n: &str, h: &str, l: &[&str]| IntCounterVec::new(opts(n, h), l);
        let gauge = |n: &str, h: &str, l: &[&str]| IntGaugeVec::new(opts(n, h), l);
        let fgauge = |n: &str, h: &str, l: &[&str]| prometheus::GaugeVec::new(opts(n, h), l);
        let m = Metrics {
            reconcile_total: counter("reconcile_total", "Reconciles per controller.", &["controller"])?,
            reconcile_errors_total: counter(
                "reconcile_errors_total",
                "Failed reconciles per controller and error category.",
                &["controller", "category"],
            )?,
            reconcile_duration_seconds: HistogramVec::new(
                HistogramOpts::new("marshal_reconcile_duration_seconds", "Reconcile latency.")
                    .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["controller"],
            )?,
            decision_duration_seconds: Histogram::with_opts(
                HistogramOpts::new("marshal_decision_duration_seconds", "Placement engine time per decision.")
                    .buckets(vec![0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01]),
            )?,
            workloads: gauge("workloads", "MissionWorkloads per phase.", &["phase"])?,
            placed_replicas: gauge("placed_replicas", "Replicas placed per cluster and tier.", &["cluster", "tier"])?,
            cluster_reachable: gauge("cluster_reachable", "1 when the cluster's heartbeat is fresh.", &["cluster"])?,
            cluster_heartbeat_age_seconds: fgauge(
                "cluster_heartbeat_age_seconds",
                "Age of the cluster's last heartbeat.",
                &["cluster"],
            )?,
            cluster_free: fgauge(
                "cluster_free",
                "Free capacity per tier and resource.",
                &["cluster", "tier", "resource"],
            )?,
            link_state: gauge("link_state", "Link state: 0 Unknown, 1 Down, 2 Degraded, 3 Up.", &["from", "to"])?,
            link_rtt_seconds: fgauge("link_rtt_seconds", "Link round-trip time.", &["from", "to"])?,
            replacements_total: counter("replacements_total", "Replica moves per reason.", &["reason"])?,
            not_ready_backoffs_total: counter(
                "not_ready_backoffs_total",
                "Clusters passed over for a workload because a replacement there was not Ready in time or failed.",
                &["cluster"],
            )?,
            failover_seconds: Histogram::with_opts(
                HistogramOpts::new("marshal_failover_seconds", "Unreachable detected until the replacement is ready.")
                    .buckets(vec![5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0]),
            )?,
            filter_rejections_total: counter(
                "filter_rejections_total",
                "Candidates rejected per filter.",
                &["filter"],
            )?,
            assignment_refusals_total: counter(
                "assignment_refusals_total",
                "Assignments refused by members.",
                &["cluster", "reason"],
            )?,
            api_writes_total: counter(
                "api_writes_total",
                "API writes per target (hub or member), verb and resource.",
                &["target", "verb", "resource"],
            )?,
            write_budget_wait_seconds_total: prometheus::CounterVec::new(
                opts("write_budget_wait_seconds_total", "Seconds member writes waited for the write budget."),
                &["cluster"],
            )?,
            fleet_frozen: IntGauge::with_opts(opts("fleet_frozen", "1 while a fleet freeze is in force."))?,
            orphans_held: gauge(
                "orphans_held",
                "Member objects without an Assignment whose removal is held until an admin confirms.",
                &["cluster"],
            )?,
            leader: IntGauge::with_opts(opts("leader", "1 while this replica leads."))?,
            unreadable_objects_total: counter(
                "unreadable_objects_total",
                "Objects a reflector could not read and skipped, per kind.",
                &["kind"],
            )?,
            assignments_ignored_total: counter(
                "assignments_ignored_total",
                "Assignments ignored as not the controller's own (namespace, name or workload UID), per reason.",
                &["reason"],
            )?,
            assignments_orphaned_total: counter(
                "assignments_orphaned_total",
                "Assignments deleted because their workload is gone or is another one now, per reason.",
                &["reason"],
            )?,
            probe_refusals_total: counter(
                "probe_refusals_total",
                "Link probes refused: the address is not one the host pinned.",
                &["link"],
            )?,
            registry,
        };
        m.register()?;
        Ok(m)
    }

    fn register(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.reconcile_total.clone()))?;
        r.register(Box::new(self.reconcile_errors_total.clone()))?;
        r.register(Box::new(self.reconcile_duration_seconds.clone()))?;
        r.register(Box::new(self.decision_duration_seconds.clone()))?;
        r.register(Box::new(self.workloads.clone()))?;
        r.register(Box::new(self.placed_replicas.clone()))?;
        r.register(Box::new(self.cluster_reachable.clone()))?;
        r.register(Box::new(self.cluster_heartbeat_age_seconds.clone()))?;
        r.register(Box::new(self.cluster_free.clone()))?;
        r.register(Box::new(self.link_state.clone()))?;
        r.register(Box::new(self.link_rtt_seconds.clone()))?;
        r.register(Box::new(self.replacements_total.clone()))?;
        r.register(Box::new(self.not_ready_backoffs_total.clone()))?;
        r.register(Box::new(self.failover_seconds.clone()))?;
        r.register(Box::new(self.filter_rejections_total.clone()))?;
        r.register(Box::new(self.assignment_refusals_total.clone()))?;
        r.register(Box::new(self.api_writes_total.clone()))?;
        r.register(Box::new(self.write_budget_wait_seconds_total.clone()))?;
        r.register(Box::new(self.fleet_frozen.clone()))?;
        r.register(Box::new(self.orphans_held.clone()))?;
        r.register(Box::new(self.leader.clone()))?;
        r.register(Box::new(self.unreadable_objects_total.clone()))?;
        r.register(Box::new(self.assignments_ignored_total.clone()))?;
        r.register(Box::new(self.assignments_orphaned_total.clone()))?;
        r.register(Box::new(self.probe_refusals_total.clone()))?;
        Ok(())
    }

    /// Counts one API write (`target`: `hub` or `member`; `verb`: `apply`, `create`, `update`, `patch`,
    /// `delete`, `renew`; `resource`: what was written, e.g. `missionworkloads/status`).
    pub fn write(&self, target: &str, verb: &str, resource: &str) {
        self.api_writes_total.with_label_values(&[target, verb, resource]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
