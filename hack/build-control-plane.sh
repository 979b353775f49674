#!/usr/bin/env bash
# Build the real control plane the e2e tests run on loopback: kube-apiserver and
# kube-controller-manager of one pinned Kubernetes release, and etcd, from the Go module
# proxy (shared/reference/control-plane.md §1-§2). The binaries are cached outside the repo,
# in $METRICS_ADAPTER_CACHE/k8s-v$K/bin (default ~/.cache/metrics-adapter): when all three
# are there this is a no-op; otherwise it builds what is needed, unattended (about 7 min cold
# on 2 cores, a few GiB of Go caches). Prints the bin directory on stdout, progress on stderr.
#
# `hack/build-control-plane.sh --node` also builds what a node needs, from the same module and
# release: kube-scheduler and kubelet (tests/support/controlplane/node.py runs them).
#
# Why wrappers: k8s.io/kubernetes requires its staging modules at v0.0.0 through replaces
# that Go ignores in a dependency, and go.etcd.io/etcd/server/v3 has relative replaces, so
# neither `go install pkg@version` works. Each gets a tiny module of its own instead.
set -euo pipefail

K=1.34.4
ETCD=v3.6.10
GODEBUG_DEFAULT=go1.24 # the godebug line of k8s 1.34's own go.mod
BINARIES="etcd kube-apiserver kube-controller-manager"
if [ "${1:-}" = --node ]; then
  BINARIES="$BINARIES kube-scheduler kubelet"
fi

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/k8s-v$K
BIN=$OUT/bin

have_all() {
  for b in $BINARIES; do [ -x "$BIN/$b" ] || return 1; done
}

if have_all; then
  echo "$BIN"
  exit 0
fi

NAME=build-control-plane
# shellcheck source=hack/go-build-common.sh
. "$(dirname "$0")/go-build-common.sh"
use_installed_go 24 "k8s v$K"

mkdir -p "$OUT" "$BIN"
build_lock "$OUT" 60  # `make cluster-up` and a test session may both find the cache empty
if have_all; then
  echo "$BIN"
  exit 0
fi

started=$(date +%s)
LOG=$OUT/build.log
: >"$LOG"
stage=$(mktemp -d "$OUT/bin.new.XXXXXX")
trap 'rm -rf "$stage"' EXIT

version_ldflags() {
  local minor=${K#1.}
  minor=${minor%%.*}
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$ld"
}

# build_kubernetes CMD...: the named commands of k8s.io/kubernetes (cmd/CMD), into $stage.
build_kubernetes() {
  local src=$OUT/src cmds=()
  for c in "$@"; do cmds+=("k8s.io/kubernetes/cmd/$c"); done
  mkdir -p "$src"
  cd "$src"
  rm -f go.mod go.sum
  logged go mod init local/k8sbin
  say "resolving k8s.io/kubernetes@v$K through $(go env GOPROXY)"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K" | sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p')
  [ -f "$gomod" ] || die "go mod download k8s.io/kubernetes@v$K gave no go.mod"
  # The staging modules come from the release's own go.mod, so the list is never stale.
  local staging
  staging=$(grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk '{print $1}' | sort -u)
  [ -n "$staging" ] || die "no staging replaces found in $gomod"
  for m in $staging; do
    go mod edit "-replace=$m=$m@v0.${K#1.}"
  done
  go mod edit "-godebug=default=$GODEBUG_DEFAULT"
  say "fetching modules for $* ($(echo "$staging" | wc -l) staging replaces)"
  logged go get "${cmds[@]/%/@v$K}"
  say "compiling $* v$K (the long part)"
  go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$(version_ldflags)" -o "$stage/" "${cmds[@]}"
}

build_etcd() {
  local src=$OUT/etcd
  mkdir -p "$src"
  cd "$src"
  rm -f go.mod go.sum
  logged go mod init local/etcdbin
  # etcd's own server/main.go, which `go install` cannot build because of etcd's replaces.
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >main.go
  say "fetching go.etcd.io/etcd/server/v3@$ETCD"
  logged go get "go.etcd.io/etcd/server/v3@$ETCD"
  say "compiling etcd $ETCD"
  go build -trimpath -ldflags "-s -w" -o "$stage/etcd" .
}

missing_k8s=()
for b in $BINARIES; do
  if [ "$b" != etcd ] && [ ! -x "$BIN/$b" ]; then missing_k8s+=("$b"); fi
done
if [ ${#missing_k8s[@]} -gt 0 ]; then
  (build_kubernetes "${missing_k8s[@]}")
fi
if [ ! -x "$BIN/etcd" ]; then
  (build_etcd)
fi

# Move into place only after every build succeeded, so a half-built cache never looks whole.
for b in $BINARIES; do
  if [ -x "$stage/$b" ]; then
    mv -f "$stage/$b" "$BIN/$b"
  fi
done
have_all || die "build finished but $BIN lacks one of: $BINARIES"
say "kube-apiserver: $("$BIN/kube-apiserver" --version); $("$BIN/etcd" --version | head -1)"
say "done in $(($(date +%s) - started))s: $BIN"
echo "$BIN"
