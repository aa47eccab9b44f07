#!/usr/bin/env bash
# bench/events_load.sh: what event subscribers cost the server (docs/benchmarks.md,
# "Events and metrics"). For each binary given (the baseline first), and for 0 and N
# subscribers of GET /v1/events, runs W2 (e2e: N jobs of `noop` at C=64 on the memory
# store) while an open-loop probe GETs a running job's status at R req/s, repeated
# --runs times, interleaved; prints the medians as a Markdown table. Every load loop
# is bounded in count and time.
#
# --path names the stream the subscribers read (/v1/events?latest=1: jobs' latest states,
# as the dashboard reads them).
#
#   bench/events_load.sh [--runs 3] [--subscribers 100] [--jobs 100000] [--path P] BIN [BIN...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
load="$(dirname "$here")/build/bench/offload-load"
runs=3
subscribers=100
jobs=100000
rate=200
path=/v1/events
sub_nice=0
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --subscribers) subscribers="$2"; shift ;;
    --jobs) jobs="$2"; shift ;;
    --load) load="$2"; shift ;;
    --path) path="$2"; shift ;;
    --subscriber-nice) sub_nice="$2"; shift ;;
    -*) echo "usage: $0 [--runs N] [--subscribers N] [--jobs N] [--load PATH] [--path P] BIN [BIN...]" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
(($#)) || { echo "$0: name at least one offload binary" >&2; exit 2; }
work=$(mktemp -d)
server_pid="" sub_pid="" probe_pid=""
stop() { [[ -n "$1" ]] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null || true; }
cleanup() { stop "$probe_pid"; stop "$sub_pid"; stop "$server_pid"; rm -rf "$work"; }
trap cleanup EXIT
printf 'store = "memory"\nshutdown_grace = "0s"\n' >"$work/offload.toml"

# One measurement: BIN SUBSCRIBERS OUT_PREFIX.
measure() {
  local bin=$1 subs=$2 out=$3 url="" i
  : >"$work/server.log"
  "$bin" serve --listen 127.0.0.1:0 --config "$work/offload.toml" 2>"$work/server.log" &
  server_pid=$!
  for ((i = 0; i < 200; i++)); do
    url=$(sed -n 's/.*offload listening on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$work/server.log" | head -1)
    [[ -n "$url" ]] && break
    sleep 0.05
  done
  [[ -n "$url" ]] || { echo "$0: $bin did not start" >&2; cat "$work/server.log" >&2; exit 1; }
  if ((subs > 0)); then
    nice -n "$sub_nice" "$load" subscribe --url "$url" --path "$path" -c "$subs" -d 8 --json >"$out-subscribe.json" &
    sub_pid=$!
    sleep 0.5
  fi
  "$load" probe --url "$url" --task sleep --input '{"ms": 600000}' -r "$rate" -d 2 -c 16 --json >"$out-probe.json" &
  probe_pid=$!
  "$load" e2e --url "$url" --task noop -n "$jobs" -c 64 --timeout 120 --json >"$out-e2e.json"
  wait "$probe_pid"; probe_pid=""
  if ((subs > 0)); then wait "$sub_pid" || true; sub_pid=""; fi
  stop "$server_pid"; server_pid=""
}

for ((r = 1; r <= runs; r++)); do
  b=0
  for bin in "$@"; do
    for subs in 0 "$subscribers"; do
      measure "$bin" "$subs" "$work/b$b-s$subs-r$r"
    done
    b=$((b + 1))
  done
done

python3 - "$work" "$runs" "$subscribers" "$@" <<'PY'
import json, statistics, sys
work, runs, subs, bins = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def field(path, key):
    try:
        return json.load(open(path)).get(key)
    except Exception:
        return None
print("| binary | subscribers | W2 finished jobs/s | probe p50 ms | probe p99 ms | probe max ms | events read (all subscribers) | streams dropped |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for b, name in enumerate(bins):
    for s in (0, subs):
        def med(kind, key):
            vals = [field(f"{work}/b{b}-s{s}-r{r}-{kind}.json", key) for r in range(1, runs + 1)]
            vals = [v for v in vals if isinstance(v, (int, float))]
            return statistics.median(vals) if vals else float("nan")
        print(f"| {name} | {s} | {med('e2e','finished_per_s'):,.0f} | {med('probe','latency_p50_ms'):.3f} | "
              f"{med('probe','latency_p99_ms'):.3f} | {med('probe','latency_max_ms'):.3f} | "
              f"{med('subscribe','messages') if s else 0:,.0f} | {med('subscribe','streams_ended') if s else 0:,.0f} |")
PY
