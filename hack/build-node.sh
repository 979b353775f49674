#!/usr/bin/env bash
# What the e2e node needs (tests/support/controlplane/node.py), for `make cluster-up NODE=1`
# and tests/e2e/test_node.py:
# - kube-scheduler and kubelet, from the same k8s.io/kubernetes module and release as the
#   control plane (hack/build-control-plane.sh --node; cached beside kube-apiserver);
# - containerd (its CRI plugin, runc as the runtime: crun cannot run containers here, see
#   docs/development.md), Debian's CNI plugins (bridge, host-local, loopback), iptables, socat
#   and buildah, from Debian's packages when missing;
# - the pause image, localhost/pause:$PAUSE, from hack/pause (a static Go binary in an image
#   FROM scratch): no registry is reachable, and containerd is told to use this one
#   (sandbox_image). Kept as a docker-archive in $METRICS_ADAPTER_CACHE/node.
# Prints the directory of the kubelet and the pause archive (two lines) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=build-node
PAUSE=3.10
CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/node
ARCHIVE=$OUT/pause-$PAUSE.tar
# shellcheck source=hack/go-build-common.sh
. hack/go-build-common.sh

apt_install_missing containerd:containerd runc:runc ctr:containerd \
  /usr/lib/cni/bridge:containernetworking-plugins iptables:iptables socat:socat \
  buildah:buildah nsenter:util-linux

bin=$(hack/build-control-plane.sh --node)

mkdir -p "$OUT"
build_lock "$OUT" 10
if [ ! -s "$ARCHIVE" ]; then
  use_installed_go 22 "the pause image"
  LOG=$OUT/build.log
  : >"$LOG"
  stage=$(mktemp -d "$OUT/pause.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  say "building localhost/pause:$PAUSE"
  (cd hack/pause && logged go build -trimpath -ldflags "-s -w" -o "$stage/pause" .)
  ctr=$(buildah from scratch)
  logged buildah copy "$ctr" "$stage/pause" /pause
  logged buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  logged buildah commit -q "$ctr" "localhost/pause:$PAUSE"
  logged buildah rm "$ctr"
  logged buildah push -q "localhost/pause:$PAUSE" "docker-archive:$stage/pause.tar:localhost/pause:$PAUSE"
  mv "$stage/pause.tar" "$ARCHIVE"
fi
echo "$bin"
echo "$ARCHIVE"
