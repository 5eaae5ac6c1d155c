//! `marshal explain -n NS NAME` (also `kubectl marshal explain ...` when the binary is installed as
//! `kubectl-marshal`): a workload's placements and its per-cluster verdict table, read from live status. For every
//! candidate (cluster, tier) it says whether it is in or out, why (the verdict reason and message), from which
//! fact, and how old that fact is. Rendering is pure ([`render`]) and fits the requested width (default 100).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

use crate::api::{ClusterLink, HEARTBEAT_LABEL, LABEL_CLUSTER, MemberCluster, MissionWorkload, VerdictStatus};

/// Name of the binary when kubectl runs it as a plugin (`kubectl marshal ...`).
pub const KUBECTL_PLUGIN: &str = "kubectl-marshal";

/// Arguments of `marshal explain`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// Name of the MissionWorkload.
    pub name: String,
    /// Namespace of the MissionWorkload (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Output width in columns (default: $COLUMNS, else 100).
    #[arg(long)]
    pub width: Option<usize>,
}

/// Whether the program was started as the kubectl plugin (`argv[0]`'s file name is `kubectl-marshal`).
pub fn is_kubectl_plugin(argv0: &OsStr) -> bool {
    Path::new(argv0).file_stem().is_some_and(|s| s == KUBECTL_PLUGIN)
}

/// What [`render`] reads: the workload and the facts about clusters and links, at `now`.
pub struct Facts<'a> {
    /// The MissionWorkload with its status.
    pub workload: &'a MissionWorkload,
    /// Every MemberCluster (their status carries heartbeat and capacity times).
    pub clusters: &'a [MemberCluster],
    /// Every ClusterLink.
    pub links: &'a [ClusterLink],
    /// Last heartbeat per cluster, from the heartbeat Leases (the fact the engine uses); when a cluster is
    /// missing here, its MemberCluster's `status.lastHeartbeatTime` is shown instead.
    pub heartbeats: &'a BTreeMap<String, Timestamp>,
    /// The time ages are measured at.
    pub now: Timestamp,
    /// Notes to print at the end (e.g. a list that could not be read).
    pub notes: &'a [String],
}

/// `45s`, `12m`, `5h`, `3d`; `-` for none.
pub fn age(now: Timestamp, t: Option<Timestamp>) -> String {
    let Some(t) = t else { return "-".into() };
    let s = (now.as_second() - t.as_second()).max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The link between two clusters, `a.b` first, then `b.a` (as the engine reads it).
fn link_between<'a>(links: &'a [ClusterLink], a: &str, b: &str) -> Option<&'a ClusterLink> {
    let by = |f: &str, t: &str| links.iter().find(|l| l.spec.from == f && l.spec.to == t);
    by(a, b).or_else(|| by(b, a))
}

/// A cluster's last heartbeat: its Lease's renewTime, else the MemberCluster's `status.lastHeartbeatTime`.
fn heartbeat_of(f: &Facts, cluster: &str) -> Option<Timestamp> {
    f.heartbeats.get(cluster).copied().or_else(|| {
        let mc = f.clusters.iter().find(|c| c.name_any() == cluster)?;
        ts(&mc.status.as_ref()?.last_heartbeat_time)
    })
}

/// The fact a verdict rests on and when it was observed (`None`: configuration, which does not age).
pub fn fact(v: &VerdictStatus, f: &Facts) -> (String, Option<Timestamp>) {
    let mc = f.clusters.iter().find(|c| c.name_any() == v.cluster);
    let status = mc.and_then(|c| c.status.as_ref());
    let heartbeat = ts(&v.observed_at).or_else(|| heartbeat_of(f, &v.cluster));
    let capacity = status.and_then(|s| ts(&s.observed_at));
    let source = f.workload.spec.placement.data_source.as_ref().map(|d| d.cluster.as_str());
    match v.reason.as_str() {
        "ClusterUnknown" => ("MemberCluster".into(), None),
        "Unreachable" => ("heartbeat".into(), heartbeat),
        "Tainted" => ("cluster taints".into(), None),
        "AccreditationExpired" => ("clearance.reviewBy".into(), None),
        "PolicyMismatch" | "ClassificationNotCleared" | "NotReleasable" => ("cluster clearance".into(), None),
        "LabelInvalid" => ("label, SecurityPolicy rules".into(), None),
        "PolicyUnknown" => ("SecurityPolicy".into(), None),
        "ResidencyViolation" => ("residency/nation".into(), None),
        "HostRefused" => ("host admission".into(), None),
        "RefusedByMember" => ("member's own clearance".into(), None),
        "NotSelected" => ("cluster labels".into(), None),
        "TierNotAllowed" => ("tiers".into(), None),
        "LinkInsufficient" => {
            let link = source.and_then(|s| link_between(f.links, s, &v.cluster));
            let name = link.map_or_else(|| "link".to_string(), |l| format!("link {}", l.name_any()));
            let at =
                ts(&v.observed_at).or_else(|| link.and_then(|l| l.status.as_ref()).and_then(|s| ts(&s.observed_at)));
            (name, at)
        }
        r if r == "CapacityUnknown" || r.starts_with("Insufficient") => ("capacity".into(), capacity),
        // Eligible: it rests on the heartbeat and the capacity report; the older one is the stalest input.
        _ => match (heartbeat, capacity) {
            (Some(h), Some(c)) if c < h => ("capacity".into(), Some(c)),
            (Some(h), _) => ("heartbeat".into(), Some(h)),
            (None, c) => ("capacity".into(), c),
        },
    }
}

