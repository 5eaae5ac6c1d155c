#!/usr/bin/env bash
# The namespace-side package check (issue 11). e2e/ci.sh runs this through `e2e/federation run`, inside the
# network namespace, after e2e/preflight ran outside it:
#   1. the namespace really cannot reach a package registry (no name resolution, no route): an install attempted
#      here could only fail, which is why preflight runs first;
#   2. every command of TB_REQUIRED is present (preflight installed what was missing);
#   3. with a stripped PATH that lacks promtool, `tb_require` fails with a message naming the command, its
#      Debian package and the preflight step; it never calls apt-get (a stand-in apt-get on that PATH records
#      any call and answers as the real one would here, with a resolver error, which must not appear).
# Prints `preflight: N passed, M failed` last.
set -uo pipefail
cd "$(dirname "$0")/../.."
TB_PROG=preflight-check
# shellcheck source=e2e/lib.sh
source e2e/lib.sh

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "  ok   $*"
}
bad() {
  failed=$((failed + 1))
  echo "  FAIL $*"
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "=== the namespace reaches no package registry"
if [[ -n $(ip netns identify $$ 2>/dev/null) ]]; then ok "running inside network namespace $(ip netns identify $$)"; else
  bad "not inside a network namespace (run through e2e/federation run)"
fi
if getent hosts deb.debian.org >/dev/null 2>&1; then bad "deb.debian.org resolves inside the namespace"; else
  ok "deb.debian.org does not resolve"
fi
if ip route get 151.101.2.132 >/dev/null 2>&1; then bad "a route to a public address exists"; else
  ok "no route to a public address"
fi

echo "=== every required command is present"
if (tb_require) >"$WORK/all.log" 2>&1; then ok "tb_require: all ${#TB_REQUIRED[@]} commands of TB_REQUIRED"; else
  bad "tb_require: $(tail -n 1 "$WORK/all.log")"
fi

echo "=== a missing command fails with the package and the preflight step, without an install"
bin=$WORK/bin
mkdir -p "$bin"
# Only what lib.sh itself uses, so promtool (and apt-get) are not on this PATH.
for c in bash dirname cat date id getent; do
  ln -s "$(command -v "$c")" "$bin/$c"
done
cat >"$bin/apt-get" <<EOF
#!$(command -v bash)
echo "\$*" >>"$WORK/apt-get-called"
echo "Err:1 http://deb.debian.org/debian bookworm InRelease" >&2
echo "  Temporary failure resolving 'deb.debian.org'" >&2
exit 100
EOF
chmod +x "$bin/apt-get"
ln -s apt-get "$bin/apt"
rc=0
env -i HOME="$HOME" PATH="$bin" bash -c 'source e2e/lib.sh; tb_require promtool jq' >"$WORK/out.log" 2>&1 || rc=$?
out=$(cat "$WORK/out.log")
echo "       said: $out"
if ((rc != 0)); then ok "tb_require fails (exit $rc)"; else bad "tb_require succeeded without promtool"; fi
for want in "promtool (Debian package prometheus)" "jq (Debian package jq)" "bash e2e/preflight"; do
  if [[ $out == *"$want"* ]]; then ok "message names '$want'"; else bad "message lacks '$want'"; fi
done
if [[ $out == *"Temporary failure resolving"* || $out == *"deb.debian.org"* ]]; then
  bad "message is a resolver error"
else ok "no resolver error"; fi
if [[ -e $WORK/apt-get-called ]]; then bad "apt-get was called: $(cat "$WORK/apt-get-called")"; else
  ok "apt-get was never called"
fi

echo "preflight: $passed passed, $failed failed"
((failed == 0))
