#!/usr/bin/env bash
# Fetch one file of a Go module through the Go module proxy (the only route to upstream
# sources from here), cached in $METRICS_ADAPTER_CACHE/<cache-name>-v<version>/ (default
# ~/.cache/metrics-adapter); a no-op when it is there. Prints the cached file's path on stdout.
#
#   hack/fetch-go-module-file.sh <caller> <cache-name> <module> <version> <file in the module>
set -euo pipefail

CALLER=$1 NAME=$2 MODULE=$3 V=$4 FILE=$5

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/$NAME-v$V
TARGET=$OUT/$(basename "$FILE")

if [ -s "$TARGET" ]; then
  echo "$TARGET"
  exit 0
fi

say() { echo "$CALLER: $*" >&2; }
die() { say "$*"; exit 1; }

command -v go >/dev/null || die "needs Go on PATH (and the Go module proxy) to fetch $MODULE@v$V"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=mod ${GOFLAGS:-}"
mkdir -p "$OUT"
say "downloading $MODULE@v$V through $(go env GOPROXY)"
# `go mod download -json` prints the module's directory in the module cache as "Dir".
dir=$(cd "$OUT" && go mod download -json "$MODULE@v$V" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
[ -f "$dir/$FILE" ] || die "$MODULE@v$V has no $FILE (module dir: ${dir:-none})"
cp "$dir/$FILE" "$TARGET.tmp"
mv -f "$TARGET.tmp" "$TARGET"  # never a half-written file in the cache
say "done: $TARGET"
echo "$TARGET"
