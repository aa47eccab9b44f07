#!/usr/bin/python3
"""W13: a 1 GiB upload through a command task against the same command on a pipe.

Issue 16's promise is that a file posted to offload costs the server a buffer, not its
size, and little time: this uploads a file of random bytes to ``POST
/v1/tasks/sha/run``, a ``command = ["sha256sum"]`` task that gets the file as its
stdin, and times the whole call (send, write to disk, checksum, sync, run, answer)
against ``cat FILE | sha256sum`` in the same run, over the same file (in the page
cache for both). The server runs on its default durable store (SQLite and files_dir
in a temporary folder), so the upload is synced to disk before the job starts, as a
user's server would; then again with ``sqlite_synchronous = "normal"``, where a job
and its files survive a crash of offload but not of the machine, and so are not
waited for on the disk. The pipe and both servers alternate, ``--runs`` times.

The client is ``curl -T FILE -X POST`` (which streams the file; ``--data-binary
@FILE`` would read it whole first). The server's memory is its VmRSS, sampled every
20 ms while the upload runs; its growth is the peak less the figure before.

W13b, downloads: a ``command`` writes a result of --result-mib (2 GiB) to its
OFFLOAD_RESULT_PATH, and 10 clients fetch it at once from ``GET /v1/jobs/ID/result``
(curl, to /dev/null); the server's RSS is sampled the same way.

Targets (issue 16): upload RSS growth < 64 MiB and time <= 1.3x the pipe's median;
10 parallel downloads of the 2 GiB result add < 64 MiB. A missed target is reported
(FAIL) but is not an error: the exit status is non-zero only for a wrong checksum or
a broken run.

    bench/w13_upload.py --offload build/src/offload --runs 3 [--size-mib 1024] [--json FILE]
    bench/w13_upload.py --quick      # 64 MiB, one run: a smoke test, figures mean nothing
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LISTENING = re.compile(r"offload listening on http://([0-9.]+):([0-9]+) ")

CONFIG = """\
listen = "127.0.0.1:0"
store = "sqlite:{dir}/data/offload.db"
sqlite_synchronous = "{synchronous}"

[tasks.big]
command = ["sh", "-c", "head -c {result_bytes} /dev/zero > \\"$OFFLOAD_RESULT_PATH\\""]
content_type = "application/octet-stream"
max_result = "{max_input}"

