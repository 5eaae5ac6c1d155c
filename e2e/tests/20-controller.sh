#!/usr/bin/env bash
# End-to-end test of `marshal controller` (push mode) on the local federation: placement, releasability,
# propagation of changes, API-server validation, broken members, zero idle writes, failover and failback.
# Runs inside the federation's network namespace (e2e/ci.sh uses `e2e/federation run`).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --offline --features e2e --test e2e_controller -- --nocapture --test-threads=1
