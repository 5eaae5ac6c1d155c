#!/usr/bin/env bash
# End-to-end test of the Helm charts and the Prometheus integration on the local federation (e2e/ci.sh runs it
# through `e2e/federation run`, inside the network namespace, from the repository root):
#   1. helm lint and helm template of both charts, default and custom values (server-side dry-run where the
#      kinds exist);
#   2. helm install of the hub chart into the hub (no nodes there: the Deployment's pod is created, admitted
#      under the restricted Pod Security Standard, and stays Pending); the ServiceAccount's RBAC, asked with
#      `kubectl auth can-i`, grants each permission of src/permissions.rs and nothing like Secrets elsewhere or RBAC;
#   3. the controller process runs with a token of that ServiceAccount and the chart's own arguments, and places
#      the Baltic exercise: the chart's RBAC is what is tested (any "forbidden" in its log fails the test);
#   4. a real Prometheus (Debian package) scrapes it: promtool check metrics and check rules (the rules extracted
#      from the chart), marshal_cluster_reachable lists the members, MarshalClusterUnreachable fires when ltu-1's
#      link is cut, MarshalAssignmentRefused fires when deu-1's own clearance (installed with the member chart)
#      refuses an Assignment, the member guard rejects what it must, and every metric the dashboard queries is
#      on /metrics.
# Everything it creates is removed again. Prints `helm-prometheus: N passed, M failed` last.
set -uo pipefail
cd "$(dirname "$0")/../.."
TB_PROG=helm-prometheus
# shellcheck source=e2e/lib.sh
source e2e/lib.sh

STATE=${MARSHAL_TB_STATE:-/tmp/marshal-tb}
BASE=${MARSHAL_TB_PORT_BASE:-36000}
# base+45..49 are inside the federation's reserved port range and used by nothing else.
METRICS_PORT=$((BASE + 45))
PROM_PORT=$((BASE + 46))
NS=marshal-system
SA=marshal
HUB_SA="system:serviceaccount:$NS:$SA"
WL_NS=baltic-shield
WORK=$(mktemp -d)
CTL_LOG=$STATE/helm-controller.log
PROM_LOG=$STATE/helm-prometheus.log
EXAMPLES=(examples/baltic/05-namespace.yaml examples/baltic/00-security-policy.yaml
  examples/baltic/10-member-clusters.yaml examples/baltic/20-cluster-links.yaml examples/baltic/30-workloads.yaml)
passed=0
failed=0
started=$(date +%s)

ok() {
  passed=$((passed + 1))
  echo "  ok   $*"
}
bad() {
  failed=$((failed + 1))
  echo "  FAIL $*"
}
# check WHAT CMD...: one counted check; on failure shows the command's last output lines.
check() {
  local what=$1
  shift
  if "$@" >"$WORK/last.log" 2>&1; then ok "$what"; else
    bad "$what"
    tail -n 8 "$WORK/last.log" | sed 's/^/       /'
  fi
}
# eventually SECONDS WHAT CMD...: a check that may take up to SECONDS to become true.
eventually() {
  local secs=$1 what=$2 t0=$SECONDS
  shift 2
  until "$@" >"$WORK/last.log" 2>&1; do
    if ((SECONDS - t0 >= secs)); then
      bad "$what (not within ${secs}s)"
      tail -n 8 "$WORK/last.log" | sed 's/^/       /'
      return 1
    fi
    sleep 1
  done
  ok "$what ($((SECONDS - t0))s)"
}
step() { echo "=== $* ($(($(date +%s) - started))s)"; }
stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
  local i
  [[ -n $1 ]] || return 0
  kill "$1" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null
}
k() { kubectl --kubeconfig "$KUBECONFIG_HUB" "$@"; }
kdeu() { kubectl --kubeconfig "$KUBECONFIG_DEU_1" "$@"; }

# Prometheus and promtool come from Debian, installed by e2e/preflight before the namespace was entered: inside
# it no package registry is reachable, so a missing command is an error naming the package, never an install.
tb_require prometheus promtool curl jq yq python3

