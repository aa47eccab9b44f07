#!/usr/bin/env python3
"""The embedding promise, end to end: install offload into a fresh prefix, build
examples/embed against it with find_package(offload) alone, run the example on an
ephemeral port, have it count the words of a text it has never seen, stop it by
its pid and check that it drained and exited 0.

Usage: embed_test.py --cmake CMAKE --build-dir DIR --source-dir DIR
                     --cxx COMPILER --generator GEN [--make-program P] [--launcher L]
"""
import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LISTENING = re.compile(rb"offload listening on http://([0-9.]+):([0-9]+) ")


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, **kw)
    if done.returncode != 0:
        sys.stdout.write(done.stdout.decode(errors="replace"))
        raise SystemExit(f"FAIL: {cmd[0]} exited with {done.returncode}")
    return done.stdout.decode(errors="replace")


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def public_headers_are_self_contained(prefix):
    """include/offload/*.h may include each other and system or Boost headers,
    never a header of src/ (which is not installed)."""
    folder = os.path.join(prefix, "include", "offload")
    headers = sorted(os.listdir(folder))
    check(headers, "no headers installed in " + folder)
    for name in headers:
        with open(os.path.join(folder, name)) as f:
            for line in f:
                m = re.match(r'\s*#\s*include\s*"([^"]+)"', line)
                if m:
                    check(m.group(1).startswith("offload/") and os.path.exists(os.path.join(prefix, "include", m.group(1))),
                          f"{name} includes \"{m.group(1)}\", which is not a public header")
    print("public headers:", " ".join(headers))


def expected_count(text):
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text)]
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return {"words": len(words), "distinct": len(counts),
            "top": [{"word": w, "count": c} for w, c in top]}


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def wait_for_port(proc, deadline):
    """Reads the example's output until the listening line; returns (port, output)."""
    out = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
        m = LISTENING.search(out)
        if m:
            return int(m.group(2)), out
    return 0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--cxx", required=True)
    ap.add_argument("--generator", required=True)
    ap.add_argument("--make-program", default="")
    ap.add_argument("--launcher", default="")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.source_dir = os.path.abspath(args.source_dir)

    tmp = tempfile.mkdtemp(prefix="offload-embed-")
    proc = None
    try:
        prefix = os.path.join(tmp, "prefix")
        run([args.cmake, "--install", args.build_dir, "--prefix", prefix])
        public_headers_are_self_contained(prefix)

        build = os.path.join(tmp, "build")
        configure = [args.cmake, "-S", os.path.join(args.source_dir, "examples", "embed"), "-B", build,
                     "-G", args.generator, "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER=" + args.cxx,
                     "-DCMAKE_PREFIX_PATH=" + prefix,
                     # Only the prefix may satisfy find_package(offload).
                     "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"]
        if args.make_program:
            configure.append("-DCMAKE_MAKE_PROGRAM=" + args.make_program)
        if args.launcher:
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=" + args.launcher)
        run(configure)
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            found = re.search(r"^offload_DIR:PATH=(.*)$", f.read(), re.M)
        check(found and os.path.realpath(found.group(1)) == os.path.realpath(os.path.join(prefix, "lib", "cmake", "offload")),
              "find_package(offload) did not use the installed package: " + (found.group(1) if found else "unset"))
        run([args.cmake, "--build", build])

        binary = os.path.join(build, "word_count_server")
        config = os.path.join(args.source_dir, "examples", "embed", "offload.toml")
        proc = subprocess.Popen([binary, config, "127.0.0.1:0"], cwd=tmp, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        port, out = wait_for_port(proc, time.monotonic() + 30)
        check(port != 0, "the example did not listen; its output:\n" + out.decode(errors="replace"))

        # A text made up here, so that only a real count gets it right.
        rng = random.Random()
        vocabulary = ["alpha", "Beta", "gamma", "delta", "EPSILON", "zeta", "eta", "theta"]
        text = " ".join(rng.choice(vocabulary) + rng.choice(["", ",", ".", "!"]) for _ in range(rng.randint(50, 200)))
        status, body = post(port, "/v1/tasks/word_count/run", {"text": text})
        check(status == 200, f"POST /v1/tasks/word_count/run answered {status}: {body}")
        check(body == expected_count(text), f"word_count returned {body}, expected {expected_count(text)}")

        # The asynchronous path, and the validator the program registered.
        status, job = post(port, "/v1/jobs", {"task": "word_count", "input": {"text": "b a b"}})
        check(status == 202, f"POST /v1/jobs answered {status}: {job}")
        status, job = get(port, f"/v1/jobs/{job['id']}?wait=10")
        check(job.get("status") == "succeeded" and job.get("result") == expected_count("b a b"),
              f"the submitted job ended as {job}")
        status, problem = post(port, "/v1/tasks/word_count/run", {"text": 5})
        check(status == 422 and "text" in problem.get("detail", ""),
              f"an input without a string text got {status}: {problem}")
        print("word_count answered on port", port)

        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit("FAIL: the example did not stop within 30 s of SIGTERM")
        out += rest
        check(proc.returncode == 0, f"the example exited with {proc.returncode}; its output:\n" +
              out.decode(errors="replace"))
        check(b"draining" in out, "the example did not drain on SIGTERM; its output:\n" + out.decode(errors="replace"))
        proc = None
        print("PASS")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
