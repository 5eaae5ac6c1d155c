#!/usr/bin/env bash
# End-to-end test of the push-mode syncer on its own against real member API servers: credentials refusals,
# heartbeat Leases through the link proxy, capacity, apply/re-check/refuse, cleanup, zero idle writes.
# Runs inside the federation's network namespace (e2e/ci.sh uses `e2e/federation run`).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --offline --features e2e --test e2e_sync -- --nocapture --test-threads=1
