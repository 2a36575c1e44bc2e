#!/usr/bin/env bash
# make smoke-arm64: the arm64 bootstraps `make build` (sam build of template.yaml and of pattern
# 3's template) left in .aws-sam/build/ and .aws-sam/build-self-read/, run under qemu-user against
# the embedded DynamoDB and kinesalite with the sample events (devkit smoke), so what gets
# deployed is what was tested. Without an emulator it says what to install and fails:
# it never reports a pass for binaries it did not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${BUILD_DIR:-.aws-sam/build}"
SELF_READ_BUILD_DIR="${SELF_READ_BUILD_DIR:-.aws-sam/build-self-read}"
# Debian's libc6-arm64-cross puts the arm64 loader and C library here.
SYSROOT="${ARM64_SYSROOT:-/usr/aarch64-linux-gnu}"

fail() {
  echo "smoke-arm64: FAIL: $*"
  exit 1
}

runner=""
if [[ "$(uname -m)" == "aarch64" ]]; then
  runner="" # the bootstraps run natively
else
  for candidate in qemu-aarch64 qemu-aarch64-static; do
    if command -v "$candidate" >/dev/null 2>&1; then
      runner="$candidate"
      break
    fi
  done
  [[ -n "$runner" ]] || fail "no arm64 emulator: install qemu-user and the arm64 C library (Debian/Ubuntu: sudo apt-get install qemu-user libc6-arm64-cross); nothing was run"
  [[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]] ||
    fail "no arm64 C library in $SYSROOT: install it (Debian/Ubuntu: sudo apt-get install libc6-arm64-cross) or set ARM64_SYSROOT; nothing was run"
  runner="$runner -L $SYSROOT"
fi

if cargo run --quiet -p devkit -- smoke --build-dir "$BUILD_DIR" --self-read-build-dir "$SELF_READ_BUILD_DIR" --runner "$runner"; then
  echo "smoke-arm64: PASS (the bootstraps in $BUILD_DIR and $SELF_READ_BUILD_DIR${runner:+, under $runner})"
else
  fail "see the error above"
fi
