# Sourced by the hack/build-*.sh scripts that build a Go program into the cache outside the
# repo: their messages, a logged command, the installed Go checked, one build at a time.
# The caller sets NAME (the prefix of its messages) before sourcing, and LOG before `logged`.

say() { echo "$NAME: $*" >&2; }
die() { say "$*"; exit 1; }

# Run a chatty go command with its output in $LOG; show the end of it when it fails.
logged() {
  echo "+ $*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    die "failed: $* (full log: $LOG)"
  fi
}

# use_installed_go MINOR WHAT: Go >= 1.MINOR on PATH (0: any), used as installed (toolchain
# downloads are not available everywhere this runs), static binaries, modules from the proxy.
use_installed_go() {
  local minor=$1 what=$2 found
  command -v go >/dev/null || die "needs Go >= 1.$minor on PATH (and the Go module proxy) to build $what"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  export GOFLAGS="-mod=mod ${GOFLAGS:-}"
  found=$(go env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')
  [ -n "$found" ] && [ "$found" -ge "$minor" ] || die "$what needs Go >= 1.$minor, found $(go env GOVERSION)"
}

# build_lock DIR MINUTES: hold DIR/.build.lock (fd 9) for the rest of the script, waiting at
# most MINUTES for another build: two test sessions may both find the cache empty. The caller
# checks the cache again afterwards: the other build may have filled it.
build_lock() {
  command -v flock >/dev/null || return 0
  exec 9>"$1/.build.lock"
  if ! flock -n 9; then
    say "another build holds $1/.build.lock; waiting for it"
    flock -w $(($2 * 60)) 9 || die "could not take the build lock in $2 minutes"
  fi
}

# apt_install_missing "command:package" ...: install from Debian's packages the package of
# each command (or executable path) that is missing; with sudo when not root.
apt_install_missing() {
  local pair missing=""
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || [ -x "${pair%%:*}" ] || missing="$missing ${pair#*:}"
  done
  [ -n "$missing" ] || return 0
  command -v apt-get >/dev/null || die "needs$missing: install them (no apt-get here)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing from Debian's packages:$missing"
  # shellcheck disable=SC2086
  { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
    die "could not install$missing with apt-get; install them yourself and run again"
}
