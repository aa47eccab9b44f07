#!/usr/bin/env bash
# bench/run.sh: the standard workloads W1..W13 of docs/benchmarks.md, each
# against a freshly started server, repeated --runs times; prints one table of medians.
#
#   bench/run.sh                 # 3 runs of everything (several minutes)
#   bench/run.sh --quick         # ~15 s smoke at tiny sizes: checks the tools, asserts no figure
#   bench/run.sh --only W1,W7    # a subset
#
# Servers listen on 127.0.0.1 port 0; each is stopped by its pid (SIGTERM, then
# SIGKILL if it has not exited within 30 s). Nothing is left running on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

# The stores the server-side workloads run against (W7 has none, W8a runs on the first
# only: it measures the cores, not the store; W11 runs on the default store, SQLite,
# as a user's server would); a new store is one
# more name here and its line in store_spec, which maps a name to the config's
# `store` value.
# postgres (not among the defaults) is a private PostgreSQL server that run.sh starts
# (scripts/postgres-test-server.sh, with fsync on) and removes; each server gets a
# fresh schema in it.
# A store name with -auth (memory-auth, sqlite-auth) is that store with [auth] on: the
# server checks an admin token on every request, which offload-load sends
# ($OFFLOAD_TOKEN), so that "--stores 'memory memory-auth'" is an A/B of auth in one run.
STORES=(memory sqlite)
store_spec() {  # NAME DIR
  case "${1%-auth}" in
    memory) echo "memory" ;;
    sqlite) echo "sqlite:$2/offload.db" ;;
    postgres) echo "postgres:$(postgres_conninfo) options='-csearch_path=bench'" ;;
    *) echo "run.sh: unknown store $1" >&2; return 1 ;;
  esac
}

usage() {
  cat <<EOF
usage: bench/run.sh [--quick] [--runs N] [--only W1,W2,...] [--stores "memory sqlite"]
                    [--build DIR] [--offload PATH] [--load PATH] [--client-threads N]
                    [--out DIR] [--markdown]
  --quick           tiny sizes, one run: a smoke test of the tools (figures mean nothing)
  --runs N          repeat every workload N times and report medians (default 3)
  --build DIR       build directory holding src/offload and bench/offload-load (default build)
  --client-threads  offload-load I/O threads for W1, W2, W6 and W7 (default 1)
  --out DIR         keep the raw JSON of every run there (default: a temporary folder)
  --markdown        print the table as Markdown (for docs/benchmarks.md)
EOF
}

runs=3
quick=0
only="W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W11,W12,W12m,W13"
build="$repo/build"
offload=""
load=""
client_threads=1
out=""
markdown=0
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --runs) runs="$2"; shift ;;
    --only) only="$2"; shift ;;
    --stores) read -r -a STORES <<<"$2"; shift ;;
    --build) build="$2"; shift ;;
    --offload) offload="$2"; shift ;;
    --load) load="$2"; shift ;;
    --client-threads) client_threads="$2"; shift ;;
    --out) out="$2"; shift ;;
    --markdown) markdown=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs must be a positive integer" >&2; exit 2; }
offload=${offload:-$build/src/offload}
load=${load:-$build/bench/offload-load}
soak=$(dirname "$load")/offload-claim-soak
for bin in "$offload" "$load"; do
  [[ -x "$bin" ]] || { echo "run.sh: $bin is not built (cmake --build $build)" >&2; exit 2; }
done
((quick)) && runs=1

work=$(mktemp -d "${TMPDIR:-/tmp}/offload-bench.XXXXXX")
results=${out:-$work/results}
mkdir -p "$results"

