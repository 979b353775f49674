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

exec "$(dirname "$0")/fetch-go-module-file.sh" fetch-keda-crd keda "$MODULE" "$V" "$FILE"
