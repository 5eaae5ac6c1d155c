#!/usr/bin/env bash
# End-to-end test of edge and core (issue 5) on the local federation: link-driven and capacity-driven moves,
# staleness failing closed, no flapping, the fleet freeze, BreakBeforeMake and the per-member write budget.
# Runs inside the federation's network namespace (e2e/ci.sh uses `e2e/federation run`).
set -euo pipefail
cd "$(dirname "$0")/../.."
pidfile=${MARSHAL_TB_STATE:-/tmp/marshal-tb}/marshal-controller.pid
stop_controller() {
  if [[ -f $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  rm -f "$pidfile"
}
trap stop_controller EXIT
cargo test --offline --features e2e --test e2e_edge -- --nocapture --test-threads=1
