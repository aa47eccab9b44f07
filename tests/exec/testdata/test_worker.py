"""A worker for offload's tests: each job's input names what to do ("op").

Environment: LOAD_MS (pretend model load at start, default 0).
"""

import os
import signal
import sys
import time

import offload_worker

LOADS = 0
time.sleep(int(os.environ.get("LOAD_MS", "0")) / 1000)
LOADS += 1
JOBS = 0
HOARD = []


def handle(job):
    global JOBS
    JOBS += 1
    op = job.input.get("op", "noop") if isinstance(job.input, dict) else "noop"
    inp = job.input if isinstance(job.input, dict) else {}
    if op == "noop":
        return None
    if op == "echo":
        return {"value": inp.get("value"), "pid": os.getpid(), "loads": LOADS, "jobs": JOBS}
    if op == "sleep":
        time.sleep(inp.get("ms", 0) / 1000)
        return {"slept": inp.get("ms", 0), "pid": os.getpid()}
    if op == "progress":
        job.progress(0.5)
        time.sleep(inp.get("ms", 0) / 1000)
        return "done"
    if op == "crash":
        print("test_worker: crashing mid-job as asked", file=sys.stderr, flush=True)
        os._exit(inp.get("code", 7))
    if op == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if op == "grow":
        HOARD.append(b"\x01" * (inp["mb"] << 20))
        return {"pid": os.getpid()}
    if op == "flood":
        out = offload_worker._protocol
        chunk = b"x" * (1 << 20)
        for _ in range(inp["mb"]):
            out.write(chunk)
        out.flush()
        time.sleep(60)
    if op == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        job.progress(0.5)  # Tells the test that SIGTERM is ignored now.
        time.sleep(inp.get("ms", 60000) / 1000)
        return "survived"
    if op == "grandchild":
        import subprocess  # Only here: it costs start-up time.

        child = subprocess.Popen(["sleep", "1000"])
        with open(inp["pidfile"] + ".tmp", "w") as f:
            f.write(str(child.pid))
        os.rename(inp["pidfile"] + ".tmp", inp["pidfile"])
        time.sleep(60)
    if op == "fail":
        raise offload_worker.JobError(inp.get("type", "bad"), inp.get("message", "failed as asked"))
    if op == "raise":
        raise ValueError("raised as asked")
    if op == "binary":
        return bytes(range(256))
    if op == "noise":
        print("a print() goes to stderr")
        offload_worker._protocol.write(b"not a protocol line\n{\"no\":\"type\"}\n")
        offload_worker._protocol.flush()
        return "ok"
    if op == "raw":
        # A protocol line as given ("$ID" becomes the job's id), then the usual result.
        offload_worker._protocol.write((inp["line"].replace("$ID", job.id) + "\n").encode())
        offload_worker._protocol.flush()
        return "after"
    if op == "types":
        return [type(v).__name__ for v in inp["values"]]
    raise offload_worker.JobError("invalid_input", "unknown op %r" % op)


offload_worker.run(handle)