# ---------------------------------------------------------------------------------------------------------------
CTL_PID="" PROM_PID="" MON_PID=""
had_vap=""
cleanup() {
  step "cleanup"
  e2e/federation link ltu-1 up >/dev/null 2>&1 || true
  helm --kubeconfig "$KUBECONFIG_DEU_1" uninstall marshal-agent -n "$NS" --wait >/dev/null 2>&1 || true
  kdeu label ns "$NS" pod-security.kubernetes.io/enforce- >/dev/null 2>&1 || true
  # Workloads go while the controller still runs, so their Assignments and member Deployments go too.
  k delete mw -n "$WL_NS" --all --wait=false >/dev/null 2>&1 || true
  local i
  for i in $(seq 90); do
    [[ -z $(k get mw -n "$WL_NS" -o name 2>/dev/null) ]] && break
    sleep 1
  done
  stop_pid "$MON_PID"
  stop_pid "$CTL_PID"
  stop_pid "$PROM_PID"
  # No MemberCluster that never heartbeats may stay behind (the fleet freeze counts every MemberCluster).
  for f in examples/baltic/20-cluster-links.yaml examples/baltic/10-member-clusters.yaml; do
    k delete -f "$f" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
  k delete ns "$WL_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  for m in pol-1 deu-1 ltu-1; do k delete lease heartbeat -n "marshal-$m" --ignore-not-found >/dev/null 2>&1; done
  helm --kubeconfig "$KUBECONFIG_HUB" uninstall marshal -n "$NS" --wait >/dev/null 2>&1 || true
  # The chart keeps the signing key on uninstall (agents trust it); this test's key goes.
  k delete secret -n "$NS" marshal-signing-key --ignore-not-found >/dev/null 2>&1 || true
  kdeu delete namespace guard-probe --ignore-not-found --wait=false >/dev/null 2>&1 || true
  k label ns "$NS" pod-security.kubernetes.io/enforce- >/dev/null 2>&1 || true
  [[ -n $had_vap ]] && k apply -f deploy/admission-policy.yaml >/dev/null 2>&1
  rm -rf "$WORK"
  echo "helm-prometheus took $(($(date +%s) - started))s"
  echo "helm-prometheus: $passed passed, $failed failed"
}
trap cleanup EXIT

