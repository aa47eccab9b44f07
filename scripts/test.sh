#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: first the format of every
# C++ file (.clang-format; scripts/check-format.sh names each place that differs) and
# the clang build that checks the lock annotations (both run nothing and fail fast),
# then the Release
# build, then the whole suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer, then under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
scripts/build.sh tsa
scripts/build.sh release
(cd build && ctest --output-on-failure -j 2 --timeout 300)
scripts/build.sh asan
(cd build-asan && ctest --output-on-failure -j 2 --timeout 300)
scripts/build.sh tsan
(cd build-tsan && ctest --output-on-failure -j 2 --timeout 300)
