//! The MissionWorkload reconcile: dereference → decide → build → apply → status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::assumed::{Ledger, Promise, Seen};
use super::error::{Error, hub};
use super::{Context, build, moves, status};
use crate::api::{ASSIGNMENT_FINALIZER, Assignment, FIELD_MANAGER, FailoverMode, MissionWorkload, WORKLOAD_FINALIZER};
use crate::placement::{self, Decision, Request, WorkloadModel};

/// Longest time between two reconciles of a workload (facts such as link freshness age with time).
const MAX_REQUEUE: Duration = Duration::from_secs(60);

/// Entry point for the Controller.
pub async fn reconcile(obj: Arc<DeserializeGuard<MissionWorkload>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconcile_total.with_label_values(&["missionworkload"]).inc();
    ctx.wait_ready().await;
    let mw = match &obj.0 {
        Ok(mw) => ctx.freshest(mw.clone()),
        Err(invalid) => {
            warn!(error = %invalid, "MissionWorkload cannot be read; waiting for a change");
            return Ok(Action::await_change());
        }
    };
    if !ctx.is_leader() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let ns = mw.namespace().ok_or_else(|| Error::Invalid("MissionWorkload without namespace".into()))?;
    let api: Api<MissionWorkload> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, WORKLOAD_FINALIZER, Arc::new(mw), |event| async {
        match event {
            Finalizer::Apply(mw) => apply(&mw, &ctx).await,
            Finalizer::Cleanup(mw) => cleanup(&mw, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .reconcile_duration_seconds
        .with_label_values(&["missionworkload"])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.retries.succeeded(&retry_key(&obj));
    }
    result
}

/// The key of a workload's failures in a row (see [`Context::retries`]).
fn retry_key(obj: &DeserializeGuard<MissionWorkload>) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Requeue, error policy for the Controller.
/// A workload waiting for its members to remove their copies is looked at again in 3 s; any other failure
/// backs off per workload with jitter (from 2 s, doubling to 2 min), never sooner than the hub's `Retry-After`.
pub fn error_policy(obj: Arc<DeserializeGuard<MissionWorkload>>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors_total.with_label_values(&["missionworkload", err.category()]).inc();
    match err.innermost() {
        Error::CleanupPending(_) => Action::requeue(Duration::from_secs(3)),
        Error::Invalid(_) => Action::await_change(),
        _ => {
            let wait = ctx.retries.failed(&retry_key(&obj), err.retry_after());
            warn!(error = %err, retry_in = ?wait, "reconcile failed");
            Action::requeue(wait)
        }
    }
}

/// Decides with the current facts, less the capacity promised to placements members have not counted yet.
/// `hist` comes from [`moves::history`]: a member that refused its Assignment is not eligible while the refusal
/// stands, nor one whose backoff runs.
fn decide(
    model: &WorkloadModel,
    ctx: &Context,
    hist: &placement::History,
    ledger: &Ledger,
    now: Timestamp,
) -> Decision {
    let mut snap = ctx.snapshot();
    ledger.apply_to(&mut snap);
    let t = Instant::now();
    let mut d = placement::decide(model, &snap, hist, now);
    ctx.metrics.decision_duration_seconds.observe(t.elapsed().as_secs_f64());
    if let Some(stale) = d.links_stale_at(model, &snap).filter(|s| *s > now) {
        d.next_review = Some(d.next_review.map_or(stale, |n| n.min(stale)));
    }
    for v in d.verdicts.iter().filter(|v| !v.eligible) {
        if let Some(f) = v.reason.filter() {
            ctx.metrics.filter_rejections_total.with_label_values(&[f.as_str()]).inc();
        }
    }
    d
}

/// What this workload depends on that exists but cannot be read: a MemberCluster it runs on, one of its own
/// Assignments, or (while some SecurityPolicy cannot be read) the policy of its label. Such a fact is missing,
/// not "no": nothing about the workload changes until it can be read again (fail closed, lose nothing).
fn held_by_unreadable(ctx: &Context, mw: &MissionWorkload) -> Option<String> {
    let u = &ctx.stores.unreadable;
    let clusters = u.clusters.names();
    if let Some(p) = mw.status.iter().flat_map(|s| s.placements.iter()).find(|p| clusters.contains(&p.cluster)) {
        return Some(format!("MemberCluster {} cannot be read", p.cluster));
    }
    let own = build::assignment_name(mw);
    if u.assignments.names().contains(&own) {
        return Some(format!("an Assignment {own} cannot be read"));
    }
    let policies = u.policies.names();
    let label = &mw.spec.confidentiality;
    let known = |id: &str| ctx.stores.policies.state().iter().any(|p| p.spec.policy_identifier == id);
    let wanted = std::iter::once(label.policy.as_str()).chain(label.alternatives.iter().map(|a| a.policy.as_str()));
    if !policies.is_empty() && wanted.clone().any(|id| !known(id)) {
        return Some(format!("SecurityPolicy {} cannot be read", policies.join(", ")));
    }
    None
}

async fn apply(mw: &MissionWorkload, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    if let Some(why) = held_by_unreadable(ctx, mw) {
        warn!(workload = %format!("{}/{}", mw.namespace().unwrap_or_default(), mw.name_any()), %why, "held: nothing changes until it can be read");
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let issuance = build::Issuance { now, validity_s: ctx.assignment_validity_s };
    if let Some(wait) = ctx.warming_up(now) {
        return Ok(Action::requeue(wait));
    }
    let existing: Vec<Arc<Assignment>> =
        ctx.stores.assignments.state().into_iter().filter(|a| build::belongs_to(a, mw)).collect();
    let model = WorkloadModel::from_crd(mw);
    let own: Vec<&Assignment> = existing.iter().map(|a| a.as_ref()).collect();
    let backoff = moves::backoffs(mw, &own, now);
    note_backoffs(ctx, mw, &backoff).await;
    let hist = moves::history(mw, &own, &backoff, now);
    // Deciding and promising the capacity decided happen under one lock, so that reconciles running in parallel
    // see each other's new placements.
    let (d, desired) = {
        let mut ledger = match ctx.ledger.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        ledger.refresh(now, |key, p| promise_seen(ctx, key, p), |cluster| ctx.capacity_observed(cluster));
        let d = decide(&model, ctx, &hist, &ledger, now);
        let desired = build::assignments(mw, &d, &own, &issuance);
        promise(&mut ledger, &existing, &desired, model.request, now);
        (d, desired)
    };
    let reachable: BTreeSet<String> = existing
        .iter()
        .map(|a| a.spec.cluster.clone())
        .chain(desired.iter().map(|w| w.spec.cluster.clone()))
        .filter(|c| ctx.reachable(c, now))
        .collect();
    let park = |a: &Assignment| build::parked(mw, a, &issuance);
    let reissue = |a: &Assignment| build::reissued(a, &issuance);
    let plan = moves::plan(&moves::Input {
        exclusive: mw.spec.failover.mode == FailoverMode::BreakBeforeMake,
        decision: &d,
        desired: &desired,
        existing: &own,
        reachable: &reachable,
        park: &park,
        reissue: &reissue,
    });
    for c in &plan.changes {
        match &c.step {
            Some(moves::Step::Apply(a)) => apply_assignment(ctx, a).await?,
            Some(moves::Step::Delete) => {
                if let Some(a) = own.iter().find(|a| a.spec.cluster == c.cluster) {
                    delete_assignment(ctx, a).await?;
                }
            }
            None => {}
        }
    }

    let all: Vec<Assignment> =
        ctx.stores.assignments.state().into_iter().filter(|a| build::belongs_to(a, mw)).map(|a| (*a).clone()).collect();
    let mut new_status = status::build(mw, &d, &all, Time(now));
    new_status.backoff = backoff;
    failover_timing(ctx, mw, &d, &new_status);
    if mw.status.as_ref() != Some(&new_status) {
        patch_status(ctx, mw, &new_status).await?;
    }
    record_moves(mw, ctx, &d).await;
    // Instructions are renewed before their notAfter: look again when the first one is due.
    let renewal = desired.iter().map(|w| issuance.renewal_due(w.spec.not_after.0)).filter(|t| *t > now).min();
    let review = [d.next_review, renewal, moves::next_end(&new_status.backoff, now)].into_iter().flatten().min();
    let next = review
        .map(|t| {
            Duration::from_millis(u64::try_from((t.as_millisecond() - now.as_millisecond()).max(1000)).unwrap_or(1000))
        })
        .unwrap_or(MAX_REQUEUE)
        .min(MAX_REQUEUE);
    Ok(Action::requeue(if plan.pending() { next.min(Duration::from_secs(2)) } else { next }))
}

/// A Warning Event and `marshal_not_ready_backoffs_total` for each backoff that starts in this reconcile.
async fn note_backoffs(ctx: &Context, mw: &MissionWorkload, backoff: &[crate::api::BackoffStatus]) {
    let before = mw.status.as_ref().map(|s| s.backoff.as_slice()).unwrap_or_default();
    for b in backoff.iter().filter(|b| !before.contains(b)) {
        ctx.metrics.not_ready_backoffs_total.with_label_values(&[&b.cluster]).inc();
        let note = format!(
            "{} passed over until {} (backoff {}): {}; the running copy stays",
            b.cluster, b.until.0, b.count, b.message
        );
        ctx.event(mw, EventType::Warning, "NotReadyOnMember", note).await;
    }
}

/// Records the replicas each desired Assignment adds to its tier (beyond what the hub's copy already asks there).
fn promise(
    ledger: &mut Ledger,
    existing: &[Arc<Assignment>],
    desired: &[Assignment],
    request: Request,
    now: Timestamp,
) {
    for w in desired {
        let current = existing.iter().find(|a| a.spec.cluster == w.spec.cluster);
        if current.is_some_and(|c| build::up_to_date(c, w)) {
            continue;
        }
        let before = current
            .filter(|c| c.spec.tier == w.spec.tier && c.metadata.deletion_timestamp.is_none())
            .map_or(0, |c| c.spec.replicas);
        let added = u32::try_from(w.spec.replicas.saturating_sub(before)).unwrap_or(0);
        let key = format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any());
        ledger.promise(
            &key,
            Promise {
                cluster: w.spec.cluster.clone(),
                tier: w.spec.tier.clone(),
                replicas: added,
                request,
                digest: w.spec.content_digest(),
                at: now,
                ready_seen: None,
            },
        );
    }
}

/// What the hub's store shows of a promised Assignment.
fn promise_seen(ctx: &Context, key: &str, p: &Promise) -> Seen {
    let Some((ns, name)) = key.split_once('/') else { return Seen::Absent };
    let a = ctx.stores.assignments.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns));
    match a {
        Some(a) if a.spec.content_digest() == p.digest => Seen::Written {
            ready: a.status.as_ref().is_some_and(|s| {
                s.applied_digest == p.digest && i64::from(s.ready_replicas) >= i64::from(a.spec.replicas)
            }),
        },
        _ => Seen::Absent,
    }
}

