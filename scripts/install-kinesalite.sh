#!/usr/bin/env bash
# Installs kinesalite (npm, MIT), the Kinesis-compatible server pattern 3's tests and tools start
# on their own (devkit/src/kinesis.rs), into .tools/kinesalite/. Idempotent: when the pinned
# version is there it prints nothing and returns at once.
#
# Without Node.js or npm it says what to install and fails, unless OUTBOX_SKIP_KINESIS names a
# reason to go without (the Kinesis tests then print SKIPPED with that reason).
set -euo pipefail

VERSION="3.3.3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.tools/kinesalite"
PACKAGE_JSON="$PREFIX/node_modules/kinesalite/package.json"

log() { printf 'install-kinesalite: %s\n' "$*" >&2; }

installed_version() {
  [[ -f "$PACKAGE_JSON" ]] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$PACKAGE_JSON" | head -n 1
}

[[ "$(installed_version)" == "$VERSION" ]] && exit 0

missing=()
command -v node >/dev/null 2>&1 || missing+=("Node.js (node)")
command -v npm >/dev/null 2>&1 || missing+=("npm")
if ((${#missing[@]})); then
  printf -v needs '%s and ' "${missing[@]}"
  message="kinesalite $VERSION (the local Kinesis of pattern 3) needs ${needs% and }: install Node.js 18 or later with npm (Debian/Ubuntu: sudo apt-get install nodejs npm; others: https://nodejs.org), then run make kinesalite"
  if [[ -n "${OUTBOX_SKIP_KINESIS:-}" ]]; then
    log "$message"
    log "going on without it: OUTBOX_SKIP_KINESIS=$OUTBOX_SKIP_KINESIS (the Kinesis tests will say SKIPPED)"
    exit 0
  fi
  log "error: $message"
  exit 1
fi

log "installing kinesalite@$VERSION into ${PREFIX#"$ROOT"/}"
mkdir -p "$PREFIX"
# In memory (no --path) kinesalite never loads leveldown, so its native build script is not
# needed; skipping scripts also spares machines without a C++ toolchain.
npm install --prefix "$PREFIX" --no-audit --no-fund --omit=dev --ignore-scripts --loglevel=error \
  "kinesalite@$VERSION" >&2
[[ "$(installed_version)" == "$VERSION" ]] || { log "error: kinesalite $VERSION is not in $PREFIX after npm install"; exit 1; }