/// A table whose last column wraps into whatever width is left.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>], width: usize) {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n - 1) {
            widths[i] = widths[i].max(c.chars().count()).min(24);
        }
    }
    let indent = 2;
    let lead: usize = indent + widths[..n - 1].iter().map(|w| w + 2).sum::<usize>();
    // When fewer than 30 columns are left, the last column goes on its own lines below the row.
    let below = width < lead + 30;
    let (last, pad) = if below { (width - 6, 6) } else { (width - lead, lead) };
    let cell = |s: &str, w: usize| -> String {
        let t: String = if s.chars().count() > w { s.chars().take(w - 1).chain(['…']).collect() } else { s.into() };
        format!("{t:<w$}  ")
    };
    let mut line = " ".repeat(indent);
    for (i, h) in headers.iter().enumerate().take(n - 1) {
        line.push_str(&cell(h, widths[i]));
    }
    line.push_str(headers[n - 1]);
    let _ = writeln!(out, "{}", line.trim_end());
    for r in rows {
        let mut line = " ".repeat(indent);
        for (i, c) in r.iter().enumerate().take(n - 1) {
            line.push_str(&cell(c, widths[i]));
        }
        let mut wrapped = wrap(r.get(n - 1).map_or("", String::as_str), last).into_iter();
        if !below {
            line.push_str(&wrapped.next().unwrap_or_default());
        }
        let _ = writeln!(out, "{}", line.trim_end());
        for more in wrapped {
            let _ = writeln!(out, "{}{more}", " ".repeat(pad));
        }
    }
}

/// Words into lines of at most `w` characters (longer words are cut).
fn wrap(text: &str, w: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let mut word: String = word.into();
        loop {
            let cur = lines.last_mut().map_or(0, |l| l.chars().count());
            let len = word.chars().count();
            if cur > 0 && cur + 1 + len <= w {
                if let Some(l) = lines.last_mut() {
                    l.push(' ');
                    l.push_str(&word);
                }
                break;
            }
            if cur > 0 {
                lines.push(String::new());
                continue;
            }
            if len <= w {
                if let Some(l) = lines.last_mut() {
                    l.push_str(&word);
                }
                break;
            }
            let head: String = word.chars().take(w).collect();
            word = word.chars().skip(w).collect();
            if let Some(l) = lines.last_mut() {
                l.push_str(&head);
            }
            lines.push(String::new());
        }
    }
    if lines.len() > 1 && lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn free_summary(mc: &MemberCluster) -> String {
    let Some(s) = mc.status.as_ref() else { return "-".into() };
    let parts: Vec<String> = s
        .capacity
        .iter()
        .map(|(tier, c)| {
            let cpu = c.free.cpu.as_deref().map_or("?".into(), human_cpu);
            let mem = c.free.memory.as_deref().map_or("?".into(), human_bytes);
            format!("{tier} {}/{} nodes, {cpu} cpu {mem} free", c.ready_nodes, c.nodes)
        })
        .collect();
    if parts.is_empty() { "-".into() } else { parts.join("; ") }
}

/// A CPU quantity in cores (`15400m` → `15.4`); unparsable text is shown as it is.
fn human_cpu(q: &str) -> String {
    match crate::placement::quantity::parse_signed_milli(q) {
        Some(m) if m % 1000 == 0 => format!("{}", m / 1000),
        Some(m) => format!("{:.1}", m as f64 / 1000.0),
        None => q.to_string(),
    }
}

