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

Targets (issue 16): RSS growth < 64 MiB, time <= 1.3x the pipe's median. A missed
target is reported (FAIL) but is not an error: the exit status is non-zero only for a
wrong checksum or a broken run.

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
    def __init__(self, binary, folder, max_input, synchronous):
        os.makedirs(folder)
        self.folder = folder
        with open(os.path.join(folder, "offload.toml"), "w") as f:
            f.write(CONFIG.format(dir=folder, max_input=max_input, synchronous=synchronous))
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


def offload_sha(server, path):
    """Returns (seconds, checksum, RSS growth in KiB) of one upload."""
    before = rss_kib(server.proc.pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_kib(server.proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    try:
        res = subprocess.run(["curl", "-sS", "--fail-with-body", "-T", path, "-X", "POST", "-H",
                              "Content-Type: application/octet-stream", server.url + "/v1/tasks/sha/run"],
                             capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError("curl failed (%d): %s %s" % (res.returncode, res.stdout[-500:], res.stderr[-500:]))
    finally:
        elapsed = time.monotonic() - t0
        done.set()
        sampler.join()
    peak[0] = max(peak[0], rss_kib(server.proc.pid))
    return elapsed, res.stdout.split()[0], peak[0] - before


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--offload", default=os.path.join(REPO, "build", "src", "offload"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.runs, args.size_mib = 1, 64
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
                                    "%dMiB" % (args.size_mib * 2), m)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workload": "W13", "date": datetime.now(timezone.utc).isoformat(), "machine": platform.node(),
                       "size_mib": args.size_mib, "runs": args.runs, "pipe_s": pipe_times, "modes": summary}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
