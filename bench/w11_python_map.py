#!/usr/bin/python3
"""W11: a Python map through offload against ProcessPoolExecutor, in the same run.

Issue 11's promise is that a Python developer who moves ``pool.map(f, xs)`` to offload
loses little: this measures what a user's call costs both ways, on the same machine, in
the same minute, over the same inputs.

- A: 300,000 ints of ``square_plus_one`` (``x*x+1``): all overhead, no work; the
  per-element cost of the path (JSON, HTTP, pipes, the runner) is all there is.
- B: 20,000 elements of ``busy``, about 50 us of pure Python each (its loop count is
  calibrated on this machine at start): overhead against real work.

offload runs ``offload serve`` with ``[resources] cpu = CORES``, two ``python`` tasks of
``workers = CORES`` on a calc.py in a temporary folder, and its default durable store
(SQLite in that folder). Its figure is ``Client.map(task, xs)`` end to end: encode,
submit, wait, decode. ProcessPoolExecutor's is ``list(pool.map(f, xs,
chunksize=len(xs) // (4 * CORES)))`` on a pool created and warmed before the clock
starts, as an application creates its pool at start-up. The two alternate, ``--runs``
times; both must return the same list, in order, or the script fails.

Targets (issue 11): A <= 1.5x and B <= 1.2x ProcessPoolExecutor's median. A missed
target is reported (FAIL) but is not an error: the exit status is non-zero only for
wrong results or a broken run.

    bench/w11_python_map.py --offload build/src/offload --runs 5 [--json FILE]
    bench/w11_python_map.py --quick      # tiny sizes: a smoke test, figures mean nothing
    bench/w11_python_map.py --profile    # also: where offload's time goes, and chunk sizes
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

import offload  # noqa: E402  (the client of this checkout, not an installed one)

# calc.py as the user would write it; {loops} is the calibrated loop count of busy().
CALC_SOURCE = '''\
"""The functions W11 maps (written by bench/w11_python_map.py)."""

BUSY_LOOPS = {loops}


def square_plus_one(x):
    return x * x + 1


def busy(x):
    """About 50 us of pure Python on the machine that calibrated BUSY_LOOPS."""
    acc = x
    for i in range(BUSY_LOOPS):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc
'''

BUSY_TARGET_US = 50.0
BUSY_TOLERANCE = 0.10
# Seconds allowed for the server to print its address and for every worker to be ready.
START_DEADLINE_S = 60.0
# Seconds one map may take, either way, before the run is called broken.
MAP_DEADLINE_S = 600.0


def log(text):
    print("w11: " + text, flush=True)


class Case:
    """One workload: a function of calc.py over ``elements`` ints, and its target."""

    def __init__(self, key, label, function, elements, target_ratio):
        self.key = key
        self.label = label
        self.function = function
        self.elements = elements
        self.target_ratio = target_ratio
        self.offload_s = []
        self.ppe_s = []

    def ratio(self):
        return statistics.median(self.offload_s) / statistics.median(self.ppe_s)

    def as_json(self, chunksize):
        return {
            "function": self.function,
            "elements": self.elements,
            "ppe_chunksize": chunksize,
            "offload_s": self.offload_s,
            "ppe_s": self.ppe_s,
            "offload_median_s": statistics.median(self.offload_s),
            "ppe_median_s": statistics.median(self.ppe_s),
            "ratio": self.ratio(),
            "target_ratio": self.target_ratio,
        }


# ---- calibration ------------------------------------------------------------------

def busy_call_us(loops, calls=100, repeats=25):
    """Microseconds one busy() call takes with ``loops``: the best of ``repeats`` timings
    of ``calls`` calls (the best, since noise only ever adds time), in this process, from
    the very source calc.py will hold."""
    namespace = {}
    exec(CALC_SOURCE.format(loops=loops), namespace)
    busy = namespace["busy"]
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        for x in range(calls):
            busy(x)
        best = min(best, time.perf_counter() - begin)
    return best / calls * 1e6


def calibrate_busy(max_tries=10):
    """The loop count for which one busy() call takes BUSY_TARGET_US +- BUSY_TOLERANCE:
    (loops, measured us, tries, settled). Each try scales the count by the ratio
    measured; settled is False when a noisy machine kept it outside the band for
    max_tries (the last count is returned)."""
    loops = 1000
    for attempt in range(1, max_tries + 1):
        us = busy_call_us(loops)
        if abs(us / BUSY_TARGET_US - 1) <= BUSY_TOLERANCE:
            return loops, us, attempt, True
        loops = max(1, round(loops * BUSY_TARGET_US / us))
    return loops, busy_call_us(loops), max_tries, False


# ---- the server --------------------------------------------------------------------

def write_config(folder, cores):
    """offload.toml beside calc.py: one python task per function, a worker per core
    each. The interpreter is this script's, so that workers, pool and calibration run
    the same Python. No `store` line: the default durable one, in this folder. No
    shutdown grace: a run cut short (an error, SIGTERM) stops the server at once rather
    than after its running map."""
    text = (
        'shutdown_grace = "0s"\n'
        "\n"
        "[resources]\n"
        "cpu = %d\n"
        "\n"
        "[tasks.square_plus_one]\n"
        'python = "calc:square_plus_one"\n'
        "interpreter = %s\n"
        "workers = %d\n"
        "\n"
        "[tasks.busy]\n"
        'python = "calc:busy"\n'
        "interpreter = %s\n"
        "workers = %d\n"
    ) % (cores, json.dumps(sys.executable), cores, json.dumps(sys.executable), cores)
    path = os.path.join(folder, "offload.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Server:
    """``offload serve`` on 127.0.0.1 port 0, run from ``folder``; stopped by its pid."""

    def __init__(self, binary, config, folder):
        self.log_path = os.path.join(folder, "server.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
                                     cwd=folder, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.url = None

    def wait_listening(self, deadline):
        pattern = re.compile(r"offload listening on (http://[0-9.]+:[0-9]+)")
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                found = pattern.search(f.read().decode("utf-8", "replace"))
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("the server did not start:\n" + self.log_tail())

    def log_tail(self, lines=20):
        with open(self.log_path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


def wait_workers_ready(client, names, count, deadline):
    """Polls GET /v1/tasks until ``count`` workers of each task in ``names`` are ready.

    The count is ours, not the answer's "configured": until the pool first reports,
    the server answers zeros there (0 configured, 0 ready, 0 starting), which would
    read as "all ready"."""
    while True:
        tasks = {t["name"]: t for t in client.tasks()}
        pending = []
        for name in names:
            w = (tasks.get(name) or {}).get("workers") or {}
            if w.get("ready") != count:
                pending.append((name, w))
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError("workers not ready within %.0f s: %s" % (START_DEADLINE_S, json.dumps(pending)))
        time.sleep(0.05)


# ---- the measurements ---------------------------------------------------------------

def time_offload(client, case, xs):
    begin = time.perf_counter()
    results = client.map(case.function, xs, wait_timeout=MAP_DEADLINE_S)
    return time.perf_counter() - begin, results


def time_pool(pool, function, xs, chunksize):
    begin = time.perf_counter()
    results = list(pool.map(function, xs, chunksize=chunksize, timeout=MAP_DEADLINE_S))
    return time.perf_counter() - begin, results


def rfc3339_seconds(text):
    """Seconds since the epoch of the server's "2026-01-01T00:00:00.000Z"."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid):
    """The pids whose parent is ``pid`` (the server's worker processes)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def profile_offload(url, server_pid, case, xs, cores):
    """Where the time of one map goes: what Client.map does, done by hand over
    http.client so that each phase has its own clock, with the job's timestamps and
    the CPU time of the server, its workers and this client. Printed only: it says
    which side to tune."""
    host, port = url[len("http://"):].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=MAP_DEADLINE_S)
    workers = children_of(server_pid)
    cpu_before = [cpu_seconds(p) for p in [server_pid] + workers]
    client_before = time.process_time()
    t0 = time.perf_counter()
    body = json.dumps({"task": case.function, "map": xs}, separators=(",", ":")).encode()
    t1 = time.perf_counter()
    wall_submit = time.time()
    conn.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    submitted = json.loads(answer.read())
    t2 = time.perf_counter()
    if answer.status != 202:
        raise RuntimeError("profile: POST /v1/jobs answered %d: %s" % (answer.status, submitted))
    job = submitted
    raw, t3 = b"", t2
    polls = 0
    while job["status"] not in ("succeeded", "failed", "canceled") and polls < 1000:
        polls += 1
        conn.request("GET", "/v1/jobs/%s?wait=30" % job["id"])
        answer = conn.getresponse()
        raw = answer.read()
        t3 = time.perf_counter()
        job = json.loads(raw)
    t4 = time.perf_counter()
    client_cpu = time.process_time() - client_before
    cpu = [cpu_seconds(p) - b for p, b in zip([server_pid] + workers, cpu_before)]
    conn.close()
    if job["status"] != "succeeded":
        raise RuntimeError("profile: the map ended %s: %s" % (job["status"], job.get("error")))
    created = rfc3339_seconds(job["created_at"])
    started = rfc3339_seconds(job["started_at"])
    finished = rfc3339_seconds(job["finished_at"])
    log("profile %s, %d elements (one map by hand; server times have 1 ms resolution):" % (case.key, len(xs)))
    log("  client json.dumps of the body     %7.1f ms  (%.1f MB)" % ((t1 - t0) * 1e3, len(body) / 1e6))
    log("  POST /v1/jobs until its 202       %7.1f ms  (upload, parse, validate, store)" % ((t2 - t1) * 1e3))
    log("    of which client -> created_at   %7.1f ms  (clocks of one machine)" % ((created - wall_submit) * 1e3))
    log("  created_at -> started_at          %7.1f ms" % ((started - created) * 1e3))
    log("  started_at -> finished_at         %7.1f ms  (the elements, over %d workers)" % ((finished - started) * 1e3, cores))
    log("  202 -> last GET answer read       %7.1f ms  (%d long poll(s), %.1f MB answer)"
        % ((t3 - t2) * 1e3, polls, len(raw) / 1e6))
    log("    of which finished_at -> read    %7.1f ms  (result JSON built, sent, read)"
        % ((wall_submit + (t3 - t1) - finished) * 1e3))
    log("  client json.loads of the answer   %7.1f ms" % ((t4 - t3) * 1e3))
    log("  total                             %7.1f ms" % ((t4 - t0) * 1e3))
    log("  CPU time (10 ms ticks): server %.2f s, workers %s s, this client %.2f s"
        % (cpu[0], " ".join("%.2f" % c for c in cpu[1:]), client_cpu))
    return job


def chunk_sweep(client, case, xs, chunks, expected, rounds=3):
    """Client.map at fixed chunk sizes (None: the server's adaptive one), each
    ``rounds`` times, the sizes in turn so that a noisy minute touches them all."""
    times = {chunk: [] for chunk in chunks}
    for _ in range(rounds):
        for chunk in chunks:
            begin = time.perf_counter()
            results = client.map(case.function, xs, chunk=chunk, wait_timeout=MAP_DEADLINE_S)
            times[chunk].append(time.perf_counter() - begin)
            if results != expected:
                raise AssertionError("chunk %s: offload's results differ" % chunk)
    log("chunk sweep %s, Client.map(chunk=K), median / best of %d:" % (case.key, rounds))
    for chunk in chunks:
        log("  chunk %8s  %.3f s / %.3f s" % (chunk or "adaptive", statistics.median(times[chunk]), min(times[chunk])))


# ---- main ---------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offload", default=os.path.join(REPO, "build", "src", "offload"),
                    help="the offload binary (default: build/src/offload of this checkout)")
    ap.add_argument("--runs", type=int, default=5, help="alternations of offload and the pool per case (default 5)")
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)),
                    help="workers and pool processes (default: the CPUs this process may use)")
    ap.add_argument("--json", metavar="FILE", help="write the raw timings there")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test (figures mean nothing)")
    ap.add_argument("--profile", action="store_true",
                    help="afterwards, time offload's phases and a few fixed chunk sizes")
    args = ap.parse_args()
    if args.runs < 1 or args.cores < 1:
        ap.error("--runs and --cores must be positive")
    if not os.access(args.offload, os.X_OK):
        ap.error("%s is not an executable (build it: cmake --build build)" % args.offload)
    if args.quick:
        args.runs = 1
    return args


def main():
    args = parse_args()
    cores = args.cores
    cases = [
        Case("square", "A square_plus_one", "square_plus_one", 2000 if args.quick else 300000, 1.5),
        Case("busy", "B busy (~50 us)", "busy", 200 if args.quick else 20000, 1.2),
    ]
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    log("%s UTC, %d cores (%s), Python %s (%s), load average %s"
        % (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), cores, cpu_model(), platform.python_version(),
           sys.executable, load))
    log("offload %s%s" % (args.offload, ", quick: tiny sizes, figures mean nothing" if args.quick else ""))

    loops, us, tries, settled = calibrate_busy()
    log("calibration: busy() with %d loops takes %.1f us per call (target %.0f us +- %.0f%%, %d tries)"
        % (loops, us, BUSY_TARGET_US, 100 * BUSY_TOLERANCE, tries))
    if not settled:
        # A smoke test goes on with what it has; a measurement would not measure B.
        if not args.quick:
            raise RuntimeError("busy() did not settle within %.0f%% of %.0f us in %d tries: the machine is too noisy"
                               % (100 * BUSY_TOLERANCE, BUSY_TARGET_US, tries))
        log("calibration did not settle (quick: going on)")

    with tempfile.TemporaryDirectory(prefix="offload-w11.") as folder:
        with open(os.path.join(folder, "calc.py"), "w") as f:
            f.write(CALC_SOURCE.format(loops=loops))
        sys.path.insert(0, folder)
        import calc  # The pool's workers import it by name, as the user's would.

        config = write_config(folder, cores)
        xs = {c.key: list(range(c.elements)) for c in cases}
        expected = {c.key: [getattr(calc, c.function)(x) for x in xs[c.key]] for c in cases}
        chunksizes = {c.key: max(1, c.elements // (4 * cores)) for c in cases}

        # The pool first, warmed: forked before the server, so it holds no copy of it.
        pool = concurrent.futures.ProcessPoolExecutor(cores)
        server = None
        try:
            for c in cases:
                list(pool.map(getattr(calc, c.function), range(4 * cores)))
            began = time.monotonic()
            server = Server(args.offload, config, folder)
            server.wait_listening(began + START_DEADLINE_S)
            client = offload.Client(server.url, timeout=MAP_DEADLINE_S)
            wait_workers_ready(client, [c.function for c in cases], cores, began + START_DEADLINE_S)
            log("server %s (store: the default SQLite, in the temporary folder); %d x %d python workers ready in %.1f s"
                % (server.url, len(cases), cores, time.monotonic() - began))

            for run in range(1, args.runs + 1):
                shown = []
                for c in cases:
                    f = getattr(calc, c.function)
                    t_offload, got = time_offload(client, c, xs[c.key])
                    if got != expected[c.key]:
                        raise AssertionError("run %d, %s: offload's results differ from f(x) in order" % (run, c.key))
                    t_pool, got = time_pool(pool, f, xs[c.key], chunksizes[c.key])
                    if got != expected[c.key]:
                        raise AssertionError("run %d, %s: the pool's results differ from f(x) in order" % (run, c.key))
                    c.offload_s.append(t_offload)
                    c.ppe_s.append(t_pool)
                    shown.append("%s offload %.3f s, pool %.3f s" % (c.key, t_offload, t_pool))
                log("run %d/%d: %s" % (run, args.runs, "; ".join(shown)))

            if args.profile:
                for c in cases:
                    job = profile_offload(server.url, server.proc.pid, c, xs[c.key], cores)
                    if job["result"] != expected[c.key]:
                        raise AssertionError("profile %s: offload's results differ" % c.key)
                    n = c.elements
                    sweep = sorted({k for k in (64, 256, 1024, 2048, 4096, 8192, n // (8 * cores),
                                                n // (4 * cores), n // (2 * cores), n // cores) if 1 <= k <= n})
                    chunk_sweep(client, c, xs[c.key], [None] + sweep, expected[c.key])
        finally:
            if server is not None:
                server.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            sys.path.remove(folder)

    print()
    print("W11, medians of %d run(s), %d cores: offload Client.map vs ProcessPoolExecutor(%d).map" % (args.runs, cores, cores))
    for c in cases:
        print("  %-22s %7s elements  offload %.3f s  pool %.3f s (chunksize %d)  ratio %.2fx"
              % (c.label, "{:,}".format(c.elements), statistics.median(c.offload_s), statistics.median(c.ppe_s),
                 chunksizes[c.key], c.ratio()))
    for c in cases:
        verdict = "PASS" if c.ratio() <= c.target_ratio else "FAIL"
        print("%s %s: offload / pool = %.2fx (target <= %.1fx)%s"
              % (verdict, c.label, c.ratio(), c.target_ratio, " (quick: sizes too small to judge)" if args.quick else ""))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "command": "python-map",
                "quick": args.quick,
                "cores": cores,
                "runs": args.runs,
                "python": sys.executable,
                "busy_loops": loops,
                "busy_call_us": us,
                "cases": {c.key: c.as_json(chunksizes[c.key]) for c in cases},
            }, f)
            f.write("\n")
    return 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def exit_on_signal(signum, frame):
    """SIGTERM or SIGHUP ends the script through its `finally` blocks, so that the
    server and its workers are stopped rather than left running."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    try:
        sys.exit(main())
    except (AssertionError, RuntimeError, offload.OffloadError, OSError) as e:
        print("w11: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
