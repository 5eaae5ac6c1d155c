//! The Helm charts agree with the code: appVersion is the crate version, the hub chart's CRDs and admission
//! policy are byte-identical copies of `crds/` and `deploy/`, the RBAC grants every permission the code uses
//! (`marshal::permissions`) and nothing more, and the alerts and the dashboard query only metrics that
//! `marshal::metrics::Metrics` exports. The templates are read with a small static renderer (template actions
//! removed), so no helm binary is needed here; e2e/tests/40-helm-prometheus.sh checks the real rendering.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use marshal::permissions::{HUB_CONTROLLER, MEMBER, Permission, Scope};
use regex::Regex;
use serde_json::Value;

const REFRESH: &str = "run `make crds` to regenerate crds/ and refresh the chart's copies in charts/marshal/crds/";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// A template with its actions removed: lines holding only actions are dropped, inline actions become
/// `TEMPLATED` (`{{ $cluster }}` becomes `<cluster>`, the placeholder of `marshal::permissions::AGENT_HUB`).
fn render_static(text: &str) -> Vec<Value> {
    let action = Regex::new(r"\{\{-?\s*(.*?)\s*-?\}\}").expect("regex");
    // Raw strings ({{` ... `}}) pass their text through: drop the delimiters.
    let text = text.replace("{{`", "").replace("`}}", "");
    let body: Vec<String> = text
        .lines()
        .filter(|l| {
            let t = l.trim();
            !(t.starts_with("{{") && t.ends_with("}}") && action.replace_all(t, "").trim().is_empty())
        })
        .map(|l| {
            action.replace_all(l, |c: &regex::Captures| if &c[1] == "$cluster" { "<cluster>" } else { "TEMPLATED" })
        })
        .map(|l| l.into_owned())
        .collect();
    let text = body.join("\n");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("template parses as YAML once actions are removed"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// One RBAC rule as (group, resource, verb, names) tuples.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Grants of every object of `kind` in the documents.
fn grants(docs: &[Value], kind: &str) -> Vec<Grant> {
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == kind) {
        for rule in d["rules"].as_array().expect("rules") {
            // `resourceNames: {{ toJson ... }}` renders as TEMPLATED: a name list the chart fills in from values.
            let names = if rule["resourceNames"] == "TEMPLATED" {
                vec!["TEMPLATED".to_string()]
            } else {
                strings(&rule["resourceNames"])
            };
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for v in strings(&rule["verbs"]) {
                        out.push(Grant { group: g.clone(), resource: r.clone(), verb: v, names: names.clone() });
                    }
                }
            }
        }
    }
    out
}

/// Every permission of `scope` is granted (limited to its names at most), and every grant is such a
/// permission: no wildcard, no extra verb, no broader name set.
fn check(table: &[Permission], scope: Scope, granted: &[Grant], what: &str) {
    let wanted: Vec<&Permission> = table.iter().filter(|p| p.scope == scope).collect();
    assert!(!wanted.is_empty(), "{what}: nothing in the table for {scope:?}");
    for p in &wanted {
        for verb in p.verbs {
            let ok = granted.iter().any(|g| {
                g.group == p.api_group
                    && g.resource == p.resource
                    && g.verb == *verb
                    && (g.names.is_empty()
                        || g.names == ["TEMPLATED"]
                        || p.names.iter().all(|n| g.names.contains(&n.to_string())))
            });
            assert!(ok, "{what} does not grant {verb} on {}/{} ({}): {granted:#?}", p.api_group, p.resource, p.why);
        }
    }
    for g in granted {
        assert!(g.group != "*" && g.resource != "*" && g.verb != "*", "{what}: wildcard grant {g:?}");
        let used = wanted.iter().any(|p| {
            p.api_group == g.group
                && p.resource == g.resource
                && p.verbs.contains(&g.verb.as_str())
                && (p.names.is_empty()
                    || g.names == ["TEMPLATED"]
                    || (!g.names.is_empty() && g.names.iter().all(|n| p.names.contains(&n.as_str()))))
        });
        assert!(used, "{what} grants {g:?}, which src/permissions.rs does not list (least privilege)");
    }
}

#[test]
fn app_version_is_the_crate_version() {
    for chart in ["charts/marshal/Chart.yaml", "charts/marshal-agent/Chart.yaml"] {
        let c: Value = serde_yaml::from_str(&read(chart)).expect("Chart.yaml");
        assert_eq!(c["appVersion"], env!("CARGO_PKG_VERSION"), "{chart}: appVersion must equal Cargo.toml's version");
        assert_eq!(c["apiVersion"], "v2", "{chart}");
    }
}

