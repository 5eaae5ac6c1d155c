#!/usr/bin/env bash
# End-to-end test: `marshal plan` is exactly as strict as the hub's API server. Every object of the corpus
# tests/fixtures/admission (valid and invalid MissionWorkloads, MemberClusters, ClusterLinks, SecurityPolicies) is
# applied to the hub with `kubectl apply --dry-run=server` (strict field validation, Marshal's CRDs and their CEL
# rules, the admission policy deploy/admission-policy.yaml with the corpus's SecurityPolicies as parameters), and
# validated by `marshal plan` with the same SecurityPolicies. Both must agree with the file's `# expect:` line,
# object by object, and a rejection must name the expected field on both sides. The offline test
# tests/admission_corpus.rs holds the planner to the same expectations.
# Runs inside the federation's network namespace (e2e/federation run), from the repository root. Prints
# `plan-admission: N passed, M failed` last. It leaves the CRDs and the admission policy installed (as the other
# tests expect) and removes the SecurityPolicies it created.
set -uo pipefail
cd "$(dirname "$0")/../.."
TB_PROG=plan-admission
# shellcheck source=e2e/lib.sh
source e2e/lib.sh

CORPUS=tests/fixtures/admission
POLICIES=(examples/baltic/00-security-policy.yaml "$CORPUS/policies/rules.yaml")
WORK=$(mktemp -d)
passed=0
failed=0
k() { kubectl --kubeconfig "$KUBECONFIG_HUB" "$@"; }
ok() {
  passed=$((passed + 1))
  echo "  ok   $*"
}
bad() {
  failed=$((failed + 1))
  echo "  FAIL $*"
}
cleanup() {
  k delete -f "$CORPUS/policies/rules.yaml" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

marshal=target/debug/marshal
[[ -x $marshal ]] || cargo build --offline -q --bin marshal || exit 1

# The CRDs and the admission policy of this tree, and the SecurityPolicies the corpus is checked against.
k apply --server-side --force-conflicts -f crds/ >/dev/null || exit 1
for crd in $(ls crds | sed 's/\.yaml$//'); do
  k wait --for=condition=Established "crd/$crd" --timeout=60s >/dev/null || exit 1
done
k apply -f deploy/admission-policy.yaml >/dev/null || exit 1
for p in "${POLICIES[@]}"; do k apply -f "$p" >/dev/null || exit 1; done
k get ns default >/dev/null || exit 1

# The API server loads a new admission policy and its parameters asynchronously: wait until it denies.
probe=$CORPUS/mw-undeclared-value.yaml
for _ in $(seq 1 60); do
  if ! k apply --dry-run=server -f "$probe" >/dev/null 2>&1; then break; fi
  sleep 1
done
if k apply --dry-run=server -f "$probe" >/dev/null 2>&1; then
  bad "the admission policy denies an undeclared value within 60 s"
fi

for f in "$CORPUS"/*.yaml; do
  name=$(basename "$f" .yaml)
  want=$(head -n1 "$f" | sed -n 's/^# expect: //p')
  field=${want#reject:}
  if k apply --dry-run=server -f "$f" >"$WORK/hub.out" 2>"$WORK/hub.err"; then hub=accept; else hub=reject; fi
  plan_args=()
  for p in "${POLICIES[@]}"; do plan_args+=(-f "$p"); done
  if "$marshal" plan "${plan_args[@]}" -f "$f" -o json >"$WORK/plan.out" 2>"$WORK/plan.err"; then plan=accept; else plan=reject; fi
  expected=${want%%:*}
  if [[ $hub == "$expected" && $plan == "$expected" ]]; then
    if [[ $expected == reject ]] && ! grep -qF "$field" "$WORK/hub.err"; then
      bad "$name: the hub rejects it without naming $field: $(tr '\n' ' ' <"$WORK/hub.err")"
    elif [[ $expected == reject ]] && ! grep -qF "$field" "$WORK/plan.err"; then
      bad "$name: the planner rejects it without naming $field: $(tr '\n' ' ' <"$WORK/plan.err")"
    else
      ok "$name: hub and planner $expected${field:+ ($field)}"
    fi
  else
    bad "$name: expected $expected, hub $hub, planner $plan"
    echo "       hub: $(tr '\n' ' ' <"$WORK/hub.err" | cut -c1-400)"
    echo "       planner: $(tr '\n' ' ' <"$WORK/plan.err" | cut -c1-400)"
  fi
done

echo "plan-admission: $passed passed, $failed failed"
((failed == 0))
