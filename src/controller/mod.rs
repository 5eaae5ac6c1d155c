//! `marshal controller`: the hub controller. Reflectors for clusters, links, policies, assignments and
//! heartbeat Leases feed a Controller for MissionWorkloads (watched through `DeserializeGuard`, so one
//! malformed object cannot break the watch).

pub mod assumed;
pub mod build;
pub mod clock;
mod cluster_events;
pub mod error;
pub mod health;
pub mod janitor;
pub mod moves;
pub mod observed;
pub mod reconcile;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::heartbeat::HeartbeatLease;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{
    Assignment, ClusterLink, HEARTBEAT_LABEL, HEARTBEAT_LEASE, MemberCluster, MissionWorkload, SecurityPolicy,
    cluster_namespace,
};
use crate::metrics::Metrics;
use crate::placement::{ClusterFacts, Settings, Snapshot};

pub use error::Error;

/// The reflector stores the controller decides from.
#[derive(Clone)]
pub struct Stores {
    /// MemberClusters.
    pub clusters: Store<MemberCluster>,
    /// ClusterLinks.
    pub links: Store<ClusterLink>,
    /// SecurityPolicies.
    pub policies: Store<SecurityPolicy>,
    /// Assignments in every namespace.
    pub assignments: Store<Assignment>,
    /// Heartbeat Leases.
    pub leases: Store<HeartbeatLease>,
    /// MissionWorkloads (for fleet metrics).
    pub workloads: Store<DeserializeGuard<MissionWorkload>>,
    /// Objects that exist but cannot be read.
    pub unreadable: Unreadable,
}

/// The objects the controller's reflectors skipped because they cannot be read. A fact that is unreadable is
/// missing, not "no": it blocks every change for what depends on it, and removes nothing by itself.
#[derive(Clone)]
pub struct Unreadable {
    /// MemberClusters.
    pub clusters: crate::reflect::Unreadables,
    /// SecurityPolicies.
    pub policies: crate::reflect::Unreadables,
    /// Assignments.
    pub assignments: crate::reflect::Unreadables,
}

impl Stores {
    /// Waits until every side store has its first full list. Only one task may call this: a store's readiness
    /// signal (kube-runtime's `DelayedInit`, a oneshot) wakes a single waiter, so everyone else waits on
    /// [`Context::wait_ready`]. The workloads store is left out on purpose: the Controller's runner already
    /// waits on it, and a second waiter could leave one of the two asleep forever.
    async fn wait_all(&self) {
        let _ = futures::join!(
            self.clusters.wait_until_ready(),
            self.links.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.assignments.wait_until_ready(),
            self.leases.wait_until_ready(),
        );
    }
}

/// Everything a reconcile needs.
pub struct Context {
    /// Hub client.
    pub client: Client,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Stores.
    pub stores: Stores,
    /// Engine settings.
    pub settings: Settings,
    leader: Arc<AtomicBool>,
    namespaces: Mutex<BTreeSet<String>>,
    ready: tokio::sync::watch::Receiver<bool>,
    /// Workloads moving off an unreachable cluster, with the time it was detected unreachable.
    pub failovers: Mutex<BTreeMap<String, Timestamp>>,
    /// The last status this process wrote per workload uid, with the resourceVersion it produced: a newer
    /// memory than a store that has not seen the write's watch event yet.
    written: Mutex<BTreeMap<String, (u64, crate::api::MissionWorkloadStatus)>>,
    /// When this process started deciding.
    started: Timestamp,
    /// Capacity promised to new placements that members have not reported yet.
    pub ledger: Mutex<assumed::Ledger>,
    /// Heartbeats and dated facts as the hub's clock saw them arrive.
    pub observed: observed::Observed,
    /// How long an issued Assignment is valid (seconds).
    pub assignment_validity_s: i64,
    /// Failed reconciles in a row per workload, for the backoff of the next try.
    pub retries: crate::retry::Attempts,
    /// Fact times on the hub's clock (a time in the future counts from when the hub first saw it).
    clock: clock::FactClock,
}

impl Context {
    /// Waits until every store has its first full list: deciding from half a picture would write garbage
    /// (before the Leases are listed, every cluster looks unreachable).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Whether this replica may write.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The last heartbeat of a cluster on the hub's clock: when the hub last saw its Lease's `renewTime` change
    /// (see [`observed::Observed::heartbeat`]). A member's clock never makes it fresher.
    pub fn heartbeat(&self, cluster: &str) -> Option<Timestamp> {
        let key = ObjectRef::<HeartbeatLease>::new(HEARTBEAT_LEASE).within(&cluster_namespace(cluster));
        self.stores.leases.get(&key)?;
        self.observed.heartbeat_of(cluster)
    }

