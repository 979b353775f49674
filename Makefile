.PHONY: install lint test demo clean cluster-up cluster-down

install:
	@.ci/bootstrap

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint
	.venv/bin/pytest

demo: install
	.venv/bin/python -m demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache

# A real kube-apiserver + kube-controller-manager + etcd on loopback, with the adapter
# registered as v1beta1.external.metrics.k8s.io; prints KUBECONFIG=... and ADAPTER_URL=...
cluster-up: install
	@.venv/bin/python -m tests.support.controlplane up

cluster-down: install
	@.venv/bin/python -m tests.support.controlplane down
