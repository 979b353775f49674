#!/usr/bin/env bash
# Fetch the real ServiceMonitor CRD (monitoring.coreos.com/v1) that the e2e tests install
# before applying deploy/servicemonitor.yaml and the chart's ServiceMonitor: the one
# prometheus-operator ships, read from its Go module through the Go module proxy (the only
# route to it from here). Cached in $METRICS_ADAPTER_CACHE/prometheus-operator-v$V/ (default
# ~/.cache/metrics-adapter); a no-op when it is there. Prints the CRD's path on stdout.
set -euo pipefail

V=0.85.0
MODULE=github.com/prometheus-operator/prometheus-operator
FILE=example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/prometheus-operator-v$V
CRD=$OUT/monitoring.coreos.com_servicemonitors.yaml

if [ -s "$CRD" ]; then
  echo "$CRD"
  exit 0
fi

say() { echo "fetch-servicemonitor-crd: $*" >&2; }
die() { say "$*"; exit 1; }

command -v go >/dev/null || die "needs Go on PATH (and the Go module proxy) to fetch $MODULE@v$V"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=mod ${GOFLAGS:-}"
mkdir -p "$OUT"
say "downloading $MODULE@v$V through $(go env GOPROXY)"
# `go mod download -json` prints the module's directory in the module cache as "Dir".
dir=$(cd "$OUT" && go mod download -json "$MODULE@v$V" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
[ -f "$dir/$FILE" ] || die "$MODULE@v$V has no $FILE (module dir: ${dir:-none})"
cp "$dir/$FILE" "$CRD.tmp"
mv -f "$CRD.tmp" "$CRD"  # never a half-written file in the cache
say "done: $CRD"
echo "$CRD"