/// `marshal_failover_seconds`: from the moment a cluster was detected unreachable (last heartbeat + grace)
/// until the replicas that left it are ready elsewhere.
fn failover_timing(ctx: &Context, mw: &MissionWorkload, d: &Decision, s: &crate::api::MissionWorkloadStatus) {
    let uid = mw.metadata.uid.clone().unwrap_or_default();
    let grace_ms = i64::from(ctx.settings.cluster_grace_seconds) * 1000;
    for m in d.moves.iter().filter(|m| m.reason == "Unreachable") {
        let detected = m
            .from
            .as_ref()
            .and_then(|f| ctx.heartbeat(&f.cluster))
            .and_then(|hb| Timestamp::from_millisecond(hb.as_millisecond() + grace_ms).ok());
        if let (Some(t), Ok(mut pending)) = (detected, ctx.failovers.lock()) {
            pending.entry(uid.clone()).or_insert(t);
        }
    }
    let ready = s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    if ready
        && let Ok(mut pending) = ctx.failovers.lock()
        && let Some(t) = pending.remove(&uid)
    {
        let secs = (Timestamp::now().as_millisecond() - t.as_millisecond()) as f64 / 1000.0;
        ctx.metrics.failover_seconds.observe(secs.max(0.0));
        info!(workload = %mw.name_any(), seconds = secs, "failover complete");
    }
}