server_pid=""
nginx_pid=""
postgres_started=0
cleanup() {
  [[ -n "$server_pid" ]] && stop_pid "$server_pid"
  [[ -n "$nginx_pid" ]] && stop_pid "$nginx_pid"
  ((postgres_started)) && "$repo/scripts/postgres-test-server.sh" stop "$work/postgres" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

cores=$(nproc)
# Debian's interpreter first: a version manager's shim can cost seconds per start.
python=/usr/bin/python3
[[ -x "$python" ]] || python=python3

# Sizes. The full ones are issue 5's; the quick ones only prove that each step runs.
if ((quick)); then
  w1_c=8; w1_d=1
  w2_n=500; w2_c=8
  w3_ms=300; w3_queued=20; w3_rate=200; w3_d=1
  w4_n=20; w4_ms=5
  w5_n=50
  w6_n=5000
  w7_c=8; w7_d=1
  w8a_n=2; w8a_ms=20; w8b_n=1000
  w9_n=500; w9_c=64
  w10_n=100; w10_c=16
  w12m_n=100; w12m_ms=10
else
  w1_c=64; w1_d=10
  w2_n=20000; w2_c=64
  w3_ms=2000; w3_queued=10000; w3_rate=1000; w3_d=10
  w4_n=200; w4_ms=10
  w5_n=1000
  w6_n=1000000
  w7_c=64; w7_d=10
  w8a_n=$((2 * cores)); w8a_ms=200; w8b_n=100000
  w9_n=20000; w9_c=64
  w10_n=2000; w10_c=16
  w12m_n=2000; w12m_ms=10
fi

failures=0
note() { echo "run.sh: $*" >&2; }
fail() { note "FAILED: $*"; failures=$((failures + 1)); }
wants() { [[ ",$only," == *",$1,"* ]]; }

# Stops a process we started: SIGTERM, then SIGKILL after 30 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    note "pid $pid did not stop within 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Starts `offload serve` with config file $1 (its log in $2, default server.log); sets
# server_pid and url.
start_server() {
  local config=$1 log=${2:-$work/server.log} i
  # Emptied here, not by the redirection below: that one happens in the background
  # job, after the loop may already have read the previous server's line.
  : >"$log"
  "$offload" serve --listen 127.0.0.1:0 --config "$config" 2>"$log" &
  server_pid=$!
  url=""
  for ((i = 0; i < 200; i++)); do
    url=$(sed -n 's/.*offload listening on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$log" | head -1)
    [[ -n "$url" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  note "the server did not start:"; cat "$log" >&2
  stop_pid "$server_pid"; server_pid=""
  return 1
}

stop_server() {
  [[ -n "$server_pid" ]] && stop_pid "$server_pid"
  server_pid=""
}

# 0 when the process is gone.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Writes a config: the store, no shutdown grace (runs end with jobs still running
# or queued: they are canceled at once), then whatever the workload adds.
write_config() {  # FILE STORE [EXTRA TOML]
  local spec
  spec=$(store_spec "$2" "$work/data-$2") || return 1
  mkdir -p "$work/data-$2"
  rm -f "$work/data-$2"/* 2>/dev/null || true
  local files=""
  # PostgreSQL's default files_dir is the working directory's offload-files.
  if [[ "${2%-auth}" == postgres ]]; then
    reset_postgres_schema || return 1
    files="files_dir = \"$work/data-$2/files\""
  fi
  printf 'store = "%s"\nshutdown_grace = "0s"\n%s\n%s\n' "$spec" "$files" "${3:-}" >"$1"
  # What measure sends: the token of a server with [auth], else none.
  current_token=""
  if [[ "$2" == *-auth ]]; then
    bench_token || return 1
    printf '\n[auth]\ntokens = [{name = "bench", sha256 = "%s", scopes = ["admin"]}]\n' "$token_sha256" >>"$1"
    current_token=$token
  fi
}

# One admin token for the whole run, made as an operator makes one.
token="" token_sha256="" current_token=""
bench_token() {
  [[ -n "$token" ]] && return 0
  local made
  made=$("$offload" token create bench --scopes admin --json) || return 1
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$made")
  token_sha256=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' <<<"$made")
}

# Starts the private PostgreSQL server (in this shell, so that cleanup sees it).
start_postgres() {
  POSTGRES_TEST_DURABLE=1 "$repo/scripts/postgres-test-server.sh" start "$work/postgres" >&2 || return 1
  postgres_started=1
}
postgres_conninfo() { cat "$work/postgres/conninfo"; }

# An empty schema `bench` for the next server on PostgreSQL.
reset_postgres_schema() {
  psql "$(postgres_conninfo)" -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
    -c "DROP SCHEMA IF EXISTS bench CASCADE" -c "CREATE SCHEMA bench" >/dev/null
}

# Runs offload-load with --json; its object goes to $results/NAME.json.
measure() {  # NAME ARGS...
  local name=$1; shift
  if OFFLOAD_TOKEN="$current_token" "$load" "$@" --json >"$results/$name.json" 2>"$work/load.err"; then
    return 0
  fi
  fail "$name: offload-load $* exited non-zero: $(tail -3 "$work/load.err")"
  return 1
}

run_w1() {  # STORE RUN
  local cfg=$work/w1.toml
  write_config "$cfg" "$1" && start_server "$cfg" || { fail "W1 server"; return; }
  measure "W1-$1-$2" submit --url "$url" --task noop -c "$w1_c" -d "$w1_d" --threads "$client_threads" || true
  stop_server
}

run_w2() {
  local cfg=$work/w2.toml
  write_config "$cfg" "$1" && start_server "$cfg" || { fail "W2 server"; return; }
  measure "W2-$1-$2" e2e --url "$url" --task noop -n "$w2_n" -c "$w2_c" --threads "$client_threads" \
    --timeout 300 || true
  stop_server
}

# Every cpu slot busy with long cpu jobs and more queued behind; then probe the
# status of a job at the back of the queue.
run_w3() {
  local cfg=$work/w3.toml n=$((cores + w3_queued)) accepted
  write_config "$cfg" "$1" "$(printf '[resources]\ncpu = %d\n' "$cores")" && start_server "$cfg" ||
    { fail "W3 server"; return; }
  if measure "W3fill-$1-$2" submit --url "$url" --task cpu --input "{\"ms\": $w3_ms}" -n "$n" -c 16 -d 300; then
    accepted=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$results/W3fill-$1-$2.json")
    ((accepted == n)) || fail "W3 ($1): only ${accepted:-0} of $n cpu jobs were accepted"
    measure "W3-$1-$2" probe --url "$url" --task cpu --input "{\"ms\": $w3_ms}" -r "$w3_rate" -d "$w3_d" -c 16 || true
  fi
  stop_server
}

# An exclusive resource: a holding job keeps it while the N jobs queue, then is
# canceled, so the gaps measured are hand-overs only.
run_w4() {
  local cfg=$work/w4.toml
  write_config "$cfg" "$1" "$(printf '[resources]\ngpu = 1\n[tasks.render]\nrun = "builtin:sleep"\nuses = {gpu = 1}\n')" &&
    start_server "$cfg" || { fail "W4 server"; return; }
  measure "W4-$1-$2" gap --url "$url" --task render --input "{\"ms\": $w4_ms}" -n "$w4_n" \
    --hold-input '{"ms": 60000}' --timeout 120 || true
  stop_server
}

run_w5() {
  local cfg=$work/w5.toml
  write_config "$cfg" "$1" && start_server "$cfg" || { fail "W5 server"; return; }
  measure "W5-$1-$2" submit --url "$url" --task noop -c 1 -n "$w5_n" -d 120 --prefer-wait 5 || true
  stop_server
}

# Queued jobs stay queued behind one long job on a busy exclusive resource.
run_w6() {
  local cfg=$work/w6.toml before after hwm queued
  write_config "$cfg" "$1" "$(printf '[resources]\ngpu = 1\n[tasks.parked]\nrun = "builtin:sleep"\nuses = {gpu = 1}\nmax_queued = %d\n' $((w6_n + 10)))" &&
    start_server "$cfg" || { fail "W6 server"; return; }
  if measure "W6hold-$1-$2" submit --url "$url" --task parked --input '{"ms": 3600000}' -n 1 -c 1 -d 30; then
    before=$(rss_kib "$server_pid")
    if measure "W6fill-$1-$2" submit --url "$url" --task parked --input '{"ms": 1}' -n "$w6_n" -c 64 \
      --threads "$client_threads" -d 600; then
      after=$(rss_kib "$server_pid")
      hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
      queued=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$results/W6fill-$1-$2.json")
      ((queued == w6_n)) || fail "W6 ($1): only ${queued:-0} of $w6_n jobs were accepted"
      printf '{"command":"rss","queued":%d,"rss_before_kib":%d,"rss_kib":%d,"hwm_kib":%d}\n' \
        "${queued:-0}" "$before" "$after" "$hwm" >"$results/W6-$1-$2.json"
    fi
  fi
  stop_server
}

# e2e of a task run outside the server, then a check that every job succeeded: a
# worker or command that cannot run fails its jobs fast, which is no throughput.
run_e2e_process() {  # NAME STORE RUN N C TOML
  local cfg=$work/$1.toml failed lost
  write_config "$cfg" "$2" "$6" && start_server "$cfg" || { fail "$1 server"; return; }
  if measure "$1-$2-$3" e2e --url "$url" --task "${1,,}" -n "$4" -c "$5" --timeout 300; then
    failed=$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' "$results/$1-$2-$3.json")
    lost=$(sed -n 's/.*"lost":\([0-9]*\).*/\1/p' "$results/$1-$2-$3.json")
    [[ "${failed:-x}" == 0 && "${lost:-x}" == 0 ]] ||
      fail "$1 ($2): ${failed:-?} failed and ${lost:-?} lost of $4 jobs: $(grep -m3 -i error "$work/server.log")"
  fi
  stop_server
}

# W8, parallel map. W8a: one map of 2 cpu elements per core on a server with
# cpu = cores, and the same map with cpu = 1 in the same run; the speedup is T1/Tn of
# the client's wall times. W8b: one map of many noop elements, elements/s.
run_w8() {  # STORE RUN
  local cfg=$work/w8.toml slots name t1 tn
  if [[ "$1" == "${STORES[0]}" ]]; then
    for slots in 1 "$cores"; do
      name=W8a1core; ((slots == 1)) || name=W8aNcores
      write_config "$cfg" "$1" "$(printf '[resources]\ncpu = %d\n' "$slots")" && start_server "$cfg" ||
        { fail "W8a server"; return; }
      measure "$name-$1-$2" map --url "$url" --task cpu --input "{\"ms\": $w8a_ms}" -n "$w8a_n" --timeout 300 || true
      stop_server
    done
    t1=$(sed -n 's/.*"wall_s":\([^,}]*\).*/\1/p' "$results/W8a1core-$1-$2.json" 2>/dev/null || true)
    tn=$(sed -n 's/.*"wall_s":\([^,}]*\).*/\1/p' "$results/W8aNcores-$1-$2.json" 2>/dev/null || true)
    if [[ -n "$t1" && -n "$tn" ]]; then
      awk -v t1="$t1" -v tn="$tn" -v c="$cores" -v n="$w8a_n" -v ms="$w8a_ms" 'BEGIN {
        printf "{\"command\":\"map-speedup\",\"cores\":%d,\"elements\":%d,\"ms\":%d,\"t1_s\":%.6f,\"tn_s\":%.6f,\"speedup\":%.4f}\n",
          c, n, ms, t1, tn, (tn > 0 ? t1 / tn : 0) }' >"$results/W8a-$1-$2.json"
    fi
  fi
  write_config "$cfg" "$1" && start_server "$cfg" || { fail "W8b server"; return; }
  measure "W8b-$1-$2" map --url "$url" --task noop -n "$w8b_n" --timeout 300 || true
  stop_server
}

# W9: a persistent Python worker per core (clients/python/offload_worker.py),
# answering every job with null.
run_w9() {  # STORE RUN
  local script=$work/w9_worker.py
  printf 'import offload_worker\noffload_worker.run(lambda job: None)\n' >"$script"
  run_e2e_process W9 "$1" "$2" "$w9_n" "$w9_c" "$(printf "[tasks.w9]\nworker = ['%s', '%s']\nenv = { PYTHONPATH = '%s' }\nworkers = %d\n" \
    "$python" "$script" "$repo/clients/python" "$cores")"
}

# W10: one /bin/true process per job (its empty output is a null result).
run_w10() {  # STORE RUN
  run_e2e_process W10 "$1" "$2" "$w10_n" "$w10_c" "$(printf "[tasks.w10]\ncommand = ['/bin/true']\n")"
}

# W11: a Python map through offload against ProcessPoolExecutor in the same run
# (bench/w11_python_map.py starts its own server, on its default store); one
# alternation per run here, so the medians are over the runs like every other figure.
run_w11() {  # RUN
  local args=(--offload "$offload" --runs 1 --json "$results/W11-sqlite-$1.json")
  ((quick)) && args+=(--quick)
  if "$python" "$here/w11_python_map.py" "${args[@]}" >"$work/w11.out" 2>&1; then
    note "W11: $(sed -n 's/^w11: calibration: //p' "$work/w11.out")"
  else
    fail "W11: w11_python_map.py exited non-zero: $(tail -5 "$work/w11.out")"
  fi
}

# W13: a 1 GiB upload through a sha256sum command against cat | sha256sum, and 10
# downloads of a 2 GiB result (bench/w13_upload.py starts its own servers, SQLite).
run_w13() {  # RUN
  local args=(--offload "$offload" --runs 1 --json "$results/W13-sqlite-$1.json")
  ((quick)) && args+=(--quick)
  if "$python" "$here/w13_upload.py" "${args[@]}" >"$work/w13.out" 2>&1; then
    note "W13: $(grep '^w13b\?:' "$work/w13.out" | tail -3 | tr '\n' ' ')"
  else
    fail "W13: w13_upload.py exited non-zero: $(tail -5 "$work/w13.out")"
  fi
}

# W12, offload on PostgreSQL against PostgreSQL's own pgbench on the same server in
# the same run: `pgbench -N -M prepared -c 8 -T 15` (simple updates, one transaction
# each) is the baseline, W2's e2e noop through one offload node and through two nodes
# of a cluster the figures. Then the
# claim soak: a million jobs queued, claimed and finished, every finished row kept,
# and the latency of a claim at the start and at the end.
run_w12() {  # RUN
  local conninfo tps cfg=$work/w12.toml pgbench_d=15 soak_n=1000000
  ((quick)) && pgbench_d=2 && soak_n=20000
  conninfo=$(postgres_conninfo)
  pgbench -i -q -s 10 "$conninfo" >"$work/pgbench.out" 2>&1 || { fail "W12: pgbench -i: $(tail -3 "$work/pgbench.out")"; return; }
  pgbench -N -M prepared -c 8 -j 2 -T "$pgbench_d" "$conninfo" >"$work/pgbench.out" 2>&1 ||
    { fail "W12: pgbench: $(tail -3 "$work/pgbench.out")"; return; }
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.out" | head -1)
  write_config "$cfg" postgres && start_server "$cfg" || { fail "W12 server"; return; }
  measure "W12-e2e-$1" e2e --url "$url" --task noop -n "$w2_n" -c "$w2_c" --threads "$client_threads" --timeout 300
  stop_server
  # Two nodes on one schema (each with a files_dir of its own); the client spreads its
  # submits over both (a loop each) and waits on the first; both claim and run.
  local second_pid second_url second_cfg=$work/w12-second.toml
  write_config "$cfg" postgres && sed "s|files_dir = \"\(.*\)\"|files_dir = \"\1-2\"|" "$cfg" >"$second_cfg" &&
    start_server "$second_cfg" "$work/server-2.log" || { fail "W12 second node"; return; }
  second_pid=$server_pid second_url=$url
  start_server "$cfg" || { fail "W12 first node"; stop_pid "$second_pid"; return; }
  measure "W12-e2e2-$1" e2e --url "$url" --also-url "$second_url" --task noop -n "$w2_n" -c "$w2_c" \
    --threads "$client_threads" --timeout 300
  stop_server
  stop_pid "$second_pid"
  if [[ -f "$results/W12-e2e-$1.json" && -f "$results/W12-e2e2-$1.json" ]]; then
    "$python" - "$results/W12-e2e-$1.json" "$results/W12-e2e2-$1.json" "$results/W12-postgres-$1.json" "$tps" <<'PY'
import json, sys
one, two = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
tps = float(sys.argv[4])
json.dump({"one_node": one, "two_nodes": two, "pgbench_tps": tps, "ratio_one_node": one["finished_per_s"] / tps,
           "ratio_two_nodes": two["finished_per_s"] / tps}, open(sys.argv[3], "w"))
PY
  fi
  rm -f "$results/W12-e2e-$1.json" "$results/W12-e2e2-$1.json"
  psql "$conninfo" -qX -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS soak CASCADE" \
    -c "CREATE SCHEMA soak" >/dev/null
  if "$soak" --conninfo "$conninfo options='-csearch_path=soak'" --jobs "$soak_n" >"$results/W12s-postgres-$1.json" \
    2>"$work/soak.err"; then
    note "W12 soak: $(cat "$results/W12s-postgres-$1.json")"
  else
    fail "W12 soak: $(tail -3 "$work/soak.err")"
  fi
}

# W12m: maps across nodes. One map of sleep elements (w12m_ms each) through one node,
# then through two on one schema, each node with 2 cpu slots: elements/s of each, and
# their ratio (the second node's slots take offered chunks of the map).
run_w12m() {  # RUN
  local cfg=$work/w12m.toml second_cfg=$work/w12m-second.toml second_pid extra
  extra=$(printf '[resources]\ncpu = 2\n')
  write_config "$cfg" postgres "$extra" && start_server "$cfg" || { fail "W12m server"; return; }
  measure "W12m-one-$1" map --url "$url" --task sleep --input "{\"ms\": $w12m_ms}" -n "$w12m_n" --timeout 300 || true
  stop_server
  write_config "$cfg" postgres "$extra" && sed "s|files_dir = \"\(.*\)\"|files_dir = \"\1-2\"|" "$cfg" >"$second_cfg" &&
    start_server "$second_cfg" "$work/server-2.log" || { fail "W12m second node"; return; }
  second_pid=$server_pid
  start_server "$cfg" || { fail "W12m first node"; stop_pid "$second_pid"; return; }
  measure "W12m-two-$1" map --url "$url" --task sleep --input "{\"ms\": $w12m_ms}" -n "$w12m_n" --timeout 300 || true
  stop_server
  stop_pid "$second_pid"
  if [[ -f "$results/W12m-one-$1.json" && -f "$results/W12m-two-$1.json" ]]; then
    "$python" - "$results/W12m-one-$1.json" "$results/W12m-two-$1.json" "$results/W12m-postgres-$1.json" <<'PY'
import json, sys
one, two = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
json.dump({"one_node": one, "two_nodes": two, "ratio": two["elements_per_s"] / one["elements_per_s"]},
          open(sys.argv[3], "w"))
PY
  fi
  rm -f "$results/W12m-one-$1.json" "$results/W12m-two-$1.json"
}

# nginx's config for W7: every request answered with a fixed 202 job body.
nginx_conf() {  # DIR PORT
  local dir=$1 user_line=""
  # As root, nginx's workers would switch to "nobody"; they need nothing from it.
  (($(id -u) == 0)) && user_line="user $(id -un) $(id -gn);"
  cat <<EOF
$user_line
worker_processes $cores;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$2;
    location / {
      default_type application/json;
      add_header Location /v1/jobs/Q2x0dGhpcyBpcyBh always;
      return 202 '{"id":"Q2x0dGhpcyBpcyBh","task":"noop","status":"queued","priority":0,"position":0,"attempts":0,"created_at":"2026-01-01T00:00:00.000Z","started_at":null,"finished_at":null,"result":null,"error":null,"progress":null}';
    }
  }
}
EOF
}

# W7, the HTTP ceiling: nginx as a static responder, driven by the same client as W1.
run_w7() {  # RUN
  local nginx dir=$work/nginx port="" attempt i
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  if [[ ! -x "$nginx" ]]; then
    note "W7 skipped: nginx is not installed (scripts/install-deps.sh installs nginx-light)"
    return
  fi
  mkdir -p "$dir/logs" "$dir/tmp"
  # nginx cannot report a port it picked, so try a few random unprivileged ones.
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    nginx_conf "$dir" "$port" >"$dir/nginx.conf"
    "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
    nginx_pid=$!
    for ((i = 0; i < 100; i++)); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$nginx_pid" 2>/dev/null && break
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
  done
  if [[ -z "$nginx_pid" ]]; then
    fail "W7: nginx did not start: $(tail -3 "$dir/logs/error.log" 2>/dev/null)"
    return
  fi
  measure "W7-http-$1" submit --url "http://127.0.0.1:$port" --task noop -c "$w7_c" -d "$w7_d" \
    --threads "$client_threads" || true
  stop_pid "$nginx_pid"
  nginx_pid=""
}

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "offload bench: $started, $cores cores ($cpu_model), $mem_gib GiB RAM, load average $load_start"
echo "offload bench: runs $runs$( ((quick)) && echo ' (quick: tiny sizes, figures are not comparable)'), stores ${STORES[*]}, workloads $only"

if [[ " ${STORES[*]} " == *" postgres "* ]]; then
  start_postgres || { echo "run.sh: PostgreSQL did not start" >&2; exit 1; }
fi

for ((r = 1; r <= runs; r++)); do
  for store in "${STORES[@]}"; do
    for w in 1 2 3 4 5 6 8 9 10; do
      if wants "W$w"; then
        t0=$(date +%s.%N)
        "run_w$w" "$store" "$r"
        note "run $r/$runs W$w ($store): $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
      fi
    done
  done
  if wants W7; then
    t0=$(date +%s.%N)
    run_w7 "$r"
    note "run $r/$runs W7: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  fi
  if wants W11; then
    t0=$(date +%s.%N)
    run_w11 "$r"
    note "run $r/$runs W11: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  fi
  if wants W12 && [[ " ${STORES[*]} " == *" postgres "* ]]; then
    t0=$(date +%s.%N)
    run_w12 "$r"
    note "run $r/$runs W12: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  fi
  if wants W12m && [[ " ${STORES[*]} " == *" postgres "* ]]; then
    t0=$(date +%s.%N)
    run_w12m "$r"
    note "run $r/$runs W12m: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  fi
  if wants W13; then
    t0=$(date +%s.%N)
    run_w13 "$r"
    note "run $r/$runs W13: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  fi
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
report_args=("$results" --cores "$cores")
((quick)) && report_args+=(--quick)
((markdown)) && report_args+=(--markdown)
"$python" "$here/report.py" "${report_args[@]}" || fail "report.py"
echo "offload bench: load average at the end $load_end"
if ((failures)); then
  echo "offload bench: $failures step(s) failed"
  exit 1
fi
echo "offload bench: done"
