"""offload_worker: write an offload worker in Python, with the standard library only.

A worker is a persistent process that offload starts ahead of time and feeds one
job at a time, so that whatever is expensive to set up (a model, a connection, a
cache) is set up once per process rather than once per job::

    import offload_worker

    model = load_model()              # runs once, when offload starts the worker

    def handle(job):
        job.progress(0.5)             # optional: shows as "progress" in GET /v1/jobs/ID
        if "text" not in job.input:
            raise offload_worker.JobError("invalid_input", "input.text is required")
        return {"label": model.predict(job.input["text"])}   # any JSON value, or bytes

    offload_worker.run(handle)

and in offload's config file::

    [tasks.classify]
    worker = ["python3", "classify.py"]
    env = { PYTHONPATH = "/path/to/offload/clients/python" }

What run() does, per docs/worker-protocol.md: it takes the process's stdout for the
protocol and points file descriptor 1 (and sys.stdout) at stderr, so that print()
and libraries that write to stdout end up in offload's log instead of corrupting
the protocol; it says {"type": "ready"}; then for each job line on stdin it calls
the handler and answers with one result or error line. It returns when stdin is
closed (offload is replacing or stopping the worker).

Returning bytes (or bytearray, memoryview) sends them base64-encoded: use that for a
task whose content_type is not JSON, such as "image/png". An exception fails the job:
JobError with its type and message (type "invalid_input" makes offload answer 422),
any other exception as "handler_error" with its traceback printed to stderr.
"""

import base64
import json
import os
import sys
import traceback

__all__ = ["Job", "JobError", "run"]


class JobError(Exception):
    """Fails the current job with error.type `type` and error.message `message`."""

    def __init__(self, type, message):
        super().__init__(message)
        self.type = type
        self.message = message


class Job:
    """One job: `id`, `task`, `input` (the JSON input, decoded), `attempt` (1 first)."""

    __slots__ = ("id", "task", "input", "attempt", "_send")

    def __init__(self, msg, send):
        self.id = msg.get("id")
        self.task = msg.get("task")
        self.input = msg.get("input")
        self.attempt = msg.get("attempt", 1)
        self._send = send

    def progress(self, fraction):
        """Reports progress in [0, 1]; cheap enough to call often."""
        self._send({"type": "progress", "id": self.id, "progress": float(fraction)})


_protocol = None  # The real stdout, once run() has taken it.


def _take_stdout():
    global _protocol
    if _protocol is None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        _protocol = os.fdopen(fd, "wb")
    return _protocol


def _encode(msg):
    return (json.dumps(msg, separators=(",", ":"), allow_nan=False) + "\n").encode()


def run(handler):
    """Serves jobs with `handler(job)` until offload closes stdin."""
    out = _take_stdout()

    def send(msg):
        out.write(_encode(msg))
        out.flush()

    send({"type": "ready"})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            print("offload_worker: ignored a line that is not JSON: %r" % line[:200], file=sys.stderr)
            continue
        if not isinstance(msg, dict) or msg.get("type") != "job":
            continue
        job = Job(msg, send)
        try:
            result = handler(job)
            if isinstance(result, (bytes, bytearray, memoryview)):
                reply = {"type": "result", "id": job.id, "encoding": "base64",
                         "result": base64.b64encode(bytes(result)).decode("ascii")}
            else:
                reply = {"type": "result", "id": job.id, "result": result}
            data = _encode(reply)
        except JobError as e:
            data = _encode({"type": "error", "id": job.id,
                            "error": {"type": str(e.type), "message": str(e.message)}})
        except Exception as e:  # The job fails; the worker lives on.
            traceback.print_exc(file=sys.stderr)
            data = _encode({"type": "error", "id": job.id,
                            "error": {"type": "handler_error",
                                      "message": "%s: %s" % (type(e).__name__, e)}})
        out.write(data)
        out.flush()
