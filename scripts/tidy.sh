#!/usr/bin/env bash
# Runs clang-tidy 14 (.clang-tidy) over the server's sources, or over FILE... given,
# with the compile commands of the clang build (scripts/build.sh tsa), and fails when
# it reports a warning. Not part of scripts/test.sh: over all of src/ it takes about
# 15 minutes on 2 cores. Run it before landing a change to src/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh tsa >/dev/null
files=("$@")
if ((${#files[@]} == 0)); then mapfile -t files < <(git ls-files 'src/*.cc'); fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run-clang-tidy-14 -j "$(nproc)" -p build-tsa -quiet "${files[@]/#/$PWD/}" >"$log" 2>&1 || true
if grep -q "warning:" "$log"; then
  grep -A3 "warning:" "$log"
  echo "tidy: clang-tidy reported warnings" >&2
  exit 1
fi
echo "tidy: ${#files[@]} file(s) clean"
