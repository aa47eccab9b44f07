"""A worker for offload's tests that speaks the protocol's optional features by hand
(docs/worker-protocol.md), without the Python runner, so that the server's side of
them is tested on its own.

Environment:
  FEATURES       what the ready message announces, comma-separated (default "batch,cancel")
  FATAL          when set: say {"type":"fatal"} with this message, then exit 3
  IGNORE_CANCEL  when set: never answer a cancel (the server must fall back to signals)

Inputs: a number x gives {"v": 2*x, "msgs": messages received so far} (so that a
test can tell one batch message from one message per element); {"fail": "msg"} fails with type "bad" and a detail;
{"crash": 1} exits at once with status 9;
{"wait_ms": N} waits up to N ms, ending early on a cancel (answered as "canceled").
"""

import json
import os
import queue
import sys
import threading

out = sys.stdout


def send(msg):
    out.write(json.dumps(msg, separators=(",", ":")) + "\n")
    out.flush()


if os.environ.get("FATAL"):
    send({"type": "fatal", "error": {"type": "import_error", "message": os.environ["FATAL"],
                                     "detail": "Traceback (most recent call last):\n  (test)"}})
    sys.exit(3)

features = [f for f in os.environ.get("FEATURES", "batch,cancel").split(",") if f]
messages = 0
jobs = queue.Queue()
canceled = set()
cancel_seen = threading.Condition()


def read():
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("type") == "cancel":
            if os.environ.get("IGNORE_CANCEL"):
                continue
            with cancel_seen:
                canceled.add(msg["id"])
                cancel_seen.notify_all()
        else:
            jobs.put(msg)
    jobs.put(None)


def run_one(msg_id, x):
    """(result, error) for one input."""
    if isinstance(x, (int, float)):
        return {"v": 2 * x, "msgs": messages}, None
    if "crash" in x:
        os._exit(9)
    if "fail" in x:
        return None, {"type": "bad", "message": x["fail"], "detail": "line 1\nline 2"}
    if "wait_ms" in x:
        with cancel_seen:
            cancel_seen.wait_for(lambda: msg_id in canceled, timeout=x["wait_ms"] / 1000)
            if msg_id in canceled:
                return None, {"type": "canceled", "message": "stopped as asked"}
        return "waited", None
    return None, {"type": "bad", "message": "unknown input"}


threading.Thread(target=read, daemon=True).start()
send({"type": "ready", "features": features})
while True:
    msg = jobs.get()
    if msg is None:
        break
    messages += 1
    if msg["type"] == "job":
        result, error = run_one(msg["id"], msg["input"])
        if error:
            send({"type": "error", "id": msg["id"], "error": error})
        else:
            send({"type": "result", "id": msg["id"], "result": result})
    elif msg["type"] == "batch":
        results, errors = [], []
        for i, x in enumerate(msg["inputs"]):
            result, error = run_one(msg["id"], x)
            results.append(result)
            if error:
                errors.append(dict(error, index=i))
                if msg["stop_on_failure"] or error["type"] == "canceled":
                    break
        send({"type": "batch_result", "id": msg["id"], "results": results, "errors": errors,
              "attempts_seen": msg.get("attempts")})
