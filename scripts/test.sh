#!/usr/bin/env bash
# Runs every test (lit + GoogleTest through lit) and ends with the line
# `N passed, N failed`. Builds first if needed. Usage: scripts/test.sh [lit args]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${QWEN_BUILD_DIR:-$ROOT/build}
LIT=/usr/lib/llvm-22/bin/lit

if [ ! -f "$BUILD/build.ninja" ] || [ ! -x "$ROOT/.venv/bin/python3" ]; then
  "$ROOT/scripts/setup.sh" --no-demo || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! cmake --build "$BUILD"; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
"$LIT" -sv "$@" "$BUILD/test" "$BUILD/test/Unit" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}

count() { # sums lit's "  <label>: N" summary lines (lit pads the label
           # with spaces before the colon when e.g. Unsupported is listed)
  awk -v l="$1" 'match($0, "^ *" l " *: +[0-9]+") {
    split(substr($0, RSTART, RLENGTH), a, ":"); s += a[2] + 0 } END { print s + 0 }' "$LOG"
}
passed=$(( $(count "Passed") + $(count "Expectedly Failed") ))
failed=$(( $(count "Failed") + $(count "Unexpectedly Passed") + $(count "Unresolved") + $(count "Timed Out") ))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
