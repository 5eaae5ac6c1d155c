//! The syncer's writes to a member: its workload namespaces (only those Marshal created, or that the host lists,
//! each labelled with the host's Pod Security level), its Deployments (never one Marshal does not manage), their
//! removal, and the tombstones of removed workloads (`marshal-system/marshal-removed`, see
//! [`super::freshness`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::apply::{MANAGED_BY_LABEL, apply_body};
use super::error::{Error, is_conflict, is_not_found};
use super::freshness::{self, TOMBSTONES_CONFIGMAP, Tombstone};
use super::host_policy::{Violation, WorkloadPolicy, namespace_allowed, namespace_labels};
use crate::api::{FIELD_MANAGER, MANAGED_BY};
use crate::metrics::Metrics;

/// What an apply came to.
pub enum Applied {
    /// The Deployment as the member has it now.
    Done(Box<Deployment>),
    /// The host's workload policy refuses the namespace.
    Refused(Violation),
    /// A conflict to report as Failed (a Deployment of that name that Marshal does not manage).
    Failed(String),
}

/// Makes sure Marshal may use the workload namespace and that it carries the host's Pod Security labels:
/// creates it (marked as Marshal's own) when it is missing, refuses one that exists but is not Marshal's (unless
/// the host lists it), and corrects the level labels of Marshal's own when the host changed its level.
pub async fn ensure_namespace(
    member: &Client,
    metrics: &Metrics,
    want: &Namespace,
    policy: &WorkloadPolicy,
) -> Result<Result<(), Violation>, Error> {
    let name = want.name_any();
    let api: Api<Namespace> = Api::all(member.clone());
    let mut existing = api.get_opt(&name).await.map_err(Error::member(format!("read Namespace {name}")))?;
    if existing.is_none() {
        match api.create(&PostParams::default(), want).await {
            Ok(_) => {
                metrics.write("member", "create", "namespaces");
                return Ok(Ok(()));
            }
            // Someone else created it meanwhile: judge theirs.
            Err(e) if is_conflict(&e) => {
                existing = api.get_opt(&name).await.map_err(Error::member(format!("read Namespace {name}")))?;
            }
            Err(e) => return Err(Error::member(format!("create Namespace {name}"))(e)),
        }
    }
    let Some(ns) = existing else { return Ok(Ok(())) };
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    if let Err(v) = namespace_allowed(policy, &name, Some(&labels)) {
        return Ok(Err(v));
    }
    let stale: BTreeMap<&str, &str> =
        namespace_labels(policy).into_iter().filter(|(k, v)| labels.get(*k).map(String::as_str) != Some(*v)).collect();
    if !stale.is_empty() {
        let patch = json!({"metadata": {"labels": stale}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::member(format!("label Namespace {name}")))?;
        metrics.write("member", "patch", "namespaces");
        info!(namespace = %name, level = policy.pod_security.as_str(), "Pod Security labels set");
    }
    Ok(Ok(()))
}

/// Applies the Deployment in its (already vetted) namespace. A Deployment that Marshal does not manage is never
/// taken over.
pub async fn apply_deployment(member: &Client, metrics: &Metrics, d: &Deployment) -> Result<Applied, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let api: Api<Deployment> = Api::namespaced(member.clone(), &ns);
    if let Some(other) = api.get_opt(&name).await.map_err(Error::member(format!("read Deployment {ns}/{name}")))?
        && other.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
    {
        return Ok(Applied::Failed(format!(
            "Deployment {ns}/{name} exists in the member and is not managed by Marshal"
        )));
    }
    let body = apply_body(d).map_err(Error::InvalidAssignment)?;
    let applied = api
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(Error::member(format!("apply Deployment {ns}/{name}")))?;
    metrics.write("member", "apply", "deployments");
    info!(deployment = %format!("{ns}/{name}"), "applied");
    Ok(Applied::Done(Box::new(applied)))
}

