#!/usr/bin/env bash
# Build KEDA itself (github.com/kedacore/keda/v2, the release whose semantics we follow) for
# `make bench-keda`, which runs it beside metrics-adapter on the same loopback control plane:
# its operator (`keda`) and metrics server (`keda-adapter`), plus its own CRDs and RBAC as
# its release ships them. Built from the Go module proxy (the only route to it from here) into
# $METRICS_ADAPTER_CACHE/keda-v$V (default ~/.cache/metrics-adapter): a no-op when present;
# cold, several minutes on 2 cores and about 2 GiB of module cache. Never part of `make test`.
# Prints the cache directory on stdout (bin/, crds/, rbac/, api-service.yaml), progress on
# stderr.
set -euo pipefail

V=2.20.2
MODULE=github.com/kedacore/keda/v2
BINARIES="keda keda-adapter"

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/keda-v$V

have_all() {
  for b in $BINARIES; do [ -x "$OUT/bin/$b" ] || return 1; done
  for f in crds/keda.sh_scaledobjects.yaml crds/eventing.keda.sh_cloudeventsources.yaml \
    rbac/operator-role.yaml api-service.yaml; do
    [ -s "$OUT/$f" ] || return 1
  done
}

if have_all; then
  echo "$OUT"
  exit 0
fi

NAME=build-keda
# shellcheck source=hack/go-build-common.sh
. "$(dirname "$0")/go-build-common.sh"
use_installed_go 26 "KEDA v$V"  # its go.mod says go 1.26.0

mkdir -p "$OUT"
build_lock "$OUT" 60
if have_all; then
  echo "$OUT"
  exit 0
fi

started=$(date +%s)
LOG=$OUT/build.log
: >"$LOG"
stage=$(mktemp -d "$OUT/new.XXXXXX")
trap 'rm -rf "$stage"' EXIT

say "downloading $MODULE@v$V through $(go env GOPROXY)"
src=$(cd "$OUT" && go mod download -json "$MODULE@v$V" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
[ -f "$src/go.mod" ] || die "go mod download $MODULE@v$V gave no module directory"

# The module is its own main module here, with its own replaces and go.sum (read-only in the
# module cache, hence -mod=readonly); its release Makefile builds from vendor/, which a
# module download does not carry.
export GOFLAGS="-mod=readonly"
(cd "$src" && logged go mod download)
say "compiling the operator and the metrics server (the long part)"
ld="-s -w -X=$MODULE/version.Version=$V -X=$MODULE/version.GitCommit=v$V"
(cd "$src" && logged go build -trimpath -ldflags "$ld" -o "$stage/keda" ./cmd/operator)
(cd "$src" && logged go build -trimpath -ldflags "$ld" -o "$stage/keda-adapter" ./cmd/adapter)

# The manifests a plain install applies (config/ of the release), to install it the same way.
mkdir -p "$stage/crds" "$stage/rbac"
cp "$src"/config/crd/bases/*.yaml "$stage/crds/"  # eventing.keda.sh too: the operator waits for it
cp "$src/config/service_account/service_account.yaml" "$stage/rbac/service-account.yaml"
cp "$src/config/rbac/role.yaml" "$stage/rbac/operator-role.yaml"
cp "$src/config/rbac/role_binding.yaml" "$stage/rbac/operator-role-binding.yaml"
cp "$src/config/metrics-server/role.yaml" "$stage/rbac/metrics-server-role.yaml"
cp "$src/config/metrics-server/role_binding.yaml" "$stage/rbac/metrics-server-role-binding.yaml"
cp "$src/config/metrics-server/api_service.yaml" "$stage/api-service.yaml"
chmod -R u+w "$stage"

# Into place only after everything succeeded, so a half-built cache never looks whole.
mkdir -p "$OUT/bin" "$OUT/crds" "$OUT/rbac"
mv -f "$stage/keda" "$stage/keda-adapter" "$OUT/bin/"
cp -f "$stage"/crds/* "$OUT/crds/"
cp -f "$stage"/rbac/* "$OUT/rbac/"
cp -f "$stage/api-service.yaml" "$OUT/"
have_all || die "build finished but $OUT lacks a binary, the CRDs or the RBAC"
say "done in $(($(date +%s) - started))s: $OUT"
echo "$OUT"