async fn record_moves(mw: &MissionWorkload, ctx: &Context, d: &Decision) {
    if d.moves.is_empty() {
        return;
    }
    let slot =
        |s: &Option<placement::Slot>| s.as_ref().map_or("-".to_string(), |s| format!("{}/{}", s.cluster, s.tier));
    let lines: Vec<String> = d
        .moves
        .iter()
        .map(|m| format!("{} replica(s) {} -> {} ({})", m.replicas, slot(&m.from), slot(&m.to), m.reason))
        .collect();
    for m in &d.moves {
        if m.from.is_some() {
            ctx.metrics
                .replacements_total
                .with_label_values(&[replacement_category(&m.reason)])
                .inc_by(u64::from(m.replicas));
        }
    }
    let first = d.moves.iter().all(|m| m.from.is_none());
    let reason = if first { "Placed" } else { "Moved" };
    info!(workload = %format!("{}/{}", mw.namespace().unwrap_or_default(), mw.name_any()), moves = %lines.join("; "), "placement changed");
    ctx.event(mw, EventType::Normal, reason, lines.join("; ")).await;
}

/// The bounded reason label of `marshal_replacements_total`.
pub fn replacement_category(reason: &str) -> &'static str {
    match reason {
        "Unreachable" => "unreachable",
        "LinkInsufficient" => "link",
        "Capacity" | "CapacityUnknown" | "InsufficientCpu" | "InsufficientMemory" | "InsufficientPods" => "capacity",
        "Failback" => "failback",
        "Spec" | "NotSelected" | "TierNotAllowed" | "Rebalance" => "spec",
        _ => "policy",
    }
}

