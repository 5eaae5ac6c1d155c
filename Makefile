# Marshal: one command runs it, one command tests it.
.PHONY: help test lint crds charts plan bench bench-failover e2e ci demo demo-down

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test: ## offline tier: rustfmt, clippy, unit/property/CRD/CEL/planner tests
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test

crds: ## regenerate crds/ from the Rust types, and the hub chart's copies
	cargo run -q -- crd --write
	rm -f charts/marshal/crds/*.yaml
	cp crds/*.yaml charts/marshal/crds/

charts: ## lint and render both Helm charts (default and example values; helm from e2e/build-bins)
	PATH="$$(bash e2e/build-bins --print):$$PATH" bash -c 'set -e; \
	  helm lint --strict charts/marshal; \
	  helm lint --strict charts/marshal -f e2e/helm/hub-values.yaml; \
	  helm lint --strict charts/marshal-agent -n marshal-system -f e2e/helm/agent-values.yaml; \
	  helm template marshal charts/marshal -n marshal-system >/dev/null; \
	  helm template marshal-agent charts/marshal-agent -n marshal-system -f e2e/helm/agent-values.yaml >/dev/null; \
	  cargo test -q --test chart_consistency'

plan: ## the what-if planner on the Baltic exercise
	cargo run --release -q -- plan -f examples/baltic --scenario examples/baltic/scenario-link-loss.yaml

bench: ## placement engine benchmark (prints decisions per second)
	cargo bench --bench placement

bench-failover: ## failover benchmark on the local federation (root, Go; prints JSON)
	bash e2e/bench/failover

demo: ## local federation + controller + the Baltic exercise, then a link cut and the failover (root, Go)
	bash e2e/demo

demo-down: ## stop the demo
	bash e2e/demo down

e2e: ## end-to-end tier on the local federation (builds the control planes once, cached)
	bash e2e/ci.sh

ci: test e2e ## both tiers, as .ci/run does
