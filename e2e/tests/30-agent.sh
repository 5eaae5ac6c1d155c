#!/usr/bin/env bash
# End-to-end test of pull mode (`marshal agent`) on the local federation: ltu-1 without credentials on the hub,
# the agent's exact RBAC, signed Assignments and tampering, the member's own clearance, the member guard, key
# rotation, link probes, failover when the host cuts the link and convergence when it returns.
# Runs inside the federation's network namespace (e2e/ci.sh uses `e2e/federation run`). Whatever happens, it
# stops its processes and puts ltu-1 back into push mode (the earlier tests and the next run expect that).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
state=${MARSHAL_TB_STATE:-/tmp/marshal-tb}
restore() {
  tb_stop_recorded "$state/marshal-agent.pid" "$state/marshal-controller.pid"
  kubectl --kubeconfig "$KUBECONFIG_LTU_1" delete validatingadmissionpolicybinding,validatingadmissionpolicy \
    marshal-member-guard --ignore-not-found >/dev/null 2>&1 || true
  kubectl apply -f "$MARSHAL_TB_SECRET_LTU_1" >/dev/null 2>&1 || true
  kubectl apply -f examples/baltic/10-member-clusters.yaml -f examples/baltic/20-cluster-links.yaml \
    >/dev/null 2>&1 || true
  kubectl delete secret -n marshal-system marshal-signing-key --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete clusterrole,clusterrolebinding marshal-agent-ltu-1 --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete -n marshal-ltu-1 serviceaccount,role,rolebinding marshal-agent --ignore-not-found \
    >/dev/null 2>&1 || true
}
trap restore EXIT
cargo test --offline --features e2e --test e2e_agent -- --nocapture --test-threads=1
