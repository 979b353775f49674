# syntax=docker/dockerfile:1
# metrics-adapter's image: the console script `metrics-adapter` in a virtualenv on Python 3.11
# slim, running as a numeric non-root user, with a read-only root filesystem in mind (it
# writes only its certificates, under --cert-dir=/tmp/certs on an emptyDir).
#
# Build from the repository root (BuildKit; Podman and Buildah read the same file, and keep
# the HEALTHCHECK only with --format docker):
#   docker build -t metrics-adapter:0.1.0 --build-arg VERSION=0.1.0 .
# or `make image` (hack/build-image.sh: Buildah, no engine, a base made from Debian's
# packages where this one cannot be pulled).
# Try it standalone, without a cluster:
#   docker run --rm -p 6443:6443 -p 8080:8080 -v "$PWD/demo:/objects:ro" metrics-adapter:0.1.0 \
#     serve --scaledobjects /objects --cert-dir /tmp/certs
#
# The base is pinned by tag and by the digest of its multi-architecture index, the digest
# public Dockerfiles pin for this tag (no engine runs where this file was written, so check
# it once with `docker buildx imagetools inspect python:3.11.14-slim-bookworm` when bumping).
# Both stages use the same base, so the virtualenv's interpreter symlink stays valid.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
# A CA bundle for pip, mounted by the build where PyPI is reached through a TLS-inspecting proxy
# (hack/build-image.sh passes the host's); unset, pip trusts its own. Only this stage sees it.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, those of pyproject.toml at the versions of constraints.txt (the lock the
# test suite ran with), in a layer of their own: editing the code or README.md reuses it.
COPY pyproject.toml constraints.txt ./
RUN python -m venv /opt/metrics-adapter \
 && python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' >/tmp/requirements.txt \
 && PIP_CONSTRAINT=constraints.txt pip wheel --wheel-dir /wheels --requirement /tmp/requirements.txt \
 && /opt/metrics-adapter/bin/pip install --no-index --find-links /wheels --requirement /tmp/requirements.txt
# setup.py generates the external scalers' gRPC stubs from scalers/protos/ while building the
# wheel; PIP_CONSTRAINT (unlike --constraint) also pins the build environment's grpcio-tools.
COPY setup.py README.md ./
COPY metrics_adapter ./metrics_adapter
COPY scalers ./scalers
RUN PIP_CONSTRAINT=constraints.txt pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/metrics-adapter/bin/pip install --no-index --no-deps --find-links /wheels metrics-adapter \
 && /opt/metrics-adapter/bin/pip check \
 && /opt/metrics-adapter/bin/pip uninstall --yes pip \
 && /opt/metrics-adapter/bin/metrics-adapter version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="metrics-adapter" \
      org.opencontainers.image.description="KEDA-compatible external metrics server and autoscaler" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/metrics-adapter /opt/metrics-adapter
# Bytecode was compiled at install time; nothing may be written beside the code at run time.
ENV PATH=/opt/metrics-adapter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532 is distroless' "nonroot": no entry in /etc/passwd is needed for a numeric user, and
# Kubernetes' runAsNonRoot can check a numeric USER without running the image.
USER 65532:65532
WORKDIR /tmp
# 6443: external.metrics.k8s.io over TLS (/livez, /readyz too); 8080: /metrics, plain HTTP.
EXPOSE 6443 8080
# No curl in the image: Python's own client, without verification since the certificate is
# the adapter's self-signed or cluster-issued one and the check only asks "is it alive".
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:6443/livez', timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["metrics-adapter"]
CMD ["serve", "--in-cluster"]