/// Deletes a member Deployment (gone already is fine).
pub async fn delete_deployment(member: &Client, metrics: &Metrics, d: &Deployment) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let api: Api<Deployment> = Api::namespaced(member.clone(), &ns);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {
            metrics.write("member", "delete", "deployments");
            info!(deployment = %format!("{ns}/{name}"), "deleted");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::member(format!("delete Deployment {ns}/{name}"))(e)),
    }
}

/// The tombstones of one member, read once and then kept in step with every write (this syncer is their only
/// writer).
pub struct Tombstones {
    member: Client,
    cache: Mutex<Option<BTreeMap<String, Tombstone>>>,
}

impl Tombstones {
    /// Tombstones of `member`, read on first use.
    pub fn new(member: Client) -> Self {
        Tombstones { member, cache: Mutex::new(None) }
    }

    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.member.clone(), "marshal-system")
    }

    async fn read(&self) -> Result<(Option<String>, BTreeMap<String, Tombstone>), Error> {
        let cm = self
            .api()
            .get_opt(TOMBSTONES_CONFIGMAP)
            .await
            .map_err(Error::member(format!("read ConfigMap marshal-system/{TOMBSTONES_CONFIGMAP}")))?;
        let rv = cm.as_ref().and_then(|c| c.metadata.resource_version.clone());
        Ok((rv, freshness::parse(&cm.and_then(|c| c.data).unwrap_or_default())))
    }

    /// The tombstone of workload key `ns.name`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Tombstone>, Error> {
        if let Ok(c) = self.cache.lock()
            && let Some(all) = c.as_ref()
        {
            return Ok(all.get(key).cloned());
        }
        let (_, all) = self.read().await?;
        let found = all.get(key).cloned();
        if let Ok(mut c) = self.cache.lock() {
            *c = Some(all);
        }
        Ok(found)
    }

    /// Whether every one of `new` is already recorded at least as high.
    fn covered(&self, new: &[(String, Tombstone)]) -> bool {
        let Ok(c) = self.cache.lock() else { return false };
        let Some(all) = c.as_ref() else { return false };
        new.iter().all(|(k, t)| all.get(k).is_some_and(|o| o.sequence >= t.sequence && o.not_after >= t.not_after))
    }

    /// Records tombstones (one write for all of them; nothing when they are recorded already), pruning those
    /// whose instruction has expired.
    pub async fn record(&self, metrics: &Metrics, new: &[(String, Tombstone)]) -> Result<(), Error> {
        if new.is_empty() || self.covered(new) {
            return Ok(());
        }
        for attempt in 0..3 {
            let (rv, all) = self.read().await?;
            let data = freshness::render(all, new, jiff::Timestamp::now());
            let body = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(TOMBSTONES_CONFIGMAP.into()),
                    namespace: Some("marshal-system".into()),
                    resource_version: rv.clone(),
                    labels: Some([(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string())].into()),
                    ..Default::default()
                },
                data: Some(data.clone()),
                ..Default::default()
            };
            // The member chart creates the ConfigMap (the syncer's RBAC has no `create`); a member without it gets a
            // clear error, and its removals wait until it exists.
            let result = match rv {
                Some(_) => self.api().replace(TOMBSTONES_CONFIGMAP, &PostParams::default(), &body).await,
                None => self.api().create(&PostParams::default(), &body).await,
            };
            match result {
                Ok(_) => {
                    metrics.write("member", "update", "configmaps");
                    if let Ok(mut c) = self.cache.lock() {
                        *c = Some(freshness::parse(&data));
                    }
                    return Ok(());
                }
                Err(e) if is_conflict(&e) && attempt < 2 => continue,
                Err(e) => {
                    return Err(Error::member(format!(
                        "write ConfigMap marshal-system/{TOMBSTONES_CONFIGMAP} (the member chart creates it; the syncer \
                         may only update it)"
                    ))(e));
                }
            }
        }
        Ok(())
    }
}
