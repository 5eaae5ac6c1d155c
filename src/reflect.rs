//! Reflectors that survive objects they cannot read. A strictly typed reflector fails its whole LIST on one
//! object it cannot parse (the API server accepts more than a strict reader does: `format: date-time` is loose,
//! a `9999-12-31T23:59:59Z` is beyond the time library's range, an object stored under an older schema), and
//! then everything that waits for the store waits for ever. Here the watch reads `DeserializeGuard<K>`: an object
//! that does not parse is skipped — it keeps its last readable version in the store until it is deleted, and
//! is absent after a fresh LIST — and is reported once per resourceVersion: a warning in the log, the metric
//! `marshal_unreadable_objects_total{kind}` and, from the replica that may write, a Warning Event on the object.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::Metrics;

/// An object a reflector skipped.
#[derive(Clone, Debug)]
pub struct Unreadable {
    /// `apiVersion` of its kind.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// Why it cannot be read (the deserializer's message, shortened).
    pub error: String,
}

/// Where skipped objects are reported: a channel to [`run_reporter`].
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Unreadable>,
    metrics: Metrics,
}

impl Reporter {
    /// A reporter and the receiving end for [`run_reporter`].
    pub fn new(metrics: Metrics) -> (Self, mpsc::UnboundedReceiver<Unreadable>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Reporter { tx, metrics }, rx)
    }

    fn report(&self, u: Unreadable) {
        warn!(kind = %u.kind, namespace = ?u.namespace, name = %u.name, error = %u.error, "skipping an object that cannot be read");
        self.metrics.unreadable_objects_total.with_label_values(&[&u.kind]).inc();
        let _ = self.tx.send(u);
    }
}

/// Publishes a Warning Event on each skipped object while `may_write` is true (the leader; an agent always).
pub async fn run_reporter(
    mut rx: mpsc::UnboundedReceiver<Unreadable>,
    recorder: Recorder,
    metrics: Metrics,
    may_write: Arc<AtomicBool>,
) {
    while let Some(u) = rx.recv().await {
        if !may_write.load(Ordering::Relaxed) {
            continue;
        }
        let reference = ObjectReference {
            api_version: Some(u.api_version.clone()),
            kind: Some(u.kind.clone()),
            namespace: u.namespace.clone(),
            name: Some(u.name.clone()),
            uid: u.uid.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "Unreadable".into(),
            note: Some(format!(
                "Marshal cannot read this {} and skips it (everything else is decided as usual): {}; fix or \
                 replace the object",
                u.kind, u.error
            )),
            action: "Skip".into(),
            secondary: None,
        };
        match recorder.publish(&event, &reference).await {
            Ok(()) => metrics.write("hub", "create", "events"),
            Err(e) => warn!(error = %e, kind = %u.kind, name = %u.name, "cannot publish the Unreadable event"),
        }
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    if s.chars().count() <= MAX { s.to_string() } else { format!("{}...", s.chars().take(MAX).collect::<String>()) }
}

/// The objects of a guarded reflector that exist but cannot be read, as `(namespace, name)`: "unreadable" is
/// not "absent", and nothing is removed because an object became unreadable.
#[derive(Clone, Default)]
pub struct Unreadables(Arc<Mutex<HashSet<Key>>>);

/// `(namespace, name)` of an object.
type Key = (Option<String>, String);

impl Unreadables {
    /// Whether `namespace/name` exists but cannot be read.
    pub fn contains(&self, namespace: Option<&str>, name: &str) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(&(namespace.map(String::from), name.to_string())))
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.lock().map(|s| s.iter().map(|(_, n)| n.clone()).collect()).unwrap_or_default();
        v.sort();
        v
    }

    fn replace(&self, all: HashSet<Key>) {
        if let Ok(mut s) = self.0.lock() {
            *s = all;
        }
    }

    fn set(&self, namespace: Option<String>, name: String, unreadable: bool) {
        if let Ok(mut s) = self.0.lock() {
            if unreadable {
                s.insert((namespace, name));
            } else {
                s.remove(&(namespace, name));
            }
        }
    }
}