    /// The heartbeat as reachability judges it: never older than this process's start. A heartbeat that went
    /// stale while no controller ran (in push mode, while no syncer could renew it) says nothing about the
    /// member yet; judging it at once would move work off every cluster on each restart after a pause. A
    /// cluster that never sent a heartbeat stays unknown (unreachable).
    pub fn judged_heartbeat(&self, cluster: &str) -> Option<Timestamp> {
        self.heartbeat(cluster).map(|hb| hb.max(self.started))
    }

    /// When this process started deciding.
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// How long decisions should still wait after a start: until every MemberCluster is reachable, or one grace
    /// period has passed (a member's first heartbeat can take that long). Deciding earlier would place work
    /// without the clusters that have not reported yet, and stickiness would keep it there until failback.
    pub fn warming_up(&self, now: Timestamp) -> Option<std::time::Duration> {
        let grace_ms = i64::from(self.settings.cluster_grace_seconds) * 1000;
        let left = self.started.as_millisecond() + grace_ms - now.as_millisecond();
        let all_reachable = self.stores.clusters.state().iter().all(|mc| self.reachable(&mc.name_any(), now));
        (left > 0 && !all_reachable).then(|| std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }

    /// Whether a cluster's heartbeat is within the grace period at `now`.
    pub fn reachable(&self, cluster: &str, now: Timestamp) -> bool {
        self.judged_heartbeat(cluster).is_some_and(|hb| {
            now.as_millisecond() - hb.as_millisecond() <= i64::from(self.settings.cluster_grace_seconds) * 1000
        })
    }

    /// When a cluster's capacity summary was last reported, on the hub's clock.
    pub fn capacity_observed(&self, cluster: &str) -> Option<Timestamp> {
        let mc = self.stores.clusters.get(&ObjectRef::new(cluster))?;
        let at = mc.status.as_ref()?.observed_at.as_ref().map(|t| t.0)?;
        Some(self.clock.judge(clock::Fact::Capacity(cluster.to_string()), at, Timestamp::now()))
    }

    /// The engine's view of the federation. Heartbeats are the Leases' own times (a toleration runs from the moment a
    /// heartbeat went stale, not from this process's start; decisions wait out the first grace period after a start
    /// instead, see [`Context::warming_up`]); every fact time is on the hub's clock.
    pub fn snapshot(&self) -> Snapshot {
        let policies: Vec<SecurityPolicy> = self.stores.policies.state().iter().map(|p| (**p).clone()).collect();
        let now = Timestamp::now();
        let links: Vec<ClusterLink> = self
            .stores
            .links
            .state()
            .iter()
            .map(|l| {
                let mut l = (**l).clone();
                let name = l.name_any();
                if let Some(t) = l.status.as_mut().and_then(|s| s.observed_at.as_mut()) {
                    t.0 = self.clock.judge(clock::Fact::Link(name), t.0, now);
                }
                l
            })
            .collect();
        let clusters = self
            .stores
            .clusters
            .state()
            .iter()
            .map(|mc| {
                let name = mc.name_any();
                let mut facts = ClusterFacts::from_crd(mc, self.heartbeat(&name));
                facts.capacity_observed_at = self.capacity_observed(&name);
                facts
            })
            .collect();
        Snapshot::new(&policies, clusters, &links, self.settings)
    }

    /// The workload with the freshest status this process knows (its own last write, if the store lags).
    pub fn freshest(&self, mut mw: MissionWorkload) -> MissionWorkload {
        let rv = |o: &MissionWorkload| o.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        let uid = mw.metadata.uid.clone().unwrap_or_default();
        if let Ok(m) = self.written.lock()
            && let Some((written_rv, status)) = m.get(&uid)
            && rv(&mw).is_some_and(|store_rv| store_rv < *written_rv)
        {
            mw.status = Some(status.clone());
        }
        mw
    }

    /// Remembers a status write (see [`Context::freshest`]).
    pub fn remember_status(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        status: &crate::api::MissionWorkloadStatus,
    ) {
        if let (Ok(mut m), Some(rv)) = (self.written.lock(), resource_version.and_then(|v| v.parse::<u64>().ok())) {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(uid.to_string(), (rv, status.clone()));
        }
    }

    fn namespace_known(&self, name: &str) -> bool {
        self.namespaces.lock().map(|s| s.contains(name)).unwrap_or(false)
    }

    fn remember_namespace(&self, name: &str) {
        if let Ok(mut s) = self.namespaces.lock() {
            s.insert(name.to_string());
        }
    }

    /// Publishes an Event on an object; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        // kube's Recorder folds events with the same type, reason and action into one series and keeps the first
        // note: a fingerprint of the note in the action keeps distinct moves distinct (identical ones still fold).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&note, &mut h);
        let action = format!("{reason}-{:08x}", std::hash::Hasher::finish(&h) & 0xffff_ffff);
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action,
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "cannot publish event");
        } else {
            self.metrics.write("hub", "create", "events");
        }
    }
}

