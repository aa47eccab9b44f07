#!/usr/bin/env bash
# Installs what is missing, builds the server alone (no tests, no benchmarks), and
# starts it with the defaults (127.0.0.1:8080). Extra arguments go to `offload serve`,
# e.g. --config FILE: a relative FILE is taken from the folder you run this from.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
from_caller() { if [[ $1 == /* ]]; then echo "$1"; else echo "$caller/$1"; fi; }
args=()
while (($#)); do
  case "$1" in
    --config)
      args+=("$1")
      if (($# > 1)); then args+=("$(from_caller "$2")"); shift; fi
      ;;
    --config=*) args+=("--config=$(from_caller "${1#--config=}")") ;;
    *) args+=("$1") ;;
  esac
  shift
done
scripts/install-deps.sh
scripts/build.sh release offload
exec build/src/offload serve "${args[@]}"
