#!/usr/bin/env bash
# Installs the deploy tooling (AWS SAM CLI, cargo-lambda and the Zig it links with) into a
# project-local venv at .tools/venv, so nothing global is touched and every machine gets the
# same pinned versions. Idempotent: when the pinned set is already installed it only checks a
# stamp file and prints nothing.
#
# Usage: scripts/install-tools.sh        (PYTHON=/path/to/python3 to pick the interpreter)
# Then:  PATH="$PWD/.tools/venv/bin:$PATH" sam build
set -euo pipefail

# Pinned together: a bump of any of them reinstalls (the stamp records the whole list).
# cargo-lambda's PyPI wheel only carries the binary; it links through `python -m ziglang`,
# which it finds next to itself in the venv's bin dir. It declares ziglang as a dependency, but
# we pin it explicitly so a new Zig release can't silently change the linker under us.
REQUIREMENTS=(
  "aws-sam-cli==1.170.0"
  "cargo-lambda==1.9.2"
  "ziglang==0.15.2"
  "moto[server]==5.2.5"
)
# Lambda's arm64 target; cargo-lambda would try to add it at build time anyway.
RUST_TARGET="aarch64-unknown-linux-gnu"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
STAMP="$VENV/.install-stamp"

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The interpreter that creates the venv is looked up with the venv's own bin dir left out of PATH
# (the Makefile puts it first): a venv being rebuilt must not be asked to recreate itself.
host_path() {
  local dir dirs out=() IFS=:
  read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ "$dir" == "$VENV/bin" || "$dir" -ef "$VENV/bin" ]] || out+=("$dir")
  done
  printf '%s' "${out[*]}"
}
HOST_PATH="$(host_path)"
PYTHON_NAME="${PYTHON:-python3}"
PYTHON="$(PATH="$HOST_PATH" command -v "$PYTHON_NAME" || true)"

export PATH="$VENV/bin:$HOST_PATH"

want_stamp() {
  printf '%s\n' "${REQUIREMENTS[@]}"
}

installed() {
  [[ -f "$STAMP" ]] &&
    [[ "$(cat "$STAMP")" == "$(want_stamp)" ]] &&
    "$VENV/bin/python" -c '' 2>/dev/null &&
    [[ -x "$VENV/bin/sam" && -x "$VENV/bin/cargo-lambda" ]]
}

ensure_rust_target() {
  command -v rustup >/dev/null 2>&1 || return 0
  if ! rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET"; then
    log "adding Rust target $RUST_TARGET"
    # Not fatal: validate/lint don't need it, and the build says clearly what is missing.
    rustup target add "$RUST_TARGET" >/dev/null 2>&1 ||
      log "warning: could not add $RUST_TARGET; run 'rustup target add $RUST_TARGET' before sam build"
  fi
}

install() {
  [[ -n "$PYTHON" ]] || die "$PYTHON_NAME not found (set PYTHON=/path/to/python3)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "$PYTHON is older than 3.9, which aws-sam-cli needs"

  # A venv whose interpreter no longer runs (python upgraded or removed) is rebuilt from scratch.
  if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    log "rebuilding broken venv at $VENV"
    rm -rf "$VENV"
  fi
  if [[ ! -d "$VENV" ]]; then
    log "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV" ||
      die "could not create a venv (on Debian/Ubuntu: apt-get install python3-venv)"
  fi

  log "installing ${REQUIREMENTS[*]}"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "${REQUIREMENTS[@]}"

  "$VENV/bin/sam" --version >/dev/null || die "sam does not run"
  "$VENV/bin/cargo-lambda" lambda --version >/dev/null || die "cargo-lambda does not run"
  "$VENV/bin/python" -m ziglang version >/dev/null || die "zig does not run"
  want_stamp >"$STAMP"
  log "done: $("$VENV/bin/sam" --version), $("$VENV/bin/cargo-lambda" lambda --version), zig $("$VENV/bin/python" -m ziglang version)"
}

mkdir -p "$TOOLS"
# Serialise concurrent runs (e.g. make -j) so two pips never write the same venv.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.install.lock"
  flock 9
fi

installed || install
ensure_rust_target
