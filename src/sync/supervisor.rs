//! Push mode: one syncer task per MemberCluster with `connection.mode: Push`. Tasks start, stop and restart
//! as MemberClusters or their kubeconfig Secrets appear, change or go away; one broken member never affects
//! another, and a failing task retries with backoff and says why in the `CredentialsValid` condition.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::credentials::{CredentialError, member_client, read_kubeconfig};
use super::error::Error;
use super::member_status::{self, CREDENTIALS_VALID};
use super::{SyncContext, run_member};
use crate::api::conditions::ConditionSpec;
use crate::api::{ConnectionMode, MemberCluster, SecretKeyRef};

/// A refused kubeconfig is read again this often (and whenever the Secret or MemberCluster changes).
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(30);
/// How often a member task looks at its Secret for changes.
const SECRET_POLL: Duration = Duration::from_secs(5);
/// How often the supervisor re-checks its tasks (finished tasks are restarted).
const SUPERVISE: Duration = Duration::from_secs(5);

struct Task {
    secret: Option<SecretKeyRef>,
    handle: JoinHandle<()>,
}

/// Runs one syncer per Push MemberCluster until `shutdown` resolves.
pub async fn run_push(ctx: Arc<SyncContext>, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    let (reporter, _) = crate::reflect::Reporter::new(ctx.metrics.clone());
    let (store, _, events) = crate::reflect::guarded(
        Api::<kube::core::DeserializeGuard<MemberCluster>>::all(ctx.hub.clone()),
        watcher::Config::default(),
        reporter,
    );
    let mut events = events.boxed();
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut tick = tokio::time::interval(SUPERVISE);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            ev = events.next() => if ev.is_none() {
                break Err(Error::Watch("MemberCluster watch ended".into()));
            },
            _ = tick.tick() => {}
        }
        supervise(&ctx, &store, &mut tasks);
    };
    for (cluster, t) in tasks.drain() {
        t.handle.abort();
        let _ = t.handle.await;
        info!(%cluster, "syncer stopped");
    }
    result
}

fn supervise(ctx: &Arc<SyncContext>, store: &Store<MemberCluster>, tasks: &mut HashMap<String, Task>) {
    let desired: HashMap<String, Option<SecretKeyRef>> = store
        .state()
        .iter()
        .filter(|mc| mc.spec.connection.mode == ConnectionMode::Push && mc.metadata.deletion_timestamp.is_none())
        .map(|mc| (mc.name_any(), mc.spec.connection.kubeconfig_secret_ref.clone()))
        .collect();
    tasks.retain(|cluster, t| {
        let keep = desired.get(cluster) == Some(&t.secret) && !t.handle.is_finished();
        if !keep {
            t.handle.abort();
            info!(%cluster, "syncer stopped");
        }
        keep
    });
    for (cluster, secret) in desired {
        if tasks.contains_key(&cluster) {
            continue;
        }
        info!(%cluster, "syncer started");
        let handle = tokio::spawn(member_task(ctx.clone(), cluster.clone(), secret.clone()));
        tasks.insert(cluster, Task { secret, handle });
    }
}

/// One member: credentials, then the syncer; reconnects when the Secret changes, backs off on failure.
async fn member_task(ctx: Arc<SyncContext>, cluster: String, secret: Option<SecretKeyRef>) {
    let identity = format!("syncer/{cluster}");
    let recorder = Recorder::new(
        ctx.hub.clone(),
        Reporter { controller: "marshal-syncer".into(), instance: Some(identity.clone()) },
    );
    let mut backoff = Duration::from_secs(1);
    let mut last_refusal: Option<CredentialError> = None;
    loop {
        let text = match read_kubeconfig(&ctx.hub, secret.as_ref(), ctx.config.signing_secret.as_deref()).await {
            Ok(t) => t,
            Err(e) => {
                warn!(%cluster, error = %e, "cannot read the kubeconfig Secret; retrying");
                tokio::time::sleep(SECRET_POLL).await;
                continue;
            }
        };
        let client = match &text {
            Ok(t) => member_client(t).await,
            Err(e) => Err(e.clone()),
        };
        match client {
            Err(refusal) => {
                if last_refusal.as_ref() != Some(&refusal) {
                    warn!(%cluster, reason = refusal.category(), error = %refusal, "member credentials refused");
                }
                last_refusal = Some(refusal.clone());
                report_credentials(&ctx, &recorder, &cluster, Err(&refusal)).await;
                wait_for_change(&ctx, secret.as_ref(), &text, CREDENTIALS_RETRY).await;
            }
            Ok(member) => {
                last_refusal = None;
                report_credentials(&ctx, &recorder, &cluster, Ok(())).await;
                tokio::select! {
                    r = run_member(ctx.clone(), cluster.clone(), member, identity.clone()) => {
                        if let Err(e) = r {
                            warn!(%cluster, error = %e, category = e.category(), ?backoff, "syncer failed; restarting");
                            ctx.metrics.reconcile_errors_total.with_label_values(&["syncer", e.category()]).inc();
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                    _ = wait_for_change(&ctx, secret.as_ref(), &text, Duration::MAX) => {
                        info!(%cluster, "kubeconfig Secret changed; reconnecting");
                        backoff = Duration::from_secs(1);
                    }
                }
            }
        }
    }
}

/// Returns when the Secret's kubeconfig (or the reason it cannot be read) differs from `last`, or after `max`.
async fn wait_for_change(
    ctx: &SyncContext,
    secret: Option<&SecretKeyRef>,
    last: &Result<String, CredentialError>,
    max: Duration,
) {
    let deadline = tokio::time::Instant::now().checked_add(max);
    loop {
        tokio::time::sleep(SECRET_POLL).await;
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return;
        }
        match read_kubeconfig(&ctx.hub, secret, ctx.config.signing_secret.as_deref()).await {
            Ok(now) if &now != last => return,
            _ => {}
        }
    }
}

/// Sets `CredentialsValid` (only when it changed) and publishes an Event when it did.
async fn report_credentials(
    ctx: &SyncContext,
    recorder: &Recorder,
    cluster: &str,
    result: Result<(), &CredentialError>,
) {
    let spec = match result {
        Ok(()) => ConditionSpec {
            type_: CREDENTIALS_VALID,
            status: true,
            reason: "Valid".into(),
            message: "the kubeconfig Secret is valid and verifies the member's certificate".into(),
        },
        Err(e) => ConditionSpec {
            type_: CREDENTIALS_VALID,
            status: false,
            reason: e.category().into(),
            message: e.to_string(),
        },
    };
    let mut reference = None;
    let written = member_status::update(ctx, cluster, |s, mc| {
        reference = Some(mc.object_ref(&()));
        s.set_condition(spec.clone(), mc.metadata.generation, member_status::now());
    })
    .await;
    match written {
        Ok(Some(true)) => {
            let event = Event {
                type_: if spec.status { EventType::Normal } else { EventType::Warning },
                reason: if spec.status { "CredentialsValid".into() } else { spec.reason.clone() },
                note: Some(spec.message.clone()),
                action: "Connect".into(),
                secondary: None,
            };
            if let Some(r) = reference {
                match recorder.publish(&event, &r).await {
                    Ok(()) => ctx.metrics.write("hub", "create", "events"),
                    Err(e) => warn!(%cluster, error = %e, "event not published"),
                }
            }
        }
        Ok(_) => {}
        Err(e) => warn!(%cluster, error = %e, "CredentialsValid not written"),
    }
}