/// A byte quantity in binary units (`68048388096` → `63.4Gi`); unparsable text is shown as it is.
fn human_bytes(q: &str) -> String {
    let Some(b) = crate::placement::quantity::parse_signed_units(q) else { return q.to_string() };
    let units = [("Ti", 1i64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    match units.iter().find(|(_, size)| b.abs() >= *size) {
        Some((unit, size)) => format!("{:.1}{unit}", b as f64 / *size as f64),
        None => format!("{b}"),
    }
}

/// The whole explanation, at most `width` columns wide (100 is the target; narrower widths wrap more).
pub fn render(f: &Facts, width: usize) -> String {
    let width = width.max(60);
    let w = f.workload;
    let status = w.status.clone().unwrap_or_default();
    let ns = w.namespace().unwrap_or_default();
    let mut out = String::new();
    let decided = age(f.now, ts(&status.last_decision_time));
    let wanted = match w.spec.placement.mode {
        crate::api::PlacementMode::Duplicated if status.desired_replicas > 0 => {
            format!("{} per cluster, {} in all", w.spec.replicas, status.desired_replicas)
        }
        crate::api::PlacementMode::Duplicated => format!("{} per cluster", w.spec.replicas),
        crate::api::PlacementMode::Divided => format!("{} wanted", w.spec.replicas),
    };
    let head = format!(
        "MissionWorkload {ns}/{}: {:?}, {}/{} ready ({wanted}), decided {decided} ago",
        w.name_any(),
        status.phase,
        status.ready_replicas,
        status.replicas,
    );
    for l in wrap(&head, width) {
        let _ = writeln!(out, "{l}");
    }
    let label = &w.spec.confidentiality;
    let cats: Vec<String> =
        label.categories.iter().map(|c| format!("{}: {}", c.tag_name, c.values.join(", "))).collect();
    let mut facts = format!("owner {}, label {} {}", w.spec.owner, label.policy, label.classification);
    if !cats.is_empty() {
        let _ = write!(facts, " ({})", cats.join("; "));
    }
    if !w.spec.residency.is_empty() {
        let _ = write!(facts, ", residency {}", w.spec.residency.join(", "));
    }
    if let Some(ds) = &w.spec.placement.data_source {
        let _ = write!(facts, ", data source {}", ds.cluster);
    }
    if status.observed_generation != w.metadata.generation {
        let _ = write!(
            facts,
            "; status describes generation {}, spec is at {} (not yet reconciled)",
            status.observed_generation.unwrap_or(0),
            w.metadata.generation.unwrap_or(0)
        );
    }
    for l in wrap(&facts, width - 2) {
        let _ = writeln!(out, "  {l}");
    }
    if let Some(fb) = &status.failback {
        let line = format!(
            "failback to {} pending since {} ago (failbackAfterSeconds {})",
            fb.targets.join(", "),
            age(f.now, Some(fb.since.0)),
            w.spec.failover.failback_after_seconds
        );
        let _ = writeln!(out, "  {line}");
    }

    let _ = writeln!(out, "\nPLACEMENTS");
    if status.placements.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let rows: Vec<Vec<String>> = status
            .placements
            .iter()
            .map(|p| {
                vec![
                    p.cluster.clone(),
                    p.tier.clone(),
                    p.replicas.to_string(),
                    p.ready_replicas.to_string(),
                    age(f.now, ts(&p.since)),
                    p.reason.clone(),
                ]
            })
            .collect();
        table(&mut out, &["CLUSTER", "TIER", "REPLICAS", "READY", "SINCE", "WHY"], &rows, width);
    }

    let _ = writeln!(out, "\nVERDICTS (in or out, why, from which fact, and the fact's age)");
    if status.verdicts.is_empty() {
        let _ = writeln!(out, "  none yet: the controller has not decided this generation");
    } else {
        let rows: Vec<Vec<String>> = status
            .verdicts
            .iter()
            .map(|v| {
                let placed = status.placements.iter().any(|p| p.cluster == v.cluster && p.tier == v.tier);
                let inout = match (placed, v.eligible) {
                    (true, _) => "placed",
                    (false, true) => "spare",
                    (false, false) => "out",
                };
                let (fact, at) = fact(v, f);
                let detail = match (v.message.is_empty(), v.eligible) {
                    (false, _) => v.message.clone(),
                    (true, true) => "passes every filter".to_string(),
                    (true, false) => v.reason.clone(),
                };
                vec![v.cluster.clone(), v.tier.clone(), inout.into(), v.reason.clone(), fact, age(f.now, at), detail]
            })
            .collect();
        table(&mut out, &["CLUSTER", "TIER", "IN", "REASON", "FACT", "AGE", "DETAIL"], &rows, width);
    }

    if !status.conditions.is_empty() {
        let _ = writeln!(out, "\nCONDITIONS");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    age(f.now, Some(c.last_transition_time.0)),
                    c.message.clone(),
                ]
            })
            .collect();
        table(&mut out, &["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows, width);
    }

    let candidates: Vec<&str> = {
        let mut v: Vec<&str> = status.verdicts.iter().map(|v| v.cluster.as_str()).collect();
        v.dedup();
        v
    };
    let clusters: Vec<&MemberCluster> =
        f.clusters.iter().filter(|c| candidates.is_empty() || candidates.contains(&c.name_any().as_str())).collect();
    if !clusters.is_empty() {
        let _ = writeln!(out, "\nCLUSTERS");
        let rows: Vec<Vec<String>> = clusters
            .iter()
            .map(|mc| {
                let s = mc.status.as_ref();
                let reachable = s
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Reachable"))
                    .map_or_else(|| "Unknown".to_string(), |c| c.status.clone());
                vec![
                    mc.name_any(),
                    mc.spec.nation.clone(),
                    reachable,
                    age(f.now, heartbeat_of(f, &mc.name_any())),
                    age(f.now, s.and_then(|s| ts(&s.observed_at))),
                    free_summary(mc),
                ]
            })
            .collect();
        table(&mut out, &["CLUSTER", "NATION", "REACHABLE", "HEARTBEAT", "CAPACITY", "FREE"], &rows, width);
    }

    if let Some(ds) = &w.spec.placement.data_source {
        let links: Vec<&ClusterLink> =
            f.links.iter().filter(|l| l.spec.from == ds.cluster || l.spec.to == ds.cluster).collect();
        let _ = writeln!(out, "\nLINKS FROM THE DATA SOURCE {}", ds.cluster);
        if links.is_empty() {
            let _ = writeln!(out, "  none: every other cluster is LinkInsufficient (unknown fails closed)");
        } else {
            let rows: Vec<Vec<String>> = links
                .iter()
                .map(|l| {
                    let s = l.status.clone().unwrap_or_default();
                    let opt = |v: Option<u32>, unit: &str| v.map_or_else(|| "-".to_string(), |v| format!("{v}{unit}"));
                    vec![
                        l.name_any(),
                        format!("{:?}", s.state),
                        opt(s.rtt_ms, "ms"),
                        opt(s.bandwidth_mbps, "Mbps"),
                        age(f.now, ts(&s.observed_at)),
                        format!(
                            "{} (stale after {}s)",
                            s.reporter.unwrap_or_else(|| "-".into()),
                            l.spec.stale_after_seconds
                        ),
                    ]
                })
                .collect();
            table(&mut out, &["LINK", "STATE", "RTT", "BANDWIDTH", "OBSERVED", "REPORTER"], &rows, width);
        }
    }
    for n in f.notes {
        let _ = writeln!(out, "\nnote: {n}");
    }
    out
}