#[test]
fn chart_crds_are_byte_identical_copies() {
    let src = yaml_files(&root().join("crds"));
    let copy = yaml_files(&root().join("charts/marshal/crds"));
    let names = |v: &[PathBuf]| -> Vec<String> {
        v.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(&src), names(&copy), "charts/marshal/crds/ holds other files than crds/: {REFRESH}");
    assert_eq!(src.len(), marshal::api::crds().len());
    for (a, b) in src.iter().zip(&copy) {
        let (x, y) = (std::fs::read(a).expect("crd"), std::fs::read(b).expect("copy"));
        assert!(x == y, "{} differs from {}: {REFRESH}", b.display(), a.display());
    }
    assert_eq!(
        read("deploy/admission-policy.yaml"),
        read("charts/marshal/files/admission-policy.yaml"),
        "charts/marshal/files/admission-policy.yaml must be a copy of deploy/admission-policy.yaml"
    );
}

#[test]
fn hub_rbac_covers_exactly_what_the_controller_uses() {
    let cluster = render_static(&read("charts/marshal/templates/clusterrole.yaml"));
    let ns = render_static(&read("charts/marshal/templates/role.yaml"));
    check(HUB_CONTROLLER, Scope::Cluster, &grants(&cluster, "ClusterRole"), "ClusterRole (hub chart)");
    check(HUB_CONTROLLER, Scope::ReleaseNamespace, &grants(&ns, "Role"), "Role (hub chart)");
    // Secrets only in the release namespace; nothing about RBAC anywhere.
    for g in grants(&cluster, "ClusterRole").iter().chain(&grants(&ns, "Role")) {
        assert_ne!(g.group, "rbac.authorization.k8s.io", "{g:?}");
        assert!(!(g.resource == "secrets" && grants(&cluster, "ClusterRole").contains(g)), "{g:?}");
    }
    // The bindings name the chart's ServiceAccount in the release namespace.
    for docs in [&cluster, &ns] {
        let binding =
            docs.iter().find(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("Binding"))).expect("binding");
        assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    }
}

#[test]
fn member_and_agent_rbac_cover_exactly_what_the_syncer_uses() {
    let member = render_static(&read("charts/marshal-agent/templates/rbac.yaml"));
    check(MEMBER, Scope::Cluster, &grants(&member, "ClusterRole"), "ClusterRole (member chart)");
    check(MEMBER, Scope::MemberSystem, &grants(&member, "Role"), "Role (member chart)");
    // The chart's guard and `marshal agent guard` (src/agent/guard.rs) render one file with the same placeholders;
    // the e2e tier compares the rendered policies on a live API server.
    let clearance: marshal::sync::recheck::MemberClearance = serde_yaml::from_str(
        "nation: POL\nclearance: {policy: NATO, classifications: [UNCLASSIFIED], reviewBy: \"2099-01-01T00:00:00Z\"}\n",
    )
    .expect("clearance");
    let cli = marshal::agent::guard::policy_yaml("pol-1", &clearance, &["marshal".to_string()]).expect("guard");
    let file = read("charts/marshal-agent/files/member-guard.yaml");
    let helpers = read("charts/marshal-agent/templates/_helpers.tpl");
    let placeholders: BTreeSet<String> = regex::Regex::new(r"\{[A-Z_]+\}")
        .expect("regex")
        .find_iter(&file)
        .map(|m| m.as_str().to_string())
        .filter(|p| p != "{PLACEHOLDERS}")
        .collect();
    assert!(placeholders.len() >= 9, "{placeholders:?}");
    for p in &placeholders {
        assert!(!cli.contains(p.as_str()), "`marshal agent guard` leaves {p} unfilled");
        assert!(helpers.contains(&format!("replace \"{p}\"")), "the member chart does not fill {p}");
    }
    assert!(read("charts/marshal-agent/templates/guard.yaml").contains("include \"marshal-agent.guard\""));
    assert!(helpers.contains(".Files.Get \"files/member-guard.yaml\""));
    assert!(!file.contains("paramKind:"), "the member guard must not use a paramKind");
}

