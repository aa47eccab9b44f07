#!/usr/bin/env bash
# bench/timer_memory.sh: what finished jobs' timeouts cost in memory. Submits N no-op
# jobs to a server whose task has `timeout = "300s"` and to one whose task has none,
# both on the memory store (which keeps the finished jobs, so each run holds N
# records either way), and prints each server's RSS growth and their difference: the
# memory held on behalf of timers of jobs long finished. Bounded: N jobs, 300 s each.
#
#   bench/timer_memory.sh [--build DIR] [--offload PATH] [-n N]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build="$(dirname "$here")/build"
offload=""
n=200000
while (($#)); do
  case "$1" in
    --build) build="$2"; shift ;;
    --offload) offload="$2"; shift ;;
    -n) n="$2"; shift ;;
    *) echo "usage: $0 [--build DIR] [--offload PATH] [-n N]" >&2; exit 2 ;;
  esac
  shift
done
offload=${offload:-$build/src/offload}
load=$build/bench/offload-load
work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Prints the RSS growth in KiB of a server running N jobs of a task with `timeout`.
run() {  # TIMEOUT_LINE
  cat >"$work/offload.toml" <<TOML
store = "memory"
[tasks.quick]
run = "builtin:noop"
$1
TOML
  "$offload" serve --config "$work/offload.toml" --listen 127.0.0.1:0 --threads 1 2>"$work/log" &
  pid=$!
  local port=""
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/log")
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  [[ -n "$port" ]] || { echo "the server did not start: $(cat "$work/log")" >&2; exit 1; }
  local before after
  before=$(rss_kib "$pid")
  "$load" e2e --url "http://127.0.0.1:$port" --task quick -n "$n" -c 64 --timeout 300 >/dev/null
  after=$(rss_kib "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  echo $((after - before))
}

with=$(run 'timeout = "300s"')
without=$(run '')
echo "jobs: $n  rss growth with timeout=300s: $((with / 1024)) MiB  without: $((without / 1024)) MiB  held for timers: $(((with - without) / 1024)) MiB"
