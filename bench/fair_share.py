#!/usr/bin/env python3
"""bench/fair_share.py: fair share between tenants on a GPU of one (docs/benchmarks.md,
"Fair share between tenants").

Two figures, each against a baseline measured in the same run, where both tokens are of
one tenant (so the scheduler's order is plain submission order):

  burst:   tenant A submits --burst jobs of --job-ms on `gpu = 1`, then tenant B one;
           how long B's job waits, and how many of A's jobs start before it.
  weights: A (weight 3) and B (weight 1) both keep --backlog jobs queued for --seconds;
           A's share of the GPU's time, from the jobs' own start and end times.

Every loop is bounded in count and time; the server listens on 127.0.0.1 port 0 and is
stopped by its pid.

  bench/fair_share.py [--bin build/src/offload] [--burst 1000] [--job-ms 20] [--seconds 20]
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request


def token(binary, name):
    out = subprocess.run([binary, "token", "create", name, "--scopes", "submit,read,cancel", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def millis(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


class Server:
    def __init__(self, binary, folder, tokens):
        entries = ", ".join(
            '{name = "%s", sha256 = "%s", scopes = ["submit", "read", "cancel"]%s}' % (name, t["sha256"], more)
            for name, t, more in tokens)
        config = os.path.join(folder, "offload.toml")
        with open(config, "w") as f:
            f.write('store = "memory"\nshutdown_grace = "0s"\n[resources]\ngpu = 1\n'
                    '[tasks.render]\nrun = "builtin:sleep"\nuses = {gpu = 1}\nmax_queued = 100000\n'
                    "[auth]\ntokens = [%s]\n" % entries)
        self.log = open(os.path.join(folder, "server.log"), "w+")
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--config", config],
                                     stderr=self.log, cwd=folder)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(r"offload listening on (http://[0-9.]+:[0-9]+)", self.log.read())
            if m:
                self.url = m.group(1)
                return
            time.sleep(0.05)
        raise SystemExit("the server did not start")

    def call(self, method, path, tok, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + tok["token"],
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read() or b"null")

    def submit(self, tok, ms):
        return self.call("POST", "/v1/jobs", tok, {"task": "render", "input": {"ms": ms}})["id"]

    def job(self, tok, job_id):
        return self.call("GET", "/v1/jobs/" + job_id, tok)

    def succeeded(self, tok):
        jobs, cursor = [], None
        for _ in range(1000):
            page = self.call("GET", "/v1/jobs?status=succeeded&limit=1000" + ("&cursor=" + cursor if cursor else ""),
                             tok)
            jobs += page["jobs"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return jobs

    def cancel_all(self, tok):
        self.call("POST", "/v1/jobs/cancel", tok, {"all": True})

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def burst(binary, a, b, one_tenant, args):
    with tempfile.TemporaryDirectory() as folder:
        s = Server(binary, folder, [("alice", a, ""), ("alice" if one_tenant else "bob", b, "")])
        try:
            for _ in range(args.burst):
                s.submit(a, args.job_ms)
            lone = s.submit(b, args.job_ms)
            deadline = time.monotonic() + args.burst * args.job_ms / 1000 * 3 + 30
            while s.job(b, lone)["status"] != "succeeded":
                if time.monotonic() > deadline:
                    raise SystemExit("B's job did not finish")
                time.sleep(0.01)
            s.cancel_all(a)
            j = s.job(b, lone)
            submitted, started = millis(j["created_at"]), millis(j["started_at"])
            ahead = sum(1 for x in s.succeeded(a)
                        if x["id"] != lone and submitted < millis(x["started_at"]) < started)
            return started - submitted, ahead
        finally:
            s.stop()


def weights(binary, a, b, one_tenant, args):
    with tempfile.TemporaryDirectory() as folder:
        s = Server(binary, folder, [("alice", a, ", weight = 3"),
                                    ("alice" if one_tenant else "bob", b, ", weight = 3" if one_tenant else "")])
        try:
            toks = {"a": a, "b": b}
            ids = {"a": set(), "b": set()}
            pending = {"a": set(), "b": set()}

            def add(who, n):
                for _ in range(n):
                    job = s.submit(toks[who], args.job_ms)
                    ids[who].add(job)
                    pending[who].add(job)

            add("a", args.backlog)
            add("b", args.backlog)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                done = {x["id"] for x in s.succeeded(a) + s.succeeded(b)}
                for who in ("a", "b"):
                    ended = pending[who] & done
                    pending[who] -= ended
                    add(who, len(ended))  # Each keeps --backlog queued.
                time.sleep(0.2)
            s.cancel_all(a)
            s.cancel_all(b)
            took = {"a": 0.0, "b": 0.0}
            seen = set()
            for x in s.succeeded(a) + s.succeeded(b):
                if x["id"] in seen:
                    continue
                seen.add(x["id"])
                who = "a" if x["id"] in ids["a"] else "b"
                took[who] += millis(x["finished_at"]) - millis(x["started_at"])
            return took["a"] / (took["a"] + took["b"]), took["a"] + took["b"]
        finally:
            s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/src/offload")
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--job-ms", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--backlog", type=int, default=50)
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    a, b = token(args.bin, "alice"), token(args.bin, "bob")
    for one in (True, False):
        wait, ahead = burst(args.bin, a, b, one, args)
        print("burst %d x %d ms, %s: B waited %.0f ms, %d of A's jobs started first" %
              (args.burst, args.job_ms, "one tenant" if one else "two tenants", wait, ahead), flush=True)
    for one in (True, False):
        share, busy = weights(args.bin, a, b, one, args)
        print("weights 3:1 for %.0f s, %s: A had %.1f%% of %.1f s of GPU time" %
              (args.seconds, "one tenant" if one else "two tenants", share * 100, busy / 1000), flush=True)


if __name__ == "__main__":
    main()