async fn ensure_namespace(ctx: &Context, name: &str) -> Result<(), Error> {
    if ctx.namespace_known(name) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    if api.get_opt(name).await.map_err(hub("get namespace"))?.is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some([("app.kubernetes.io/managed-by".to_string(), "marshal".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&ns))
            .await
            .map_err(hub("create namespace"))?;
        ctx.metrics.write("hub", "apply", "namespaces");
    }
    ctx.remember_namespace(name);
    Ok(())
}

async fn apply_assignment(ctx: &Context, a: &Assignment) -> Result<(), Error> {
    let ns = a.namespace().unwrap_or_default();
    ensure_namespace(ctx, &ns).await?;
    let api: Api<Assignment> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({
        "apiVersion": Assignment::api_version(&()), "kind": Assignment::kind(&()),
        "metadata": a.metadata, "spec": a.spec,
    });
    api.patch(&a.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(hub("apply assignment"))?;
    ctx.metrics.write("hub", "apply", "assignments");
    Ok(())
}

async fn delete_assignment(ctx: &Context, a: &Assignment) -> Result<(), Error> {
    let api: Api<Assignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
    match api.delete(&a.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
        Err(e) => return Err(hub("delete assignment")(e)),
    }
    ctx.metrics.write("hub", "delete", "assignments");
    // A cluster that no longer exists cannot clean up: release the Assignment ourselves.
    if ctx.stores.clusters.state().iter().all(|c| c.name_any() != a.spec.cluster) {
        release(ctx, a).await?;
    }
    Ok(())
}

async fn release(ctx: &Context, a: &Assignment) -> Result<(), Error> {
    if !a.finalizers().iter().any(|f| f == ASSIGNMENT_FINALIZER) {
        return Ok(());
    }
    let api: Api<Assignment> = Api::namespaced(ctx.client.clone(), &a.namespace().unwrap_or_default());
    let keep: Vec<&String> = a.finalizers().iter().filter(|f| *f != ASSIGNMENT_FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": keep}});
    match api.patch(&a.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(e) => return Err(hub("release assignment")(e)),
    }
    ctx.metrics.write("hub", "patch", "assignments");
    Ok(())
}

async fn patch_status(ctx: &Context, mw: &MissionWorkload, s: &crate::api::MissionWorkloadStatus) -> Result<(), Error> {
    let api: Api<MissionWorkload> = Api::namespaced(ctx.client.clone(), &mw.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": MissionWorkload::api_version(&()), "kind": MissionWorkload::kind(&()),
        "metadata": {"name": mw.name_any(), "namespace": mw.namespace()},
        "status": s,
    });
    let updated = api
        .patch_status(&mw.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(hub("patch workload status"))?;
    ctx.metrics.write("hub", "apply", "missionworkloads/status");
    ctx.remember_status(&mw.metadata.uid.clone().unwrap_or_default(), updated.metadata.resource_version.as_deref(), s);
    Ok(())
}

async fn cleanup(mw: &MissionWorkload, ctx: &Context) -> Result<Action, Error> {
    let mine: Vec<Arc<Assignment>> =
        ctx.stores.assignments.state().into_iter().filter(|a| build::belongs_to(a, mw)).collect();
    for a in &mine {
        if a.metadata.deletion_timestamp.is_none() {
            delete_assignment(ctx, a).await?;
        } else if ctx.stores.clusters.state().iter().all(|c| c.name_any() != a.spec.cluster) {
            release(ctx, a).await?;
        }
    }
    // Assignments live in other namespaces, so the store is the only way to see them go.
    let left = mine.len();
    if left > 0 {
        return Err(Error::CleanupPending(left));
    }
    Ok(Action::await_change())
}