/// Options of `marshal controller`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Heartbeats older than this make a cluster unreachable.
    pub cluster_grace: Duration,
    /// Capacity reports older than this are unknown.
    pub capacity_stale: Duration,
    /// Parallel reconciles.
    pub concurrency: u16,
    /// How long an issued Assignment is valid (its `notAfter`); renewed when half is left.
    pub assignment_validity: Duration,
}

/// Waits until every Marshal CRD is established.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    for crd in crate::api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        loop {
            let established = api.get_opt(&name).await.ok().flatten().is_some_and(|c| {
                c.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "CRD {name} is not established after {}s: install them with `kubectl apply --server-side -f crds/`",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

fn reflect<K>(
    client: &Client,
    cfg: watcher::Config,
    reporter: &crate::reflect::Reporter,
) -> (Store<K>, crate::reflect::Unreadables, impl Stream<Item = Arc<K>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    crate::reflect::guarded(Api::<DeserializeGuard<K>>::all(client.clone()), cfg, reporter.clone())
}

/// The workloads whose `dataSource` is at either end of `link`.
fn link_users(
    workloads: &Store<DeserializeGuard<MissionWorkload>>,
    link: &ClusterLink,
) -> Vec<ObjectRef<DeserializeGuard<MissionWorkload>>> {
    workloads
        .state()
        .iter()
        .filter(|g| {
            g.0.as_ref()
                .ok()
                .and_then(|mw| mw.spec.placement.data_source.as_ref())
                .is_some_and(|ds| ds.cluster == link.spec.from || ds.cluster == link.spec.to)
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` resolves. `leader` says whether this replica may write.
pub async fn run(
    client: Client,
    metrics: Metrics,
    opts: Options,
    leader: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let cfg = watcher::Config::default().any_semantic();
    let (reporter, unreadable) = crate::reflect::Reporter::new(metrics.clone());
    let (clusters, unreadable_clusters, clusters_s) = reflect::<MemberCluster>(&client, cfg.clone(), &reporter);
    let (links, _, links_s) = reflect::<ClusterLink>(&client, cfg.clone(), &reporter);
    let (policies, unreadable_policies, policies_s) = reflect::<SecurityPolicy>(&client, cfg.clone(), &reporter);
    let (assignments, unreadable_assignments, assignments_s) = reflect::<Assignment>(&client, cfg.clone(), &reporter);
    let (leases, _, leases_s) =
        reflect::<HeartbeatLease>(&client, cfg.clone().labels(&format!("{HEARTBEAT_LABEL}=true")), &reporter);
    // The janitor's own view of which workloads exist: metadata only, so it can be read whatever the spec says.
    let (workload_meta, meta_writer) = reflector::store::<PartialObjectMeta<MissionWorkload>>();
    let meta_stream = watcher(Api::<PartialObjectMeta<MissionWorkload>>::all(client.clone()), cfg.clone())
        .default_backoff()
        .reflect(meta_writer)
        .for_each(|_| async {});

    let workloads_api = Api::<DeserializeGuard<MissionWorkload>>::all(client.clone());
    let controller = Controller::new(workloads_api, cfg.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(opts.concurrency));
    let stores = Stores {
        clusters,
        links,
        policies,
        assignments,
        leases,
        workloads: controller.store(),
        unreadable: Unreadable {
            clusters: unreadable_clusters,
            policies: unreadable_policies,
            assignments: unreadable_assignments,
        },
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "marshal".into(), instance: std::env::var("HOSTNAME").ok() },
    );
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let gate = stores.clone();
    tokio::spawn(async move {
        gate.wait_all().await;
        info!("caches synced");
        let _ = ready_tx.send(true);
    });
    let ctx = Arc::new(Context {
        ready,
        client: client.clone(),
        metrics,
        recorder,
        stores: stores.clone(),
        settings: Settings {
            cluster_grace_seconds: u32::try_from(opts.cluster_grace.as_secs()).unwrap_or(15),
            capacity_stale_seconds: u32::try_from(opts.capacity_stale.as_secs()).unwrap_or(u32::MAX),
        },
        leader,
        namespaces: Mutex::new(BTreeSet::new()),
        written: Mutex::new(BTreeMap::new()),
        failovers: Mutex::new(BTreeMap::new()),
        started: Timestamp::now(),
        ledger: Mutex::new(assumed::Ledger::default()),
        observed: observed::Observed::default(),
        retries: crate::retry::Attempts::default(),
        assignment_validity_s: i64::try_from(opts.assignment_validity.as_secs())
            .unwrap_or(build::DEFAULT_VALIDITY_S)
            .max(2),
        clock: clock::FactClock::default(),
    });
    tokio::spawn(crate::reflect::run_reporter(
        unreadable,
        ctx.recorder.clone(),
        ctx.metrics.clone(),
        ctx.leader.clone(),
    ));

    // A new signing key (rotation) re-signs every Assignment at once.
    let rotations = futures::stream::unfold(crate::signing::signer_changes(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    // Any change of clusters or policies may change any decision.
    let everything = futures::stream::select_all(vec![
        clusters_s.filter(cluster_events::significant(stores.clusters.clone())).map(|_| ()).boxed(),
        policies_s.map(|_| ()).boxed(),
        rotations.boxed(),
    ]);
    // A link's change concerns the workloads whose data source is at one of its ends.
    let workloads = stores.workloads.clone();
    let link_users = links_s.flat_map(move |l| futures::stream::iter(link_users(&workloads, &l)));
    // An Assignment's change concerns its workload only (and the janitor, which looks at every Assignment).
    let poke = Arc::new(tokio::sync::Notify::new());
    let janitor_poke = poke.clone();
    let owners = assignments_s.map(move |a| {
        janitor_poke.notify_one();
        ObjectRef::<DeserializeGuard<MissionWorkload>>::new(&a.spec.workload.name).within(&a.spec.workload.namespace)
    });
    // Leases are read by the health loop, which flips `Reachable` (and so triggers `everything`); the hub's clock
    // dates each heartbeat as it arrives.
    let seen = ctx.clone();
    tokio::spawn(leases_s.for_each(move |lease| {
        let seen = seen.clone();
        async move {
            if let Some(cluster) = lease.namespace().and_then(|ns| ns.strip_prefix("marshal-").map(String::from)) {
                let renew = lease.spec.renew_time.as_ref().map(|t| t.0);
                seen.observed.observe_heartbeat(&cluster, renew, Timestamp::now());
            }
        }
    }));
    tokio::spawn(meta_stream);
    tokio::spawn(janitor::run(ctx.clone(), workload_meta, poke));
    tokio::spawn(health::run(ctx.clone()));

    info!("controller started");
    controller
        .reconcile_all_on(everything)
        .reconcile_on(owners)
        .reconcile_on(link_users)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((o, _)) => tracing::debug!(%o, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

/// How often the controller re-reads its signing Secret (a rotation takes effect without a restart).
pub const SIGNING_RELOAD: Duration = Duration::from_secs(10);

/// `--signing-key-secret NAMESPACE/NAME`: reads the hub signing Secret, installs its key for the build step
/// and its trusted keys for this process's push-mode syncers (which then refuse unsigned Assignments), and
/// keeps re-reading it every [`SIGNING_RELOAD`]. A missing or invalid Secret at start is an error: signing
/// was asked for, so the controller does not run without it. Later, an unreadable Secret keeps the last key.
pub async fn install_signing(client: &Client, secret: &str) -> Result<(), String> {
    use k8s_openapi::api::core::v1::Secret;
    let (ns, name) = secret
        .split_once('/')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty())
        .ok_or_else(|| format!("--signing-key-secret {secret:?}: expected NAMESPACE/NAME"))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let load = {
        let api = api.clone();
        let name = name.to_string();
        move || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let s = api.get(&name).await.map_err(|e| format!("signing Secret {name}: {e}"))?;
                let data: BTreeMap<String, Vec<u8>> =
                    s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                crate::signing::from_secret_data(&data).map_err(|e| format!("signing Secret {name}: {e}"))
            }
        }
    };
    let install = |signer: crate::signing::Signer, ring: crate::signing::KeyRing| {
        info!(key = signer.id(), trusted = ?ring.ids(), "signing Assignments; push syncers verify signatures");
        crate::sync::recheck::install_authority(crate::sync::recheck::Authority {
            clearance: crate::sync::recheck::ClearanceSource::ConfigMapOrHub,
            trust: crate::signing::Trust::Keys(ring),
        });
        crate::signing::install_signer(Some(signer));
    };
    let (signer, ring) = load().await?;
    let mut current = (signer.id().to_string(), ring.clone());
    install(signer, ring);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SIGNING_RELOAD).await;
            match load().await {
                Ok((signer, ring)) if (signer.id(), &ring) != (current.0.as_str(), &current.1) => {
                    current = (signer.id().to_string(), ring.clone());
                    install(signer, ring);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "cannot re-read the signing Secret; keeping the current key"),
            }
        }
    });
    Ok(())
}