/// A store of the readable `K`s of `api`, the objects that exist but cannot be read, and the stream of objects the
/// store touched (like kube's `reflect(...).touched_objects()`), skipping and reporting every unreadable object.
pub fn guarded<K>(
    api: Api<DeserializeGuard<K>>,
    cfg: watcher::Config,
    reporter: Reporter,
) -> (Store<K>, Unreadables, impl Stream<Item = Arc<K>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, mut writer) = reflector::store::<K>();
    let lookup = reader.clone();
    let unreadables = Unreadables::default();
    let marks = unreadables.clone();
    let mut reported: HashSet<(String, String)> = HashSet::new();
    let mark = unreadables.clone();
    let marks_delete = unreadables.clone();
    let marks_done = unreadables.clone();
    let mut skip = move |inv: InvalidObject| {
        let m = inv.metadata;
        mark.set(m.namespace.clone(), m.name.clone().unwrap_or_default(), true);
        let key = (m.uid.clone().unwrap_or_default(), m.resource_version.clone().unwrap_or_default());
        if reported.len() > 10_000 {
            reported.clear();
        }
        if reported.insert(key) {
            reporter.report(Unreadable {
                api_version: K::api_version(&()).to_string(),
                kind: K::kind(&()).to_string(),
                namespace: m.namespace.clone(),
                name: m.name.clone().unwrap_or_default(),
                uid: m.uid.clone(),
                error: shorten(&inv.error),
            });
        }
        (m.name.unwrap_or_default(), m.namespace)
    };
    let readable = move |k: &K| marks.set(k.meta().namespace.clone(), k.meta().name.clone().unwrap_or_default(), false);
    // During a relist the unreadable objects are collected anew, like the store's own buffer.
    let mut relist: Option<HashSet<Key>> = None;
    let stream = watcher(api, cfg).default_backoff().map(move |ev| -> Vec<Arc<K>> {
        use watcher::Event as E;
        match ev {
            Err(e) => {
                warn!(kind = %K::kind(&()), error = %e, "watch error");
                Vec::new()
            }
            Ok(E::Init) => {
                relist = Some(HashSet::new());
                writer.apply_watcher_event(&E::Init);
                Vec::new()
            }
            Ok(E::InitDone) => {
                if let Some(all) = relist.take() {
                    marks_done.replace(all);
                }
                writer.apply_watcher_event(&E::InitDone);
                Vec::new()
            }
            Ok(E::InitApply(g)) => match g.0 {
                Ok(k) => {
                    readable(&k);
                    writer.apply_watcher_event(&E::InitApply(k.clone()));
                    vec![Arc::new(k)]
                }
                Err(inv) => {
                    let (name, ns) = skip(inv);
                    if let Some(all) = relist.as_mut() {
                        all.insert((ns, name));
                    }
                    Vec::new()
                }
            },
            Ok(E::Apply(g)) => match g.0 {
                Ok(k) => {
                    readable(&k);
                    writer.apply_watcher_event(&E::Apply(k.clone()));
                    vec![Arc::new(k)]
                }
                Err(inv) => {
                    skip(inv);
                    Vec::new()
                }
            },
            Ok(E::Delete(g)) => {
                let old = match g.0 {
                    Ok(k) => {
                        readable(&k);
                        Some(Arc::new(k))
                    }
                    Err(inv) => {
                        let (name, ns) = skip(inv);
                        marks_delete.set(ns.clone(), name.clone(), false);
                        let r = ObjectRef::<K>::new(&name);
                        lookup.get(&match ns {
                            Some(ns) => r.within(&ns),
                            None => r,
                        })
                    }
                };
                match old {
                    Some(k) => {
                        writer.apply_watcher_event(&E::Delete((*k).clone()));
                        vec![k]
                    }
                    None => Vec::new(),
                }
            }
        }
    });
    (reader, unreadables, stream.flat_map(futures::stream::iter))
}
