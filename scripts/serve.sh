#!/usr/bin/env bash
# Installs what is missing, builds, and starts the server with the defaults
# (127.0.0.1:8080). Extra arguments go to `offload serve`, e.g. --config FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
exec build/src/offload serve "$@"
