#!/usr/bin/env bash
# End-to-end tests against the local federation, as `.ci/run` calls them: `bash e2e/ci.sh` from the repo root,
# as root. Builds the binaries (cached), brings the federation up, runs e2e/smoke and every executable
# e2e/tests/*.sh inside the network namespace, and always brings the federation down again.
set -euo pipefail
TB_PROG=e2e-ci
# shellcheck source=e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$E2E_DIR/.."

[[ $(id -u) == 0 ]] || tb_die "e2e/ci.sh needs root (network namespace, apt-get)"
# Every package any test needs, installed before anything enters the network namespace.
"$E2E_DIR/preflight"
command -v go >/dev/null || tb_die "go is not installed"
command -v cargo >/dev/null || tb_die "cargo is not installed"

t0=$(date +%s)
"$E2E_DIR/build-bins" >/dev/null
tb_log "binaries ready in $(($(date +%s) - t0))s"

FED=$E2E_DIR/federation
passed=0
failed=0
LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT

# add_counts LOG RC: take the "N passed, N failed" line of a test's output, or count the test as one.
add_counts() {
  local line
  line=$(grep -E '^([A-Za-z0-9_-]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1 || true)
  if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    # A test that failed without counting a failure still fails.
    if [[ $2 != 0 && ${BASH_REMATCH[2]} == 0 ]]; then failed=$((failed + 1)); fi
  elif grep -qE '^test result: ' "$1"; then
    # cargo test: add up its "test result: ok. N passed; M failed" lines.
    local p f
    p=$(sed -nE 's/^test result: .* ([0-9]+) passed; ([0-9]+) failed.*/\1/p' "$1" | awk '{s += $1} END {print s + 0}')
    f=$(sed -nE 's/^test result: .* ([0-9]+) passed; ([0-9]+) failed.*/\2/p' "$1" | awk '{s += $1} END {print s + 0}')
    passed=$((passed + p))
    failed=$((failed + f))
    if [[ $2 != 0 && $f == 0 ]]; then failed=$((failed + 1)); fi
  elif [[ $2 == 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}

# The link proxy's own tests (blackhole keeps connections open and stalled, delay, reset when upstream is down).
rc=0
cargo test --quiet --manifest-path "$E2E_DIR/linkproxy/Cargo.toml" \
  --target-dir "$TB_CACHE/linkproxy-target" 2>&1 | tee "$LOGDIR/linkproxy.log" || rc=$?
add_counts "$LOGDIR/linkproxy.log" "$rc"

# On failure, keep every log of the federation (and of the tests, e.g. $MARSHAL_TB_STATE/*.log) before `down`.
keep_logs() { # exit-status
  local dest f
  ((failed > 0 || $1 != 0)) || return 0
  [[ -d $TB_STATE ]] || return 0
  dest=${MARSHAL_TB_ARTIFACTS:-/tmp/marshal-tb-logs}/$(date +%Y%m%d-%H%M%S)
  mkdir -p "$dest"
  cp -r "$TB_STATE/logs" "$dest/" 2>/dev/null || true
  for f in "$TB_STATE"/*.log; do
    [[ -f $f ]] || continue
    cp "$f" "$dest/"
    echo "--- last 40 lines of $f"
    tail -n 40 "$f"
  done
  tb_log "logs of the failed run kept in $dest"
}

"$FED" down
trap 'keep_logs $?; "$FED" down || true; rm -rf "$LOGDIR"' EXIT
"$FED" up
rc=0
"$E2E_DIR/smoke" 2>&1 | tee "$LOGDIR/smoke.log" || rc=$?
add_counts "$LOGDIR/smoke.log" "$rc"

shopt -s nullglob
for t in "$E2E_DIR"/tests/*.sh; do
  [[ -x $t ]] || continue
  tb_log "running $t"
  rc=0
  "$FED" run "$t" 2>&1 | tee "$LOGDIR/test.log" || rc=$?
  add_counts "$LOGDIR/test.log" "$rc"
  if [[ $rc == 0 ]]; then tb_log "PASS $t"; else tb_log "FAIL $t (exit $rc)"; fi
done

tb_log "e2e finished in $(($(date +%s) - t0))s"
echo "e2e: $passed passed, $failed failed"
((failed == 0))
