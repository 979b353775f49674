#!/usr/bin/env bash
# Build the real `helm` binary the chart tests render and lint with, from its Go module
# through the Go module proxy (no release tarball download: only the proxy is reachable).
# Cached outside the repo in $METRICS_ADAPTER_CACHE/helm-v$H/bin (default
# ~/.cache/metrics-adapter): when the binary is there this is a no-op; otherwise it builds it
# unattended (a few minutes cold on 2 cores). Prints the binary's path on stdout, progress on
# stderr. Same layout and locking as hack/build-control-plane.sh.
set -euo pipefail

H=3.21.4

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/helm-v$H
BIN=$OUT/bin

if [ -x "$BIN/helm" ]; then
  echo "$BIN/helm"
  exit 0
fi

NAME=build-helm
# shellcheck source=hack/go-build-common.sh
. "$(dirname "$0")/go-build-common.sh"
use_installed_go 0 "helm v$H"

mkdir -p "$OUT"
build_lock "$OUT" 30
if [ -x "$BIN/helm" ]; then
  echo "$BIN/helm"
  exit 0
fi

started=$(date +%s)
LOG=$OUT/build.log
stage=$(mktemp -d "$OUT/bin.new.XXXXXX")
trap 'rm -rf "$stage"' EXIT

say "building helm.sh/helm/v3/cmd/helm@v$H through $(go env GOPROXY) (log: $LOG)"
# helm's version command reads these; without them `helm version` says v3 with no patch.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$H"
if ! GOBIN=$stage go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@v$H" >"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2
  die "go install helm.sh/helm/v3/cmd/helm@v$H failed (full log: $LOG)"
fi
# Move into place only after the build succeeded, so a half-built cache never looks whole.
mkdir -p "$BIN"
mv -f "$stage/helm" "$BIN/helm"
say "$("$BIN/helm" version --short) in $(($(date +%s) - started))s: $BIN/helm"
echo "$BIN/helm"
