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

exec "$(dirname "$0")/fetch-go-module-file.sh" fetch-servicemonitor-crd prometheus-operator "$MODULE" "$V" "$FILE"