[tasks.sha]
command = ["sha256sum"]
accept = ["*/*"]
max_input = "{max_input}"
content_type = "text/plain"
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def write_file(path, size):
    chunk = 1 << 20
    with open(path, "wb") as f:
        for _ in range(size // chunk):
            f.write(os.urandom(chunk))


def pipe_sha(path):
    t0 = time.monotonic()
    out = subprocess.run("cat %s | sha256sum" % path, shell=True, check=True, capture_output=True, text=True).stdout
    return time.monotonic() - t0, out.split()[0]


class Server:
    def __init__(self, binary, folder, max_input, synchronous, result_bytes):
        os.makedirs(folder)
        self.folder = folder
        with open(os.path.join(folder, "offload.toml"), "w") as f:
            f.write(CONFIG.format(dir=folder, max_input=max_input, synchronous=synchronous,
                                  result_bytes=result_bytes))
        self.log = open(os.path.join(folder, "server.log"), "w+")
        self.proc = subprocess.Popen([binary, "serve", "--config", os.path.join(folder, "offload.toml")],
                                     stderr=self.log, stdout=subprocess.DEVNULL, cwd=folder)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = LISTENING.search(self.log.read())
            if m:
                self.url = "http://%s:%s" % m.groups()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server did not start; its log:\n" + open(self.log.name).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RssPeak:
    """The server's VmRSS, sampled every 20 ms between enter and exit."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.before = rss_kib(self.pid)
        self.peak = self.before
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self._sample)
        self.sampler.start()
        return self

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __exit__(self, *exc):
        self.done.set()
        self.sampler.join()
        self.peak = max(self.peak, rss_kib(self.pid))
        self.growth_kib = self.peak - self.before


def offload_sha(server, path):
    """Returns (seconds, checksum, RSS growth in KiB) of one upload."""
    with RssPeak(server.proc.pid) as rss:
        t0 = time.monotonic()
        res = subprocess.run(["curl", "-sS", "--fail-with-body", "-T", path, "-X", "POST", "-H",
                              "Content-Type: application/octet-stream", server.url + "/v1/tasks/sha/run"],
                             capture_output=True, text=True, timeout=600)
        elapsed = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError("curl failed (%d): %s %s" % (res.returncode, res.stdout[-500:], res.stderr[-500:]))
    return elapsed, res.stdout.split()[0], rss.growth_kib


def offload_downloads(server, clients, size):
    """W13b: makes the big result, then `clients` fetch it at once. Returns (seconds,
    RSS growth in KiB)."""
    res = subprocess.run(["curl", "-sS", "--fail-with-body", "-X", "POST", "-H", "Prefer: wait=600",
                          "-H", "Content-Type: application/json", "-d", '{"task":"big"}', server.url + "/v1/jobs"],
                         check=True, capture_output=True, text=True, timeout=900)
    job = json.loads(res.stdout)
    if job["status"] != "succeeded" or job.get("result_size") != size:
        raise RuntimeError("the big result did not come out right: %s" % res.stdout[:500])
    url = server.url + job["result_url"]
    with RssPeak(server.proc.pid) as rss:
        t0 = time.monotonic()
        procs = [subprocess.Popen(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url],
                                  stdout=subprocess.PIPE, text=True) for _ in range(clients)]
        sizes = [int(p.communicate(timeout=900)[0] or 0) for p in procs]
        elapsed = time.monotonic() - t0
    if any(s != size for s in sizes) or any(p.returncode for p in procs):
        raise RuntimeError("a download came short: %s of %d" % (sizes, size))
    return elapsed, rss.growth_kib


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--offload", default=os.path.join(REPO, "build", "src", "offload"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--result-mib", type=int, default=2048)
    p.add_argument("--downloads", type=int, default=10)
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.runs, args.size_mib, args.result_mib = 1, 64, 64
    size = args.size_mib << 20
    modes = ("full", "normal")
    pipe_times, times, growths = [], {m: [] for m in modes}, {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="offload-w13-") as folder:
        path = os.path.join(folder, "upload.bin")
        write_file(path, size)
        servers = {}
        try:
            for m in modes:
                servers[m] = Server(os.path.abspath(args.offload), os.path.join(folder, m),
                                    "%dMiB" % (max(args.size_mib, args.result_mib) * 2), m, args.result_mib << 20)
            for r in range(args.runs):
                t, expected = pipe_sha(path)
                pipe_times.append(t)
                line = "w13: run %d/%d: pipe %.2f s" % (r + 1, args.runs, t)
                for m in modes:
                    t, got, grew = offload_sha(servers[m], path)
                    if got != expected:
                        print("w13: FAIL: offload's sha256sum %s is not the pipe's %s" % (got, expected))
                        return 1
                    times[m].append(t)
                    growths[m].append(grew)
                    line += "; offload (%s) %.2f s, %.2fx, RSS +%.1f MiB" % (m, t, t / pipe_times[-1], grew / 1024)
                print(line)
            down_s, down_kib = offload_downloads(servers["full"], args.downloads, args.result_mib << 20)
        finally:
            for s in servers.values():
                s.stop()
    pipe_s = statistics.median(pipe_times)
    print("w13: %d MiB, medians of %d runs: cat | sha256sum %.2f s (%.0f MiB/s)" % (args.size_mib, args.runs, pipe_s,
                                                                                 args.size_mib / pipe_s))
    summary = {}
    for m in modes:
        s = statistics.median(times[m])
        growth_mib = max(growths[m]) / 1024
        ratio = s / pipe_s
        summary[m] = {"offload_s": times[m], "rss_growth_kib": growths[m], "ratio": ratio}
        print("w13: sqlite_synchronous=%s: offload %.2f s (%.0f MiB/s), %.2fx the pipe (target <= 1.3x: %s); server "
              "RSS growth at most %.1f MiB (target < 64: %s)"
              % (m, s, args.size_mib / s, ratio, "ok" if ratio <= 1.3 else "FAIL", growth_mib,
                 "ok" if growth_mib < 64 else "FAIL"))
    print("w13b: %d parallel downloads of a %d MiB result: %.2f s (%.0f MiB/s in all); server RSS growth %.1f MiB "
          "(target < 64: %s)" % (args.downloads, args.result_mib, down_s, args.downloads * args.result_mib / down_s,
                                 down_kib / 1024, "ok" if down_kib < 64 * 1024 else "FAIL"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workload": "W13", "date": datetime.now(timezone.utc).isoformat(), "machine": platform.node(),
                       "size_mib": args.size_mib, "runs": args.runs, "pipe_s": pipe_times, "modes": summary,
                       "downloads": {"clients": args.downloads, "result_mib": args.result_mib, "seconds": down_s,
                                     "rss_growth_kib": down_kib}}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