/// The hub chart's `pullAgents` objects are those of `marshal agent rbac` (src/agent/rbac.rs): same kinds,
/// names, namespaces and rules. The template's link list renders as the single name `<cluster>.TEMPLATED`.
#[test]
fn pull_agent_rbac_is_what_marshal_agent_rbac_prints() {
    let rendered = render_static(&read("charts/marshal/templates/pull-agents.yaml"));
    let expected: Vec<Value> = marshal::agent::rbac::objects("<cluster>", &["<cluster>.TEMPLATED".to_string()]);
    let id = |v: &Value| {
        format!(
            "{}/{}/{}",
            v["kind"].as_str().unwrap_or_default(),
            v["metadata"]["namespace"].as_str().unwrap_or_default(),
            v["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let ids = |v: &[Value]| -> BTreeSet<String> { v.iter().map(id).collect() };
    assert_eq!(ids(&rendered), ids(&expected), "pull-agents.yaml objects differ from `marshal agent rbac`");
    for kind in ["Role", "ClusterRole"] {
        let mut a = grants(&rendered, kind);
        let mut b = grants(&expected, kind);
        a.sort();
        b.sort();
        assert_eq!(a, b, "{kind} of pull agents differs from `marshal agent rbac`");
    }
    for d in expected.iter().filter(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("Binding"))) {
        let r = rendered.iter().find(|r| id(r) == id(d)).expect("binding");
        assert_eq!(r["subjects"], d["subjects"], "{}", id(d));
        assert_eq!(r["roleRef"], d["roleRef"], "{}", id(d));
    }
}

/// Every metric family `Metrics` registers, by name.
fn exported_metrics() -> BTreeSet<String> {
    use prometheus::core::Collector;
    let m = marshal::metrics::Metrics::new().expect("metrics");
    let collectors: Vec<&dyn Collector> = vec![
        &m.reconcile_total,
        &m.reconcile_errors_total,
        &m.reconcile_duration_seconds,
        &m.decision_duration_seconds,
        &m.workloads,
        &m.placed_replicas,
        &m.cluster_reachable,
        &m.cluster_heartbeat_age_seconds,
        &m.cluster_free,
        &m.link_state,
        &m.link_rtt_seconds,
        &m.replacements_total,
        &m.not_ready_backoffs_total,
        &m.failover_seconds,
        &m.filter_rejections_total,
        &m.assignment_refusals_total,
        &m.api_writes_total,
        &m.fleet_frozen,
        &m.orphans_held,
        &m.leader,
        &m.unreadable_objects_total,
        &m.assignments_ignored_total,
        &m.assignments_orphaned_total,
        &m.probe_refusals_total,
    ];
    let registered = read("src/metrics.rs").matches("r.register(").count();
    assert!(
        registered >= collectors.len(),
        "src/metrics.rs registers {registered} metrics, this test lists {}",
        collectors.len()
    );
    collectors.iter().flat_map(|c| c.desc()).map(|d| d.fq_name.clone()).collect()
}

/// Metric names in PromQL text (histogram series suffixes removed).
fn queried(promql: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\bmarshal_[a-z_]+").expect("regex");
    re.find_iter(promql)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(n)
                .to_string()
        })
        .collect()
}

#[test]
fn alerts_and_dashboard_query_only_exported_metrics() {
    let exported = exported_metrics();
    let rules = render_static(&read("charts/marshal/templates/prometheusrule.yaml"));
    let groups = rules[0]["spec"]["groups"].as_array().expect("groups");
    let mut alerts = BTreeSet::new();
    for r in groups.iter().flat_map(|g| g["rules"].as_array().expect("rules")) {
        let expr = r["expr"].as_str().expect("expr");
        let names = queried(expr);
        assert!(!names.is_empty(), "{expr}");
        for n in names {
            assert!(exported.contains(&n), "alert {} queries {n}, which src/metrics.rs does not export", r["alert"]);
        }
        alerts.insert(r["alert"].as_str().expect("alert").to_string());
    }
    for a in [
        "MarshalClusterUnreachable",
        "MarshalAssignmentRefused",
        "MarshalReplacementNotReady",
        "MarshalOrphanRemovalHeld",
        "MarshalFleetFrozen",
        "MarshalWorkloadsNotPlaced",
        "MarshalReconcileErrors",
    ] {
        assert!(alerts.contains(a), "missing alert {a}");
    }
    let dash: Value = serde_json::from_str(&read("charts/marshal/files/dashboard.json")).expect("dashboard JSON");
    let mut used = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            used.extend(queried(t["expr"].as_str().expect("expr")));
        }
    }
    for n in &used {
        assert!(exported.contains(n), "the dashboard queries {n}, which src/metrics.rs does not export");
    }
    for n in ["marshal_placed_replicas", "marshal_cluster_reachable", "marshal_link_state", "marshal_link_rtt_seconds"]
    {
        assert!(used.contains(n), "the dashboard should show {n}");
    }
    for n in ["marshal_replacements_total", "marshal_assignment_refusals_total", "marshal_reconcile_duration_seconds"] {
        assert!(used.contains(n), "the dashboard should show {n}");
    }
}

/// `values.yaml` lines `key: value` without a `# --` description on themselves or on an enclosing map.
fn undocumented(text: &str) -> Vec<String> {
    let key = Regex::new(r"^( *)([A-Za-z][A-Za-z0-9_.-]*):(.*)$").expect("regex");
    let mut parents: Vec<(usize, bool)> = Vec::new();
    let mut described = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("# --") {
            described = true;
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        let Some(c) = key.captures(line) else {
            described = false;
            continue;
        };
        let indent = c[1].len();
        while parents.last().is_some_and(|(d, _)| *d >= indent) {
            parents.pop();
        }
        let documented = described || parents.iter().any(|(_, d)| *d);
        if c[3].trim().is_empty() {
            parents.push((indent, documented));
        } else if !documented {
            out.push(format!("line {}: {}", i + 1, line.trim()));
        }
        described = false;
    }
    out
}

#[test]
fn every_value_is_documented() {
    for chart in ["charts/marshal/values.yaml", "charts/marshal-agent/values.yaml"] {
        let missing = undocumented(&read(chart));
        assert!(missing.is_empty(), "{chart}: values without a `# --` description: {missing:#?}");
    }
    assert_eq!(undocumented("a:\n  b: 1\n"), ["line 2: b: 1"], "the check itself finds a bare value");
}
