#!/usr/bin/env bash
# Configures and builds one configuration.
# Usage: scripts/build.sh [release|asan|tsan|tsa|fuzz] [TARGET...]
# With targets (e.g. `offload`), only those are built: what serving needs, without
# the tests and benchmarks.
#
# tsa: clang 14 with -Wthread-safety as errors (OFFLOAD_THREAD_SAFETY_ANALYSIS), so that
# a guarded field touched without its lock fails the build. It compiles the server
# (src/) and runs nothing: no tests, no benchmarks. The quickest way to the check (about
# 2 minutes on 2 cores); scripts/tidy.sh uses its compile commands.
#
# fuzz: clang 14 with libFuzzer, ASan and UBSan (OFFLOAD_FUZZ): the fuzz targets of
# fuzz/ and offload_core under them (target `fuzzers`), which scripts/fuzz.sh runs
# (docs/fuzzing.md). With the lock check of tsa as well, and `offload` beside the
# fuzzers (its own files compiled plainly, fuzz/CMakeLists.txt), so that this one build
# checks all of src/ as tsa does: scripts/test.sh needs no other clang build.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
target=()
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DOFFLOAD_SANITIZE=ON -DOFFLOAD_BUILD_BENCH=OFF) ;;
  # -g1 (line tables, what a report's stack needs) compiles a quarter faster than -g.
  tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
          -DOFFLOAD_TSAN=ON -DOFFLOAD_BUILD_BENCH=OFF) ;;
  tsa)
    dir=build-tsa
    flags=(-DCMAKE_BUILD_TYPE=Debug -DOFFLOAD_THREAD_SAFETY_ANALYSIS=ON -DOFFLOAD_BUILD_TESTS=OFF -DOFFLOAD_BUILD_BENCH=OFF)
    target=(--target offload)
    # CMake reads CC and CXX only when it first configures a build folder.
    export CC=clang-14 CXX=clang++-14
    ;;
  fuzz)
    dir=build-fuzz
    # -O1 -g1: what libFuzzer's docs advise, with line tables for the reports; no
    # NDEBUG, so that an assert the fuzzer trips is a finding.
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DOFFLOAD_FUZZ=ON
           -DOFFLOAD_THREAD_SAFETY_ANALYSIS=ON -DOFFLOAD_BUILD_TESTS=OFF -DOFFLOAD_BUILD_BENCH=OFF)
    target=(--target fuzzers offload)
    export CC=clang-14 CXX=clang++-14
    ;;
  *) echo "usage: $0 [release|asan|tsan|tsa|fuzz]" >&2; exit 2 ;;
esac
if (($#)); then target=(--target "$@"); fi
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${target[@]}"
