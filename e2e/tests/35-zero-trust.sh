#!/usr/bin/env bash
# End-to-end zero-trust tests (issue 12): every attack with the attacker's own credentials (planner, writer in a
# hub namespace, agent token, member admin), asserted in the members. Runs inside the federation's network
# namespace (e2e/ci.sh uses `e2e/federation run`). Each test restores what it changed; on any exit the trap puts
# ltu-1 back into push mode and removes what a failed test may have left.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
state=${MARSHAL_TB_STATE:-/tmp/marshal-tb}
restore() {
  tb_stop_recorded "$state/marshal-agent.pid" "$state/marshal-controller.pid"
  kubectl delete mc zz-1 zz-2 --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl apply -f "$MARSHAL_TB_SECRET_LTU_1" >/dev/null 2>&1 || true
  kubectl apply -f examples/baltic/00-security-policy.yaml -f examples/baltic/10-member-clusters.yaml \
    -f examples/baltic/20-cluster-links.yaml >/dev/null 2>&1 || true
  kubectl delete secret -n marshal-system marshal-signing-key zz-2-kubeconfig --ignore-not-found >/dev/null 2>&1 || true
  for m in pol-1 deu-1 ltu-1; do
    kubectl --kubeconfig "$(eval echo "\$KUBECONFIG_$(echo "$m" | tr 'a-z-' 'A-Z_')")" delete configmap \
      -n marshal-system marshal-clearance --ignore-not-found >/dev/null 2>&1 || true
  done
}
trap restore EXIT
cargo test --offline --features e2e --test e2e_zero_trust -- --nocapture --test-threads=1