async fn client(args: &ExplainArgs) -> Result<Client, String> {
    let opts = KubeConfigOptions { context: args.context.clone(), ..KubeConfigOptions::default() };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| e.to_string())?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&opts).await.map_err(|e| e.to_string())?,
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
}

/// Reads the live objects and renders the explanation.
pub async fn run(args: ExplainArgs) -> Result<String, String> {
    let client = client(&args).await?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let mw = Api::<MissionWorkload>::namespaced(client.clone(), &ns)
        .get(&args.name)
        .await
        .map_err(|e| format!("MissionWorkload {ns}/{}: {e}", args.name))?;
    let mut notes = Vec::new();
    let clusters = match Api::<MemberCluster>::all(client.clone()).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            notes.push(format!("cannot list MemberClusters ({e}): fact ages of heartbeats and capacity are missing"));
            Vec::new()
        }
    };
    let mut heartbeats = BTreeMap::new();
    let lp = ListParams::default().labels(&format!("{HEARTBEAT_LABEL}=true"));
    match Api::<Lease>::all(client.clone()).list(&lp).await {
        Ok(l) => {
            for lease in l.items {
                let cluster = lease.labels().get(LABEL_CLUSTER).cloned();
                let renewed = lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
                if let (Some(c), Some(t)) = (cluster, renewed) {
                    heartbeats.insert(c, t);
                }
            }
        }
        Err(e) => {
            notes.push(format!("cannot list heartbeat Leases ({e}): heartbeat ages come from MemberCluster status"))
        }
    }
    let links = match Api::<ClusterLink>::all(client).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            notes.push(format!("cannot list ClusterLinks ({e}): link facts are missing"));
            Vec::new()
        }
    };
    let width = args.width.or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())).unwrap_or(100);
    let facts = Facts {
        workload: &mw,
        clusters: &clusters,
        links: &links,
        heartbeats: &heartbeats,
        now: Timestamp::now(),
        notes: &notes,
    };
    Ok(render(&facts, width))
}
