#!/usr/bin/env bash
# Builds the fuzz targets (scripts/build.sh fuzz fuzzers) and runs each on a fresh copy
# of its seed corpus (fuzz/corpus/TARGET/) for its share of the time. Fails (exit 1)
# when one finds a crash, a leak, a timeout or an out-of-memory: it prints the target,
# the report (the end of its log), the input's path under build-fuzz/fuzz-runs/, the
# line that replays it, and the input in base64, so that a CI log alone is enough to
# reproduce it (docs/fuzzing.md). scripts/test.sh runs it for 60 s.
# Usage: scripts/fuzz.sh [SECONDS_TOTAL] [TARGET...]
#   SECONDS_TOTAL: shared evenly by the targets run (default 60).
#   TARGET: http_request, job_json, config, worker_line (default: all four).
# Extra libFuzzer flags for every target: FUZZ_FLAGS="-jobs=2 -workers=2".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

total=60
if (($#)) && [[ $1 =~ ^[0-9]+$ ]]; then
  total=$1
  shift
fi
all=(http_request job_json config worker_line)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: no target \"$t\" (one of: ${all[*]})" >&2; exit 2; }
done

# The longest input each target is given: a few requests with bodies past max_body
# (8 KiB in the harness); a submit body; a config file; a few worker lines.
declare -A max_len=([http_request]=16384 [job_json]=4096 [config]=4096 [worker_line]=4096)

# Only the fuzzers: `offload`, which scripts/build.sh fuzz builds too, is there for the
# lock check (scripts/test.sh).
scripts/build.sh fuzz fuzzers

per=$((total / ${#targets[@]}))
((per >= 1)) || per=1
runs=$root/build-fuzz/fuzz-runs
# A run that found nothing leaves nothing worth keeping.
if [ -d "$runs" ]; then
  find "$runs" -mindepth 2 -maxdepth 2 -type d -name artifacts -empty -printf '%h\n' | xargs -r rm -rf
  find "$runs" -mindepth 1 -maxdepth 1 -type d -empty -delete
fi
stamp=$(date +%Y%m%d-%H%M%S)
failed=()
summary=()
for t in "${targets[@]}"; do
  work=$runs/$stamp-$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts" "$work/cwd"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")
  echo "fuzz: $t for ${per} s (log: $work/log)"
  rc=0
  # Run in an empty folder, stdin from /dev/null: the config target reads the file a
  # config names (tokens_file), and the HTTP target's uploads go under TMPDIR.
  (cd "$work/cwd" && TMPDIR="$work/cwd" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$root/build-fuzz/fuzz/fuzz_$t" -max_total_time="$per" -max_len="${max_len[$t]}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" ${FUZZ_FLAGS:-} \
    "$work/corpus") </dev/null >"$work/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 || true)
  summary+=("$t: ${execs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}")
  mapfile -t found < <(find "$work/artifacts" -type f | sort)
  if ((rc != 0)) || ((${#found[@]})); then
    failed+=("$t")
    seed=$(sed -n 's/^INFO: Seed: //p' "$work/log" | head -1)
    echo "fuzz: $t FAILED (exit $rc, -seed=${seed:-?}); its report (the whole log: $work/log):" >&2
    # What follows libFuzzer's last progress line (#N NEW ..., NEW_FUNC) is the report:
    # the harness's message, the sanitizer's, the stack, libFuzzer's own lines.
    report=$(awk '/^#[0-9]+[ \t]/ || /^\tNEW_FUNC/ {n = 0; next} {line[n++] = $0}
                  END {for (i = 0; i < n && i < 150; i++) print line[i]
                       if (n > 150) print "... (" n - 150 " lines more in the log)"}' "$work/log")
    [ -n "$report" ] || report=$(tail -40 "$work/log")
    printf '%s\n' "$report" | sed 's/^/  | /' >&2
    for f in "${found[@]}"; do
      size=$(stat -c %s "$f")
      echo "fuzz: $t: the input: $f ($size bytes)" >&2
      echo "fuzz: $t: replay it: build-fuzz/fuzz/fuzz_$t $f" >&2
      if ((size <= 65536)); then
        echo "fuzz: $t: the input in base64 (base64 -d >$(basename "$f")): $(base64 -w0 "$f")" >&2
      fi
    done
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: findings in ${failed[*]} (inputs under $runs/$stamp-*/artifacts/; docs/fuzzing.md)" >&2
  exit 1
fi
