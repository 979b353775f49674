#!/usr/bin/env bash
# Build the real HashiCorp Vault server the hashiCorpVault tests run on loopback (`vault server
# -dev`), from the Go module proxy. Cached outside the repo like build-control-plane.sh, in
# $METRICS_ADAPTER_CACHE/vault-v$V/bin/vault (default ~/.cache/metrics-adapter): a no-op when it
# is there; otherwise an unattended build (measured cold: see the end of build.log). Prints the
# binary's path on stdout, progress on stderr.
#
# Why a wrapper module: Vault's go.mod replaces its nested modules (./api, ./sdk, ./api/auth/*)
# with directories the module zip does not contain, so `go install github.com/hashicorp/vault@v`
# refuses it. A tiny module that requires Vault builds its main package instead; Go ignores a
# dependency's replaces, so the published api/sdk versions Vault's go.mod names are used, and the
# two replaces Vault needs for third-party forks are repeated here.
#
# Why a patch: the published sdk v0.21.0 that v1.21.4's go.mod names differs from the ./sdk of
# the v1.21.4 tag: framework.Backend.ActivationFunc takes an extra string (the activation flag's
# name), and keysutil's RestorePolicy does not return the restored key's name. Three lines of
# Vault are adapted to it, in a copy of the module the wrapper replaces Vault with. The patch is
# checked to apply exactly, so a version bump fails loudly instead of building something else.
# (The module proxy this was built with serves no other 1.x Vault, no OpenBao, and no sdk
# version between v0.7.0 and v0.25.1 but v0.21.0.)
set -euo pipefail

V=1.21.4

CACHE=${METRICS_ADAPTER_CACHE:-$HOME/.cache/metrics-adapter}
OUT=$CACHE/vault-v$V
BIN=$OUT/bin

if [ -x "$BIN/vault" ]; then
  echo "$BIN/vault"
  exit 0
fi

NAME=build-vault
# shellcheck source=hack/go-build-common.sh
. "$(dirname "$0")/go-build-common.sh"
use_installed_go 25 "Vault v$V"

mkdir -p "$OUT" "$BIN"
build_lock "$OUT" 60
if [ -x "$BIN/vault" ]; then
  echo "$BIN/vault"
  exit 0
fi

started=$(date +%s)
LOG=$OUT/build.log
: >"$LOG"
src=$OUT/src
mkdir -p "$src"
cd "$src"
rm -f go.mod go.sum
logged go mod init local/vaultbin
say "resolving github.com/hashicorp/vault@v$V through $(go env GOPROXY)"
gomod=$(go mod download -json "github.com/hashicorp/vault@v$V" | sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p')
[ -f "$gomod" ] || die "go mod download github.com/hashicorp/vault@v$V gave no go.mod"
# Vault's replaces that point at other modules (forks), taken from its own go.mod so they never
# go stale; the ./ ones are the nested modules, served by their published versions instead.
grep -E '^replace [^ ]+( v[^ ]+)? => [^.][^ ]* v[^ ]+$' "$gomod" | while read -r _ from rest; do
  set -- $rest
  if [ "$1" = "=>" ]; then to="$2@$3"; else from="$from@$1"; to="$3@$4"; fi
  go mod edit "-replace=$from=$to"
done
say "fetching modules for Vault v$V"
logged go get "github.com/hashicorp/vault@v$V"
say "adapting Vault v$V to the published sdk (ActivationFunc's flag name)"
moddir=$(go list -m -f '{{.Dir}}' "github.com/hashicorp/vault")
[ -d "$moddir" ] || die "no module directory for github.com/hashicorp/vault@v$V"
rm -rf "$src/vault"
cp -r "$moddir" "$src/vault"
chmod -R u+w "$src/vault"
patch_line() { # file, exact old line, new line
  local file=$src/vault/$1
  grep -qxF -- "$2" "$file" || die "Vault v$V: $1 no longer has: $2"
  OLD=$2 NEW=$3 perl -0pi -e 's/^\Q$ENV{OLD}\E$/$ENV{NEW}/m' "$file"
  grep -qxF -- "$3" "$file" || die "Vault v$V: patching $1 failed"
}
patch_line vault/identity_store_util.go \
  'func (i *IdentityStore) activateDeduplication(ctx context.Context, req *logical.Request) error {' \
  'func (i *IdentityStore) activateDeduplication(ctx context.Context, req *logical.Request, _ string) error {'
patch_line vault/logical_system_activation_flags.go \
  '	if err := b.idStoreBackend.ActivationFunc(ctx, nil); err != nil {' \
  '	if err := b.idStoreBackend.ActivationFunc(ctx, nil, ""); err != nil {'
# And transit's restore, written against an sdk whose RestorePolicy also returns the key's name
# (only logged there): the name asked for stands in for it.
patch_line builtin/logical/transit/path_restore.go \
  '	restoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)' \
  '	restoredKeyName, err := keyName, b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)'
go mod edit "-replace=github.com/hashicorp/vault=./vault"
say "compiling vault v$V (the long part)"
logged go build -trimpath -ldflags "-s -w" -o "$BIN/vault.new" github.com/hashicorp/vault
# Move into place only after the build succeeded, so a half-built cache never looks whole.
mv -f "$BIN/vault.new" "$BIN/vault"
took=$(($(date +%s) - started))
echo "built in ${took}s, $(stat -c %s "$BIN/vault") bytes, $(go env GOVERSION)" >>"$LOG"
say "$("$BIN/vault" version)"
say "done in ${took}s: $BIN/vault"
echo "$BIN/vault"
