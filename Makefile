.PHONY: install lint test image demo clean cluster-up cluster-down bench bench-keda

install:
	@.ci/bootstrap

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint
	.venv/bin/pytest

# The image, daemonless: localhost/metrics-adapter:<version>, built by Buildah from the
# Dockerfile (hack/build-image.sh installs buildah, podman and mmdebstrap when missing).
image:
	hack/build-image.sh

demo: install
	.venv/bin/python -m demo

# Every benchmark in sequence (bench/README.md); wrk comes from Debian's packages.
bench: install
	@command -v wrk >/dev/null || { s=; [ "$$(id -u)" = 0 ] || s=sudo; \
		$$s apt-get update -qq && $$s apt-get install -y -qq --no-install-recommends wrk; }
	.venv/bin/python -m bench

# KEDA v2.20.2 itself beside us, the same work on the same control plane (bench/README.md §10):
# KEDA is built once into ~/.cache/metrics-adapter (several minutes cold), then ~30 minutes.
bench-keda: install
	hack/build-keda.sh >/dev/null
	.venv/bin/python -m bench keda

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache

# A real kube-apiserver + kube-controller-manager + etcd on loopback, with the adapter
# registered as v1beta1.external.metrics.k8s.io; prints KUBECONFIG=... and ADAPTER_URL=...
# NODE=1: with a node (kube-scheduler, kubelet on containerd, pods in a network namespace of
# its own; root) and the adapter installed there by helm from the built image.
cluster-up: install
	@.venv/bin/python -m tests.support.controlplane up $(if $(NODE),--node)

cluster-down: install
	@.venv/bin/python -m tests.support.controlplane down