step "preflight: links up, no foreign MemberClusters, no earlier release"
for m in pol-1 deu-1 ltu-1; do e2e/federation link "$m" up >/dev/null; done
for mc in $(k get mc -o name 2>/dev/null); do
  case ${mc##*/} in pol-1 | deu-1 | ltu-1 | lva-1) ;; *) k delete "$mc" --wait=false >/dev/null ;; esac
done
helm --kubeconfig "$KUBECONFIG_HUB" uninstall marshal -n "$NS" --wait >/dev/null 2>&1 || true
# Workloads and Assignments of earlier tests would carry their own history (stickiness, failback windows): drop
# them. No controller runs now, so their finalizers go too; member copies left behind are orphans, which the
# syncers of the controller started below delete.
drop() { # namespace kind: remove every object's finalizers, then the object
  local o
  for o in $(k get "$2" -n "$1" -o name 2>/dev/null); do
    k patch "$o" -n "$1" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    k delete "$o" -n "$1" --ignore-not-found --wait=false >/dev/null 2>&1
  done
}
drop "$WL_NS" missionworkloads.marshal.dev
for n in $(k get assignments.marshal.dev -A -o jsonpath='{.items[*].metadata.namespace}' 2>/dev/null | tr ' ' '\n' | sort -u); do
  drop "$n" assignments.marshal.dev
done
# Their member copies would be orphans that the syncers keep for the orphan grace (30 s), holding capacity while
# this test's first decisions are made, or held outright once they are most of a member's objects. Each member's
# admin removes them here, so the test starts from nothing of ours in the members too.
for kc in "$KUBECONFIG_POL_1" "$KUBECONFIG_DEU_1" "$KUBECONFIG_LTU_1"; do
  kubectl --kubeconfig "$kc" delete deploy -A -l app.kubernetes.io/managed-by=marshal --wait=false >/dev/null 2>&1 || true
done
no_marshal_pods() {
  local kc n
  for kc in "$KUBECONFIG_POL_1" "$KUBECONFIG_DEU_1" "$KUBECONFIG_LTU_1"; do
    n=$(kubectl --kubeconfig "$kc" get pods -A -l app.kubernetes.io/managed-by=marshal -o name | wc -l)
    [[ $n == 0 ]] || { echo "$kc: $n Marshal pods left"; return 1; }
  done
}
eventually 90 "no Marshal Deployment or pod left in the members" no_marshal_pods
cargo build --offline -q --bin marshal || tb_die "cargo build failed"
MARSHAL=target/debug/marshal

# ---------------------------------------------------------------------------------------------------------------
step "helm lint and helm template, default and custom values"
check "lint hub chart (default values)" helm lint --strict charts/marshal
check "lint hub chart (custom values)" helm lint --strict charts/marshal -f e2e/helm/hub-values.yaml
check "lint member chart (custom values)" helm lint --strict charts/marshal-agent -n "$NS" -f e2e/helm/agent-values.yaml
helm template marshal charts/marshal -n "$NS" >"$WORK/hub-default.yaml" 2>"$WORK/err" || bad "template hub default"
helm template marshal charts/marshal -n "$NS" -f e2e/helm/hub-values.yaml >"$WORK/hub-custom.yaml" 2>"$WORK/err" ||
  bad "template hub custom"
helm template marshal-agent charts/marshal-agent -n "$NS" -f e2e/helm/agent-values.yaml >"$WORK/agent.yaml" ||
  bad "template member chart"
check "hub chart (default) is accepted by the hub API server (dry run)" \
  k apply --dry-run=server -f "$WORK/hub-default.yaml"
check "member chart is accepted by a member API server (dry run)" kdeu apply --dry-run=server -f "$WORK/agent.yaml"
default_kinds() {
  local got want="ClusterRole ClusterRoleBinding ConfigMap Deployment NetworkPolicy Role RoleBinding Secret Service"
  want+=" ServiceAccount ValidatingAdmissionPolicy ValidatingAdmissionPolicyBinding"
  got=$(yq -r '.kind' "$WORK/hub-default.yaml" | sort | tr '\n' ' ')
  [[ ${got% } == "$want" ]] || { echo "kinds: $got"; return 1; }
}
check "default hub render: controller, RBAC, Service, NetworkPolicy, dashboard, admission policy" default_kinds
custom_render() {
  local spec
  spec=$(yq -c 'select(.kind == "Deployment") | .spec.template.spec' "$WORK/hub-custom.yaml")
  jq -e --arg ns "$NS" '.containers[0] | (.args | index("--leader-elect") != null)
      and (.args | index("--leader-namespace=" + $ns) != null)
      and (.args | index("--signing-key-secret=" + $ns + "/marshal-signing-key") != null)
      and (.image | endswith("@sha256:" + ("0" * 64))) and .readinessProbe.httpGet.path == "/healthz"' <<<"$spec" &&
    [[ $(yq -r 'select(.kind == "ServiceMonitor" or .kind == "PrometheusRule") | .kind' "$WORK/hub-custom.yaml" |
      wc -l) == 2 ]]
}
check "custom hub render: 2 replicas elect a leader, image by digest, signing key, ServiceMonitor, PrometheusRule" \
  custom_render
rules_of() { jq -cS '[.[] | {apiGroups, resources, verbs, resourceNames}]'; }
pull_agent_render() {
  diff <(yq -c 'select(.kind == "ClusterRole" and .metadata.name == "marshal-agent-lva-1") | .rules' \
    "$WORK/hub-custom.yaml" | rules_of) \
    <("$MARSHAL" agent rbac --cluster lva-1 --link-to pol-1,ltu-1 | yq -c 'select(.kind == "ClusterRole") | .rules' |
      rules_of)
}
check "custom hub render: pull agent lva-1 as \`marshal agent rbac\` prints it" pull_agent_render
refuses() { # expected-message helm-args...
  local msg=$1 out
  shift
  if out=$(helm template a charts/marshal-agent "$@" 2>&1); then return 1; fi
  grep -q "$msg" <<<"$out"
}
check "member chart without values refuses to render, naming the missing value" refuses "cluster must be" -n "$NS"
check "member chart outside marshal-system refuses to render" refuses "into the namespace marshal-system" \
  -n default -f e2e/helm/agent-values.yaml
restricted() {
  local f
  for f in "$WORK/hub-default.yaml" "$WORK/hub-custom.yaml" "$WORK/agent.yaml"; do
    yq -c 'select(.kind == "Deployment") | .spec.template.spec' "$f" | jq -e '.securityContext.runAsNonRoot
      and .securityContext.seccompProfile.type == "RuntimeDefault"
      and (.containers | all(.securityContext.readOnlyRootFilesystem and .securityContext.allowPrivilegeEscalation == false
        and .securityContext.capabilities.drop == ["ALL"] and (.resources.requests | length) > 0))' || return 1
  done
}
check "every pod runs restricted (non-root, read-only root, no capabilities, RuntimeDefault, resources)" restricted

# ---------------------------------------------------------------------------------------------------------------
step "helm install the hub chart (restricted Pod Security enforced in $NS)"
# deploy/admission-policy.yaml (applied by earlier tests) is the same object the chart installs: hand it to Helm,
# and put it back at the end.
if k get validatingadmissionpolicy marshal-labels.marshal.dev >/dev/null 2>&1; then
  had_vap=1
  k delete -f deploy/admission-policy.yaml --wait >/dev/null
fi
k label ns "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
# The chart generates the signing key; the controller may read it and the member kubeconfig Secrets named here.
check "helm install marshal" helm --kubeconfig "$KUBECONFIG_HUB" install marshal charts/marshal -n "$NS" \
  --set 'memberKubeconfigSecrets={pol-1-kubeconfig,deu-1-kubeconfig,ltu-1-kubeconfig}'
check "the chart generated an Ed25519 signing key whose public key marshal prints" bash -c \
  "kubectl --kubeconfig '$KUBECONFIG_HUB' get secret -n $NS marshal-signing-key -o jsonpath='{.data.signing-key}' | base64 -d | '$MARSHAL' keygen --public-from - | grep -q '^ed25519:'"
check "CRDs established" k wait --for condition=established --timeout=60s \
  crd/securitypolicies.marshal.dev crd/memberclusters.marshal.dev crd/clusterlinks.marshal.dev \
  crd/missionworkloads.marshal.dev crd/assignments.marshal.dev
check "ServiceAccount, ClusterRole, Role and bindings exist" k get sa/$SA clusterrole/marshal-controller \
  clusterrolebinding/marshal-controller role/marshal-controller rolebinding/marshal-controller -n "$NS"
eventually 40 "the controller pod is admitted under the restricted standard (Pending: no nodes on the hub)" bash -c \
  "[[ -n \$(kubectl --kubeconfig '$KUBECONFIG_HUB' get pods -n $NS -l app.kubernetes.io/name=marshal -o name) ]]"

step "kubectl auth can-i as $HUB_SA"
namespaced=$(k api-resources --namespaced=true -o name)
can() { # expect(yes|no) verb resource[.group] [name] [ns] [subresource]
  local want=$1 verb=$2 res=$3 name=${4:--} ns=${5:--} sub=${6:--} args got
  args=(auth can-i "$verb" "$res")
  [[ $name != - ]] && args=(auth can-i "$verb" "$res/$name")
  [[ $ns != - ]] && args+=(-n "$ns")
  [[ $sub != - ]] && args+=(--subresource="$sub")
  got=$(k "${args[@]}" --as="$HUB_SA" 2>/dev/null)
  [[ $got == "$want" ]] || { echo "can-i ${args[*]}: $got, expected $want"; return 1; }
}
while read -r scope verb group res sub name; do
  rg=$res
  [[ $group != core ]] && rg=$res.$group
  ns=-
  if grep -qx "$rg" <<<"$namespaced" || grep -qx "$res" <<<"$namespaced"; then
    ns=marshal-pol-1
    [[ $scope == ReleaseNamespace ]] && ns=$NS
  fi
  label="$verb $rg"
  [[ $sub != - ]] && label+="/$sub"
  [[ $name != - ]] && label+=" named $name"
  [[ $ns != - ]] && label+=" in $ns"
  check "SA can $label" can yes "$verb" "$rg" "$name" "$ns" "$sub"
  if [[ $scope == ReleaseNamespace ]]; then
    check "SA cannot $label outside $NS" can no "$verb" "$rg" "$name" default "$sub"
  fi
  if [[ $name != - && $verb != create ]]; then
    check "SA cannot $verb $rg under any other name" can no "$verb" "$rg" "other" "$ns" "$sub"
  fi
done < <(python3 e2e/helm/permissions.py src/permissions.rs)
for n in default kube-system marshal-pol-1; do
  check "SA cannot read Secrets in $n" can no get secrets - "$n"
done
check "SA cannot list Secrets even in $NS" can no list secrets - "$NS"
for r in clusterroles clusterrolebindings roles rolebindings; do
  for v in create patch delete escalate bind; do
    check "SA cannot $v $r" can no "$v" "$r.rbac.authorization.k8s.io" - "$NS"
  done
done
check "SA cannot patch kube-system Leases" can no patch leases.coordination.k8s.io kube-controller-manager kube-system
check "SA cannot delete namespaces" can no delete namespaces
check "SA cannot create pods" can no create pods - "$WL_NS"
check "SA cannot delete MemberClusters" can no delete memberclusters.marshal.dev
check "SA cannot update MissionWorkload specs" can no update missionworkloads.marshal.dev - "$WL_NS"

# ---------------------------------------------------------------------------------------------------------------
step "the controller, with a token of the chart's ServiceAccount and the chart's arguments"
token=$(k create token "$SA" -n "$NS" --duration=1h)
ca=$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat >"$WORK/sa.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: hub, cluster: {server: "$MARSHAL_TB_API_HUB", certificate-authority-data: "$ca"}}]
users: [{name: $SA, user: {token: "$token"}}]
contexts: [{name: $SA@hub, context: {cluster: hub, user: $SA, namespace: $NS}}]
current-context: $SA@hub
EOF
chmod 600 "$WORK/sa.kubeconfig"
check "the token authenticates as the chart's ServiceAccount" bash -c \
  "kubectl --kubeconfig '$WORK/sa.kubeconfig' auth whoami -o jsonpath='{.status.userInfo.username}' | grep -qx '$HUB_SA'"
mapfile -t chart_args < <(helm --kubeconfig "$KUBECONFIG_HUB" get manifest marshal -n "$NS" |
  yq -r 'select(.kind == "Deployment") | .spec.template.spec.containers[0].args[]' | grep -v -- '--metrics-addr')
echo "  chart arguments: ${chart_args[*]}"
# Start from nothing of ours: earlier tests' heartbeat Leases go, so the syncers create them under the chart RBAC.
for m in pol-1 deu-1 ltu-1; do k delete lease heartbeat -n "marshal-$m" --ignore-not-found >/dev/null; done
apply_examples() {
  local f
  for f in "$@"; do
    # The admission policy's binding needs a moment before it admits objects it has params for.
    eventually 30 "apply $f (checked by the chart's admission policy)" k apply -f "$f" || true
  done
}
# Clusters, links and policy first; the workloads once every member heartbeats, so that first decisions are
# not made while the syncers' first heartbeats are still on their way (they would stick for failbackAfterSeconds).
apply_examples "${EXAMPLES[@]:0:4}"
link_monitor() { # an external network monitor: report the example's links Up every 10 s
  while true; do
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for l in ltu-1.pol-1:12:100 ltu-1.deu-1:38:40 ltu-1.lva-1:7:200 pol-1.deu-1:18:1000; do
      IFS=: read -r name rtt bw <<<"$l"
      k patch clink "$name" --subresource=status --type=merge -p "{\"status\":{\"state\":\"Up\",\"rttMs\":$rtt,\"bandwidthMbps\":$bw,\"lossPercent\":0,\"observedAt\":\"$now\",\"reporter\":\"monitor/e2e\"}}" >/dev/null 2>&1
    done
    sleep 10
  done
}
link_monitor &
MON_PID=$!
: >"$CTL_LOG"
KUBECONFIG=$WORK/sa.kubeconfig POD_NAMESPACE=$NS RUST_LOG=info,kube=warn \
  "$MARSHAL" "${chart_args[@]}" --metrics-addr "127.0.0.1:$METRICS_PORT" >>"$CTL_LOG" 2>&1 &
CTL_PID=$!
metrics() { curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics"; }
eventually 90 "controller /readyz" curl -sf --max-time 2 "http://127.0.0.1:$METRICS_PORT/readyz"

reachable() {
  local m
  for m in pol-1 deu-1 ltu-1; do
    [[ $(k get mc "$m" -o jsonpath='{.status.conditions[?(@.type=="Reachable")].status}') == True ]] ||
      { echo "$m not reachable"; return 1; }
  done
}
eventually 60 "pol-1, deu-1 and ltu-1 Reachable (heartbeat Leases created under the chart's RBAC)" reachable

step "placement of the Baltic exercise under the chart's RBAC"
apply_examples "${EXAMPLES[4]}"
placed() { # workload expected-placements (cluster/tier=replicas, comma-separated, sorted) and Ready
  local got
  got=$(k get mw -n "$WL_NS" "$1" -o json | jq -r '([.status.placements[]? | "\(.cluster)/\(.tier)=\(.replicas)"] | sort | join(","))
      + (if any(.status.conditions[]?; .type == "Ready" and .status == "True") then " Ready" else "" end)')
  [[ $got == "$2 Ready" ]] || { echo "$1: $got"; return 1; }
}
eventually 180 "isr-fusion on deu-1/core=1, pol-1/core=3, Ready" placed isr-fusion "deu-1/core=1,pol-1/core=3"
eventually 60 "logistics-ledger on pol-1/core=3, Ready" placed logistics-ledger "pol-1/core=3"
eventually 60 "weather-feed on ltu-1/edge=1, pol-1/edge=1, Ready" placed weather-feed "ltu-1/edge=1,pol-1/edge=1"
eventually 60 "border-watch on ltu-1/edge=2, Ready" placed border-watch "ltu-1/edge=2"
eventually 30 "nuclear-planning Unplaceable (NotReleasable)" bash -c \
  "kubectl --kubeconfig '$KUBECONFIG_HUB' get mw -n $WL_NS nuclear-planning -o json | jq -e '.status.phase == \"Unplaceable\"'"
check "isr-fusion runs 3 ready replicas in pol-1" bash -c \
  "[[ \$(kubectl --kubeconfig '$KUBECONFIG_POL_1' get deploy -n $WL_NS isr-fusion -o jsonpath='{.status.readyReplicas}') == 3 ]]"
check "heartbeat Leases recreated by the syncers" bash -c \
  "for m in pol-1 deu-1 ltu-1; do kubectl --kubeconfig '$KUBECONFIG_HUB' get lease heartbeat -n marshal-\$m -o jsonpath='{.spec.holderIdentity}' | grep -qx syncer/\$m || exit 1; done"
check "Events written (events.k8s.io, reason Placed)" bash -c \
  "kubectl --kubeconfig '$KUBECONFIG_HUB' get events.events.k8s.io -n $WL_NS -o json | jq -e '[.items[] | select(.reason == \"Placed\" and .regarding.name == \"isr-fusion\")] | length > 0'"
explain_table() { # runs `kubectl marshal explain` (the binary as a kubectl plugin) as an operator would
  local out
  mkdir -p "$WORK/plugins" && ln -sf "$PWD/$MARSHAL" "$WORK/plugins/kubectl-marshal"
  out=$(PATH=$WORK/plugins:$PATH KUBECONFIG=$KUBECONFIG_HUB kubectl marshal explain -n "$WL_NS" isr-fusion) || return 1
  echo "$out" | head -24
  grep -q '^PLACEMENTS' <<<"$out" && grep -Eq '^  pol-1 +core +3 +3 ' <<<"$out" &&
    grep -Eq '^  lva-1 +core +out +Unreachable +heartbeat +- +no heartbeat ever' <<<"$out" &&
    grep -Eq '^  deu-1 +core +placed +Eligible +(heartbeat|capacity) +[0-9]+s ' <<<"$out" &&
    ! awk 'length > 100' <<<"$out" | grep -q .
}
check "kubectl marshal explain: placements and verdicts (in/out, reason, fact, age) in 100 columns" explain_table
sed 's/^/       /' "$WORK/last.log" | head -24

# ---------------------------------------------------------------------------------------------------------------
step "Prometheus scrapes the controller"
metrics >"$WORK/metrics.txt"
check "promtool check metrics on /metrics" bash -c "promtool check metrics <'$WORK/metrics.txt'"
# The alerts, extracted from the chart. Test-only: every `for:` shortened (5 s) so the alert fires within this
# test's time; the expressions are the chart's own.
helm template marshal charts/marshal -n "$NS" --set prometheusRule.enabled=true \
  --set prometheusRule.for.clusterUnreachable=5s,prometheusRule.for.fleetFrozen=5s,prometheusRule.for.workloadsNotPlaced=5s \
  --set prometheusRule.for.reconcileErrors=5s,prometheusRule.for.noLeader=5s,prometheusRule.for.linkDown=5s |
  yq -y 'select(.kind == "PrometheusRule") | .spec' >"$WORK/rules.yaml"
check "promtool check rules on the chart's PrometheusRule" promtool check rules "$WORK/rules.yaml"
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [$WORK/rules.yaml]
scrape_configs:
  - job_name: marshal
    static_configs: [{targets: ["127.0.0.1:$METRICS_PORT"]}]
EOF
check "promtool check config" promtool check config "$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$PROM_LOG" 2>&1 &
PROM_PID=$!
PROM=http://127.0.0.1:$PROM_PORT
eventually 60 "Prometheus ready" curl -sf "$PROM/-/ready"
q() { curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1"; }
eventually 30 "the scrape target is up" bash -c "curl -sf '$PROM/api/v1/query?query=up' | jq -e '.data.result[0].value[1] == \"1\"'"
eventually 30 "marshal_cluster_reachable returns the members (pol-1, deu-1, ltu-1 reachable; lva-1 never heartbeats)" bash -c \
  "curl -sf --get '$PROM/api/v1/query' --data-urlencode 'query=marshal_cluster_reachable' | jq -e '
     ([.data.result[] | select(.value[1] == \"1\") | .metric.cluster] | sort) == [\"deu-1\", \"ltu-1\", \"pol-1\"]
     and ([.data.result[] | select(.value[1] == \"0\") | .metric.cluster] == [\"lva-1\"])'"
alert() { # name label value state
  curl -sf "$PROM/api/v1/alerts" | jq -e --arg a "$1" --arg l "$2" --arg v "$3" --arg s "$4" \
    '[.data.alerts[] | select(.labels.alertname == $a and .labels[$l] == $v and .state == $s)] | length > 0'
}
eventually 30 "MarshalClusterUnreachable fires for lva-1 (a MemberCluster without heartbeat)" \
  alert MarshalClusterUnreachable cluster lva-1 firing
check "MarshalClusterUnreachable is not firing for ltu-1 while its link is up" bash -c \
  "! curl -sf '$PROM/api/v1/alerts' | jq -e '[.data.alerts[] | select(.labels.cluster == \"ltu-1\")] | length > 0'"

step "cut ltu-1's link: the alert fires, border-watch fails over"
cut=$SECONDS
e2e/federation link ltu-1 down >/dev/null
eventually 60 "MarshalClusterUnreachable fires for ltu-1 (grace 15 s + for 5 s)" \
  alert MarshalClusterUnreachable cluster ltu-1 firing
echo "  alert firing $((SECONDS - cut))s after the cut"
moved_off_ltu() {
  k get mw -n "$WL_NS" border-watch -o json | jq -e '([.status.placements[].cluster] | length > 0 and all(. != "ltu-1"))
    and any(.status.conditions[]; .type == "Ready" and .status == "True")'
}
eventually 90 "border-watch moved off ltu-1 and Ready elsewhere (tolerationSeconds 20)" moved_off_ltu
eventually 30 "marshal_replacements_total{reason=\"unreachable\"} counts the move" bash -c \
  "curl -sf 'http://127.0.0.1:$METRICS_PORT/metrics' | grep -q '^marshal_replacements_total{reason=\"unreachable\"}'"
check "no fleet freeze (2 of 4 members unreachable is not more than half)" bash -c \
  "curl -sf 'http://127.0.0.1:$METRICS_PORT/metrics' | grep -qx 'marshal_fleet_frozen 0'"

step "deu-1's own clearance (member chart) refuses isr-fusion; the member guard rejects what it must"
kdeu label ns "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
cat >"$WORK/deu-values.yaml" <<EOF
cluster: deu-1
nation: DEU
clearance:
  policy: NATO
  classifications: [UNCLASSIFIED]
  categories: [{tagName: Releasable To, values: [DEU, NATO]}]
  reviewBy: "2027-03-31T00:00:00Z"
policies:
  - {policyIdentifier: NATO, classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, COSMIC TOP SECRET], categories: [{tagName: Releasable To, type: Permissive}, {tagName: Special Handling, type: Restrictive, values: [ATOMAL, CRYPTO]}]}
trustedKeys: ["ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
rbac:
  extraSubjects: [{kind: User, name: marshal, apiGroup: rbac.authorization.k8s.io}]
EOF
# The test bed made deu-1's tombstone ConfigMap for its push syncer; the member chart makes (and keeps) its own.
kdeu delete configmap -n "$NS" marshal-removed --ignore-not-found >/dev/null
check "helm install marshal-agent into deu-1" \
  helm --kubeconfig "$KUBECONFIG_DEU_1" install marshal-agent charts/marshal-agent -n "$NS" -f "$WORK/deu-values.yaml"
eventually 60 "isr-fusion's Assignment in marshal-deu-1 is Refused by the member" bash -c \
  "kubectl --kubeconfig '$KUBECONFIG_HUB' get assignment -n marshal-deu-1 $WL_NS.isr-fusion -o jsonpath='{.status.phase}' | grep -qx Refused"
eventually 30 "the refused copy is gone from deu-1" bash -c \
  "! kubectl --kubeconfig '$KUBECONFIG_DEU_1' get deploy -n $WL_NS isr-fusion 2>/dev/null"
eventually 30 "MarshalAssignmentRefused fires for deu-1" alert MarshalAssignmentRefused cluster deu-1 firing
eventually 40 "the agent pod is admitted (restricted) and run by kwok in deu-1" bash -c \
  "kubectl --kubeconfig '$KUBECONFIG_DEU_1' get pods -n $NS -l app.kubernetes.io/name=marshal-agent -o jsonpath='{.items[*].status.phase}' | grep -qx Running"
kdeu get cm marshal-clearance -n "$NS" -o jsonpath='{.data.clearance\.yaml}' >"$WORK/deu-clearance.yaml"
guard_same() { # the chart's guard is the policy `marshal agent guard` prints for the same member and clearance
  local keep='{failurePolicy, matchConstraints: {resourceRules: [.matchConstraints.resourceRules[] | {apiGroups, apiVersions, operations, resources}]}, matchConditions, variables, validations, paramKind}'
  diff <("$MARSHAL" agent guard --cluster deu-1 --clearance "$WORK/deu-clearance.yaml" |
           yq -c "select(.kind == \"ValidatingAdmissionPolicy\") | .spec | $keep" | jq -S -c .) \
       <(kdeu get validatingadmissionpolicy marshal-member-guard -o json | jq -S -c ".spec | $keep")
}
check "the chart's guard is what \`marshal agent guard --cluster deu-1 --clearance\` prints for deu-1's clearance" guard_same
# A namespace as Marshal creates it (the guard admits Marshal Deployments only there).
kdeu create namespace guard-probe >/dev/null 2>&1 || true
kdeu label namespace guard-probe marshal.dev/created=true --overwrite >/dev/null
deployment() { # classification-label digest-annotation(or -) [namespace] [privileged]
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guard-probe
  namespace: ${3:-guard-probe}
  labels: {app: guard-probe, marshal.dev/owner: DEU$([[ $1 != - ]] && echo ", marshal.dev/classification: $1")}
  annotations: {x: "1"$([[ $2 != - ]] && echo ", marshal.dev/digest: \"$2\"")}
spec:
  selector: {matchLabels: {app: guard-probe}}
  template:
    metadata: {labels: {app: guard-probe}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: c
          image: registry.example.mil/x:1
          securityContext: {allowPrivilegeEscalation: $([[ ${4:-false} == true ]] && echo true || echo false), capabilities: {drop: [ALL]}, privileged: ${4:-false}}
EOF
}
DIGEST=sha256:$(printf '%064d' 0)
denied() { # classification digest expected-message [namespace] [privileged]: the guard, not anything else, refuses
  local out
  if out=$(deployment "$1" "$2" "${4:-}" "${5:-}" | kdeu create --dry-run=server -f - 2>&1); then return 1; fi
  echo "$out"
  grep -q "ValidatingAdmissionPolicy 'marshal-member-guard'.*denied request: $3" <<<"$out"
}
eventually 30 "the guard denies a RESTRICTED Deployment in deu-1 (cleared: UNCLASSIFIED)" \
  denied RESTRICTED "$DIGEST" "marshal.dev/classification RESTRICTED is not cleared in member deu-1"
check "the guard denies a Marshal-labelled Deployment without a digest" denied UNCLASSIFIED - \
  "a Marshal Deployment must carry a marshal.dev/digest"
check "the guard denies a Marshal Deployment in a namespace Marshal did not create" denied UNCLASSIFIED "$DIGEST" \
  "namespace default was not created by Marshal" default
check "the guard denies a privileged Marshal Deployment (restricted)" denied UNCLASSIFIED "$DIGEST" \
  "a container sets securityContext.privileged" guard-probe true
admitted() { deployment "$1" "$2" | kdeu create --dry-run=server -f -; }
check "the guard admits an UNCLASSIFIED Deployment with a digest" admitted UNCLASSIFIED "$DIGEST"

step "the dashboard queries only metrics on /metrics"
# cleanup_pending is counted while members remove a deleted workload: delete one to see reconcile errors too.
k delete mw -n "$WL_NS" weather-feed --wait=false >/dev/null
eventually 30 "marshal_reconcile_errors_total appears (cleanup_pending)" bash -c \
  "curl -sf 'http://127.0.0.1:$METRICS_PORT/metrics' | grep -q '^marshal_reconcile_errors_total{'"
metrics >"$WORK/metrics.txt"
yq -r 'select(.kind == "ConfigMap" and (.metadata.name | endswith("-dashboard"))) | .data["marshal.json"]' \
  "$WORK/hub-default.yaml" >"$WORK/dashboard.json"
jq -r '.panels[].targets[]?.expr' "$WORK/dashboard.json" | grep -o 'marshal_[a-z_]*' | sort -u >"$WORK/queried.txt"
missing=""
while read -r m; do
  grep -Eq "^$m([{ ]|_bucket)" "$WORK/metrics.txt" || grep -Eq "^${m%_bucket}_bucket" "$WORK/metrics.txt" || missing+=" $m"
done <"$WORK/queried.txt"
if [[ -z $missing && -s $WORK/queried.txt ]]; then ok "all $(wc -l <"$WORK/queried.txt") metrics of the dashboard are on /metrics"; else
  bad "dashboard metrics missing from /metrics:$missing"
fi
dashboard_queries() {
  local e
  while read -r e; do
    q "${e//\$__rate_interval/1m}" | jq -e '.status == "success" and (.data.result | length > 0)' >/dev/null ||
      { echo "no result: $e"; return 1; }
  done < <(jq -r '.panels[].targets[]?.expr' "$WORK/dashboard.json")
}
eventually 60 "Prometheus answers every dashboard query with data" dashboard_queries

step "link back up"
e2e/federation link ltu-1 up >/dev/null
eventually 60 "MarshalClusterUnreachable for ltu-1 resolves" bash -c \
  "! curl -sf '$PROM/api/v1/alerts' | jq -e '[.data.alerts[] | select(.labels.alertname == \"MarshalClusterUnreachable\" and .labels.cluster == \"ltu-1\")] | length > 0'"
check "no request of the controller was forbidden by the chart's RBAC" bash -c "! grep -i -m5 'forbidden' '$CTL_LOG'"
((failed == 0))
