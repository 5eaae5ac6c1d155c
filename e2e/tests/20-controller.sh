#!/usr/bin/env bash
# End-to-end test of `marshal controller` (push mode) on the local federation: placement, releasability,
# propagation of changes, API-server validation, broken members, zero idle writes, failover and failback.
# Runs inside the federation's network namespace (e2e/ci.sh uses `e2e/federation run`).
set -euo pipefail
cd "$(dirname "$0")/../.."
pidfile=${MARSHAL_TB_STATE:-/tmp/marshal-tb}/marshal-controller.pid
stop_controller() {
  if [[ -f $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  rm -f "$pidfile"
}
trap stop_controller EXIT
cargo test --offline --features e2e --test e2e_controller -- --nocapture --test-threads=1
