#!/usr/bin/env bash
# Fetch KEDA's own ScaledJob CRD (keda.sh/v1alpha1), the source of the batch/v1 JobSpec schema
# that deploy/crds/scaledjobs.keda.sh.yaml embeds under spec.jobTargetRef: read from KEDA's Go
# module through the Go module proxy (the only route to it from here), at the release whose
# semantics metrics-adapter follows. hack/sync-jobspec-schema.py writes it into our CRD and
# tests/e2e/test_manifests.py compares the two. Cached in $METRICS_ADAPTER_CACHE/keda-v$V/
# (default ~/.cache/metrics-adapter); a no-op when it is there. Prints the CRD's path on stdout.
set -euo pipefail

V=2.20.2
MODULE=github.com/kedacore/keda/v2
FILE=config/crd/bases/keda.sh_scaledjobs.yaml

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/keda-v$V
CRD=$OUT/keda.sh_scaledjobs.yaml

if [ -s "$CRD" ]; then
  echo "$CRD"
  exit 0
fi

say() { echo "fetch-keda-crd: $*" >&2; }
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
