#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test, the quickest to fail first:
# the format of every C++ file (.clang-format; scripts/check-format.sh names each place
# that differs); the clang build of the fuzz targets, which is also the lock check
# (-Wthread-safety as errors over all of src/; scripts/build.sh fuzz), then the fuzz
# targets for 60 s on their seed corpora (scripts/fuzz.sh: a finding names the target,
# prints the report and the input, and fails the script; docs/fuzzing.md); then the
# Release build, then the whole suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer, then under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
scripts/build.sh fuzz
scripts/fuzz.sh 60
scripts/build.sh release
(cd build && ctest --output-on-failure -j 2 --timeout 300)
scripts/build.sh asan
(cd build-asan && ctest --output-on-failure -j 2 --timeout 300)
scripts/build.sh tsan
(cd build-tsan && ctest --output-on-failure -j 2 --timeout 300)
