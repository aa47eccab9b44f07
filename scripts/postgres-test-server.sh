#!/usr/bin/env bash
# A private PostgreSQL server for the tests: `start STATE_DIR` makes a fresh cluster in
# a temporary folder, starts it on 127.0.0.1 on a free port, and writes its libpq
# connection string to STATE_DIR/conninfo; `stop STATE_DIR` stops it (by the pid it
# started) and removes the cluster. `halt` stops the server and keeps the cluster;
# `resume` starts it again on the same port (a test of PostgreSQL going away). CTest
# runs start and stop as the fixture of every test that needs PostgreSQL
# (tests/CMakeLists.txt).
#
# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user
# (the Debian package creates it) and its commands run as that user.
set -euo pipefail

usage() { echo "usage: $0 start|stop|halt|resume STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
state=$2

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ]; then
  echo "postgres-test-server: no PostgreSQL server found (scripts/install-deps.sh installs postgresql-15)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  [ -f "$state/datadir" ] || return 0
  local data
  data=$(cat "$state/datadir")
  # Only a cluster this script made is removed.
  case "$data" in
    /tmp/offload-pg-*/data) ;;
    *) echo "postgres-test-server: $state/datadir names $data, not a cluster of this script's" >&2; return 1 ;;
  esac
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$(dirname "$data")"
  rm -f "$state/datadir" "$state/conninfo" "$state/port"
}

# Starts the server of $state's cluster on port $1. fsync off unless
# POSTGRES_TEST_DURABLE=1 (the benchmarks): the tests check what offload writes, not
# the disk, and a crash of the machine loses only this throwaway cluster.
run_server() {
  local data root durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  data=$(cat "$state/datadir")
  root=$(dirname "$data")
  [[ "${POSTGRES_TEST_DURABLE:-0}" == 1 ]] && durability=""
  as_owner "$bindir/pg_ctl" -D "$data" -l "$root/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories='' $durability \
        -c max_connections=200" start >/dev/null
}

case "$action" in
  start)
    mkdir -p "$state"
    stop
    root=$(mktemp -d /tmp/offload-pg-XXXXXX)
    chmod 755 "$root"
    data=$root/data
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$root"; fi
    echo "$data" >"$state/datadir"
    as_owner "$bindir/initdb" -D "$data" -U offload -A trust -E UTF8 --no-sync >"$root/initdb.log" 2>&1 || {
      cat "$root/initdb.log" >&2
      exit 1
    }
    # A free port: bind 0 and read what the kernel gave. Another process may take it
    # before the server binds; then pg_ctl fails and this tries another.
    for attempt in 1 2 3 4 5; do
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      if run_server "$port"; then
        echo "$port" >"$state/port"
        echo "host=127.0.0.1 port=$port user=offload dbname=postgres" >"$state/conninfo"
        echo "postgres-test-server: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
        exit 0
      fi
    done
    cat "$root/server.log" >&2
    exit 1
    ;;
  halt)
    as_owner "$bindir/pg_ctl" -D "$(cat "$state/datadir")" -m fast -w stop >/dev/null
    ;;
  resume)
    run_server "$(cat "$state/port")"
    ;;
  stop)
    stop
    ;;
  *)
    usage
    ;;
esac
