#!/usr/bin/env bash
# Build the image from the repository's Dockerfile with Buildah, daemonless (no Docker engine),
# as localhost/metrics-adapter:<version of pyproject.toml>, for `make image` and the image
# test (tests/image/). Installs buildah, podman (tagging, inspecting, running), mmdebstrap and
# runc from Debian's packages when missing.
#
# The base is the Dockerfile's pinned python:3.11-slim when it can be pulled. Where no
# container registry is reachable, an equivalent base is made from Debian's packages instead:
# bookworm minbase + python3 (3.11), python3-venv, python3-pip and python-is-python3 (so
# `python` and `pip` are on PATH as in python:3.11-slim), ca-certificates; no compiler, no
# apt lists, no documentation. Its tarball is kept in $METRICS_ADAPTER_CACHE/image (default
# ~/.cache/metrics-adapter) and imported once into the container storage; about 30 s cold.
#
# pip in the builder stage needs PyPI: the build runs with the host's network and hands pip
# the host's CA bundle (PIP_CERT), for where PyPI is reached through a TLS-inspecting proxy.
# Storage is containers/storage's default (overlay under /var/lib/containers as root).
# Prints the image reference on stdout, progress and the image's size on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=build-image
CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/image
# say, die, logged and build_lock (written for the Go builds, nothing Go-specific in them).
# shellcheck source=hack/go-build-common.sh
. hack/go-build-common.sh

# logged, and on failure the step that failed and what to do about it.
step() {
  local hint=$1
  shift
  (logged "$@") || die "$hint"
}

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
IMAGE=localhost/metrics-adapter:$version

apt_install_missing buildah:buildah podman:podman mmdebstrap:mmdebstrap runc:runc

mkdir -p "$OUT"
build_lock "$OUT" 30
LOG=$OUT/build.log
: >"$LOG"
started=$(date +%s)

# The Dockerfile's own default, qualified as podman needs it (no short-name search here).
pinned=$(sed -nE 's/^ARG PYTHON_IMAGE=(.*)$/\1/p' Dockerfile)
[ -n "$pinned" ] || die "Dockerfile has no 'ARG PYTHON_IMAGE=<default>' line"
case $pinned in
  */*) registry=${pinned%%/*} ;;
  *) registry="" ;;
esac
case $registry in
  *.*|*:*|localhost) qualified=$pinned ;;
  "") qualified=docker.io/library/$pinned ;;
  *) qualified=docker.io/$pinned ;;
esac

# The Debian base: its name carries a digest of how it is made, so a change here rebuilds it.
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
recipe="bookworm minbase $PACKAGES merged-usr no-recommends no-docs no-apt-lists v1"
key=$(echo "$recipe" | sha256sum | cut -c1-12)
TARBALL=$OUT/base-bookworm-python3.11-$key.tar
DEBIAN_BASE=localhost/metrics-adapter-base:bookworm-python3.11-$key

debian_base() {
  if podman image exists "$DEBIAN_BASE"; then
    return
  fi
  if [ ! -s "$TARBALL" ]; then
    say "building the base from Debian's packages (bookworm + $PACKAGES) into $TARBALL"
    # Recommends off: python3-pip recommends build-essential, a compiler the image must not
    # hold. The excluded paths are those debian:bookworm-slim drops too. The hook's $1 is the
    # root being built, expanded by the shell mmdebstrap runs it in.
    rm -rf "$TARBALL.partial"
    # shellcheck disable=SC2016
    step "mmdebstrap could not build the base: it needs Debian's apt mirror (deb.debian.org) and root or user namespaces" \
      mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "$TARBALL.partial"
    mv -f "$TARBALL.partial" "$TARBALL"
  fi
  say "importing $TARBALL as $DEBIAN_BASE"
  # The configuration python:3.11-slim declares; a tarball carries none.
  step "podman could not import $TARBALL (delete it to rebuild it)" \
    podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$TARBALL" "$DEBIAN_BASE"
}

if podman image exists "$qualified" ||
  { say "pulling $qualified"; timeout 120 podman pull -q "$qualified" >>"$LOG" 2>&1; }; then
  base=$qualified
else
  say "cannot pull $qualified ($(tail -n 1 "$LOG")); using Debian's python3 instead"
  debian_base
  base=$DEBIAN_BASE
fi

# The host's CA bundle for pip, as the host's own pip is configured or the system's.
ca_args=()
ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
if [ -f "$ca" ]; then
  ca_args=(--volume "$ca:/run/pip-ca.crt:ro" --build-arg PIP_CERT=/run/pip-ca.crt)
fi

say "building $IMAGE on $base (log: $LOG)"
# --isolation chroot: RUN steps need no OCI runtime, cgroups or rlimit changes, which VMs and
# nested containers often refuse. --format docker keeps HEALTHCHECK (OCI's format has none).
# --layers: an unchanged step is reused, so a rebuild with nothing changed takes seconds.
step "buildah build failed at the STEP above: a pip error there means the build cannot reach PyPI (it uses the host's network; behind a TLS-inspecting proxy, set PIP_CERT to the proxy's CA bundle)" \
  buildah build --isolation chroot --network host --format docker --layers \
  --build-arg PYTHON_IMAGE="$base" --build-arg VERSION="$version" "${ca_args[@]}" \
  --tag "$IMAGE" .

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "done in $(($(date +%s) - started))s: $IMAGE, $(((size + 500000) / 1000000)) MB"
echo "$IMAGE"
