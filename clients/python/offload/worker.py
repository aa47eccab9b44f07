"""offload.worker: the Python worker runner, standard library only.

A `python = "module:function"` task needs no worker file: offload starts persistent
processes running this runner, each of which imports the module once and calls the
function with each job's input::

    python3 -m offload.worker calc:cpu_bound_func [--call arg|kwargs] [--input path|bytes] [--path DIR]...

(offload itself starts it as `python -c BOOTSTRAP TARGET ...`, which calls main()).
The function's return value is the job's result; an exception fails the job. A
function with a `ctx` keyword parameter also gets a Context: progress reports and a
cancellation check::

    def render(scene, ctx):
        for i, tile in enumerate(tiles(scene)):
            ctx.check()                      # raises Canceled once the job is canceled
            draw(tile)
            ctx.progress((i + 1) / len(tiles))
        return png_bytes                     # bytes are sent base64

    raise JobError("invalid_input", "scene.width must be positive")   # chosen error type

A job may come with files (an upload): a job that has files and no JSON input (a
file posted as the body itself) gets its first file as the argument, its path (a
str) or, with `--input bytes`, its contents; `ctx.files` lists them all (JobFile).
A function may return File(path): the file is the job's result, copied to where
offload asked for it (`ctx.result_path`, which a function may also write to and
return as File(ctx.result_path): no copy then).

The older API, a worker file calling run(handler) (what clients/python/offload_worker.py
offered), keeps working unchanged; see run().

How it works, per docs/worker-protocol.md:

- The protocol owns the process's real stdout. Before anything else runs (the import
  included), file descriptor 1 and sys.stdout are pointed at stderr, so print() and
  libraries that write to stdout end up in offload's log rather than corrupting the
  protocol. Messages go out one write and one flush each, under a lock.
- A reader thread reads stdin. Job and batch messages go to a queue served by the main
  thread, one at a time (offload sends the next only after the answer, so the queue
  holds at most one job and the end-of-input mark). A cancel message is handled on the
  reader thread itself, at once: it sets the cancel flag of the job it names, which the
  function sees through ctx while it runs. A cancel for any other job is ignored.
- A batch (the elements of a map in one message) is the hot path: for a cheap function
  the cost per element is what decides whether offload keeps up with a process pool.
  So a function called with one positional argument and no ctx is mapped over the
  inputs with no per-element Python code of ours at all (list.extend over map), the
  answer is encoded with one json call, and only when an element raises or a result
  is not JSON does a slower path take over, for that element or that answer.
- "ready" is sent only once the import succeeded and the function was found. If not,
  a "fatal" message says why (with the traceback's tail) and the process exits with
  status 3, so offload can show the reason instead of a bare crash loop.
"""

import binascii
import importlib
import json
import math
import operator
import os
import queue
import sys
import threading
import traceback

__all__ = ["Canceled", "Context", "File", "Job", "JobError", "JobFile", "main", "run"]

# Exit status when the target cannot be imported or is not a callable.
EXIT_START_FAILED = 3
# Exit status for a command line the runner does not understand.
EXIT_USAGE = 2
# error.detail and fatal detail keep at most about this many characters of a traceback.
DETAIL_LIMIT = 2048


class JobError(Exception):
    """Fails the current job with error.type `type`, error.message `message`.

    `detail`, when given, becomes error.detail (a longer explanation). Type
    "invalid_input" makes offload answer 422 for the job's result instead of 500.
    """

    def __init__(self, type, message, detail=None):
        super().__init__(message)
        self.type = type
        self.message = message
        self.detail = detail


class Canceled(JobError):
    """The job was canceled: raised by Context.check(), or raise it yourself.

    It fails the job with type "canceled", the protocol's convention; offload marks
    the job canceled (or timed out) whatever the answer says.
    """

    def __init__(self, message="the job was canceled"):
        super().__init__("canceled", message)


class JobFile:
    """A file that came with the job (an upload), as offload keeps it: `field` (the
    form field; "body" for a file posted as the body itself), `filename` (as the
    client named it; "" when it did not), `content_type`, `size` (bytes), `sha256`
    (hex) and `path`, where it is on disk, read-only, for the job's lifetime."""

    __slots__ = ("field", "filename", "content_type", "size", "sha256", "path")

    def __init__(self, entry):
        self.field = entry.get("field", "")
        self.filename = entry.get("filename", "")
        self.content_type = entry.get("content_type", "application/octet-stream")
        self.size = entry.get("size")
        self.sha256 = entry.get("sha256")
        self.path = entry.get("path")

    def read_bytes(self):
        """The file's contents."""
        return _read_file(self.path)

    def __repr__(self):
        return "JobFile(field=%r, filename=%r, content_type=%r, size=%r)" % (
            self.field, self.filename, self.content_type, self.size)


class File:
    """A result that is a file: return File(path) and the file becomes the job's
    result, sent as the task's content_type (`content_type` here only describes it;
    the task's wins). In a batch (the elements of a map) its bytes are the element's
    result, as for bytes."""

    __slots__ = ("path", "content_type")

    def __init__(self, path, content_type=None):
        self.path = os.fspath(path)
        self.content_type = content_type

    def __repr__(self):
        return "File(%r)" % (self.path,)


class Context:
    """What a function that takes a `ctx` keyword gets: the job and its controls.

    `job_id` is the job's id (in a batch, the map's id), `task` the task's name,
    `attempt` 1 for the first run of this input and higher on retries. `files` are
    the job's files (JobFile; empty when none, always in a batch), `result_path` where
    the function may write a result file to return as File(ctx.result_path) (None in
    a batch, or from an offload that offers none). The cancel flag is set by the
    runner's reader thread; every other method is for the thread running the
    function (progress is thread-safe too).
    """

    __slots__ = ("job_id", "task", "attempt", "files", "result_path", "_cancel", "_send")

    def __init__(self, job_id, task, attempt, cancel, send, files=(), result_path=None):
        self.job_id = job_id
        self.task = task
        self.attempt = attempt
        self.files = list(files)
        self.result_path = result_path
        self._cancel = cancel  # threading.Event, set when offload cancels the job
        self._send = send  # None in a batch: the map's progress counts elements there

    def progress(self, fraction):
        """Reports progress in [0, 1] (shown as the job's `progress`); no-op in a batch."""
        if self._send is None:
            return
        value = float(fraction)
        if not math.isfinite(value):
            raise ValueError("progress must be a finite number, got %r" % (fraction,))
        self._send({"type": "progress", "id": self.job_id, "progress": min(max(value, 0.0), 1.0)})

    @property
    def canceled(self):
        """True once offload asked to cancel this job (or batch)."""
        return self._cancel.is_set()

    def check(self):
        """Raises Canceled if the job was canceled: call it between steps."""
        if self._cancel.is_set():
            raise Canceled()

    def sleep(self, seconds):
        """Sleeps like time.sleep, but wakes at once on cancel; returns False if canceled."""
        return not self._cancel.wait(max(0.0, seconds))


class Job:
    """One job for a run() handler: `id`, `task`, `input` (decoded JSON), `attempt`."""

    __slots__ = ("id", "task", "input", "attempt", "_send")

    def __init__(self, msg, send):
        self.id = msg.get("id")
        self.task = msg.get("task")
        self.input = msg.get("input")
        self.attempt = msg.get("attempt", 1)
        self._send = send  # None for an element of a batch

    def progress(self, fraction):
        """Reports progress in [0, 1]; cheap enough to call often; no-op in a batch."""
        if self._send is not None:
            self._send({"type": "progress", "id": self.id, "progress": float(fraction)})


# ---------------------------------------------------------------------------------
# The protocol stream.

_protocol = None  # The real stdout (a binary file), once the runner has taken it.
_write_lock = threading.Lock()
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _take_stdout():
    """Keeps fd 1 for the protocol and points fd 1 and sys.stdout at stderr."""
    global _protocol
    if _protocol is None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        _protocol = os.fdopen(fd, "wb")
    return _protocol


def _write(data):
    """Writes one encoded message (bytes ending with a newline) and flushes it."""
    with _write_lock:
        _protocol.write(data)
        _protocol.flush()


def _encode(msg):
    """One message as a line of bytes; raises ValueError/TypeError if it is not JSON."""
    return (_ENCODER.encode(msg) + "\n").encode()


def _send(msg):
    _write(_encode(msg))


def _warn(text):
    print("offload.worker: " + text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------
# Errors.


def _tail(text, limit=DETAIL_LIMIT):
    """The end of `text` in at most about `limit` characters, cut at a line start."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < len(cut) - 1:
        cut = cut[newline + 1 :]
    return "...\n" + cut


def _describe(exc):
    """'ValueError: text' (or just the type name when the text is empty)."""
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _is_runner_frame(filename):
    return filename in _RUNNER_FILES or filename.startswith("<frozen importlib")


# This file as its code objects name it (also when offload embeds it without a __file__),
# and importlib's, whose frames sit between the runner's and an import error's.
_RUNNER_FILES = (_is_runner_frame.__code__.co_filename, getattr(importlib, "__file__", None))


def _user_traceback(tb):
    """Skips the runner's (and the import machinery's) frames at the top of a traceback,
    so that it starts in the user's code; None when no user frame is in it."""
    while tb is not None and _is_runner_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def _format(exc):
    """The traceback of `exc` as text, from the user's first frame to the exception line."""
    return "".join(traceback.format_exception(type(exc), exc, _user_traceback(exc.__traceback__)))


def _error_of(exc):
    """The protocol's error object for an exception raised by the user's code.

    REQUIRES: called in the except block (the traceback is printed for non-JobErrors).
    """
    if isinstance(exc, JobError):
        error = {"type": str(exc.type), "message": str(exc.message)}
        if exc.detail is not None:
            error["detail"] = str(exc.detail)
        return error
    text = _format(exc)
    sys.stderr.write(text)
    sys.stderr.flush()
    return {"type": "handler_error", "message": _describe(exc), "detail": _tail(text)}


def _invalid_result(value, exc):
    return {
        "type": "invalid_result",
        "message": "the result, of type %s, cannot be sent as JSON: %s" % (type(value).__name__, exc),
    }


_BINARY = (bytes, bytearray, memoryview)


def _b64(value):
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    return binascii.b2a_base64(value, newline=False).decode("ascii")


# ---------------------------------------------------------------------------------
# Serving: the reader thread and the main loop.

_EOF = None  # What the reader queues once stdin is closed.


class _Reader:
    """Reads stdin on its own thread: queues jobs and batches, applies cancels at once.

    Thread-safe. The (id, cancel event) of the latest job or batch is written by the
    reader thread only; a cancel naming that id sets its event, from this thread, while
    the main thread may be running the function.
    """

    def __init__(self, stdin):
        self._stdin = stdin
        self.jobs = queue.Queue()  # Bounded by the protocol: one job in flight, then EOF.
        self._current_id = None
        self._current_cancel = None
        self._thread = threading.Thread(target=self._loop, name="offload-stdin", daemon=True)

    def start(self):
        self._thread.start()

    def _loop(self):
        try:
            for line in self._stdin:
                self._handle(line)
        except (OSError, ValueError) as e:  # A closed or broken stdin ends like EOF.
            _warn("stopped reading stdin: %s" % e)
        finally:
            self.jobs.put(_EOF)

    def _handle(self, line):
        if not line.strip():
            return
        try:
            msg = json.loads(line)
        except ValueError:
            _warn("ignored a line that is not JSON: %r" % line[:200])
            return
        if not isinstance(msg, dict):
            _warn("ignored a line that is not a JSON object: %r" % line[:200])
            return
        kind = msg.get("type")
        if kind in ("job", "batch"):
            cancel = threading.Event()
            self._current_id, self._current_cancel = msg.get("id"), cancel
            self.jobs.put((msg, cancel))
        elif kind == "cancel":
            if self._current_cancel is not None and msg.get("id") == self._current_id:
                self._current_cancel.set()
        else:
            _warn("ignored a message of unknown type %r" % (kind,))


def _extend_keeps_done():
    """Whether list.extend keeps the items it got before its iterator raised (CPython does).

    The batch fast path relies on it to know which element failed and keep the results
    before it; where it does not hold, the fast path uses a plain loop instead.
    """

    def fail_second(x):
        if x:
            raise ValueError(x)
        return x

    out = []
    try:
        out.extend(map(fail_second, [0, 1]))
    except ValueError:
        pass
    return out == [0]


_FAST_EXTEND = _extend_keeps_done()


class _Server:
    """Serves jobs and batches from a _Reader with `invoke(input, ctx)`. Main thread only.

    `make_ctx(job_id, task, attempt, cancel, send, msg)` builds what invoke gets as ctx
    (a Context, a legacy Job, or None when the function needs neither); send is None
    for an element of a batch, and msg holds at least the element's "input". `plain`, when set,
    is a function to call as plain(input): the batch fast path, with no ctx at all.
    `invoke_file(entry, ctx)`, when set, is called instead of invoke for a job whose
    argument is its first file (it has files and a null input), with that file's entry
    of the job message.
    """

    def __init__(self, invoke, make_ctx, plain=None, invoke_file=None):
        self._invoke = invoke
        self._make_ctx = make_ctx
        self._plain = plain
        self._invoke_file = invoke_file

    def serve(self, reader):
        """Answers every job until stdin ends (the current one is finished first)."""
        while True:
            item = reader.jobs.get()
            if item is _EOF:
                return
            msg, cancel = item
            if msg.get("type") == "batch":
                self._batch(msg, cancel)
            else:
                self._job(msg, cancel)

    def _job(self, msg, cancel):
        job_id = msg.get("id")
        ctx = self._make_ctx(job_id, msg.get("task"), msg.get("attempt", 1), cancel, _send, msg)
        files = msg.get("files")
        try:
            if self._invoke_file is not None and files and msg.get("input") is None:
                value = self._invoke_file(files[0], ctx)
            else:
                value = self._invoke(msg.get("input"), ctx)
        except Exception as e:  # The job fails; the worker lives on.
            _send({"type": "error", "id": job_id, "error": _error_of(e)})
            return
        if isinstance(value, File):
            reply = _file_reply(job_id, value, msg.get("result_path"))
        elif isinstance(value, _BINARY):
            reply = {"type": "result", "id": job_id, "encoding": "base64", "result": _b64(value)}
        else:
            reply = {"type": "result", "id": job_id, "result": value}
        try:
            data = _encode(reply)
        except Exception as e:  # NaN, a set, an object...: this job fails, not the worker.
            data = _encode({"type": "error", "id": job_id, "error": _invalid_result(value, e)})
        _write(data)

    def _batch(self, msg, cancel):
        batch_id = msg.get("id")
        inputs = msg.get("inputs")
        if not isinstance(inputs, list):
            _warn("batch %r has no list of inputs; answered with no results" % (batch_id,))
            inputs = []
        stop_on_failure = bool(msg.get("stop_on_failure"))
        results = []
        errors = []
        if self._plain is not None:
            self._map_plain(inputs, stop_on_failure, cancel, results, errors)
        else:
            self._map_each(msg, inputs, stop_on_failure, cancel, results, errors)
        reply = {"type": "batch_result", "id": batch_id, "results": results, "errors": errors}
        try:
            data = _encode(reply)
        except Exception:  # bytes, or a result that is not JSON: look at each one.
            data = self._encode_batch_slowly(reply)
        _write(data)

    def _map_plain(self, inputs, stop_on_failure, cancel, results, errors):
        """The fast path: results.extend(map(f, inputs)), resumed after each failure."""
        f = self._plain
        remaining = iter(inputs)
        while True:
            try:
                if _FAST_EXTEND:
                    results.extend(map(f, remaining))
                else:
                    append = results.append
                    for x in remaining:
                        append(f(x))
                return
            except Exception as e:
                index = len(results)
                results.append(None)
                errors.append(dict(index=index, **_error_of(e)))
                if stop_on_failure or cancel.is_set():
                    return

    def _map_each(self, msg, inputs, stop_on_failure, cancel, results, errors):
        """One call at a time with a ctx per element; stops as soon as the batch is canceled."""
        batch_id, task = msg.get("id"), msg.get("task")
        attempts = msg.get("attempts")
        if not isinstance(attempts, list) or len(attempts) != len(inputs):
            attempts = None
        invoke, make_ctx = self._invoke, self._make_ctx
        for index, x in enumerate(inputs):
            if cancel.is_set():
                return
            attempt = attempts[index] if attempts is not None else 1
            ctx = make_ctx(batch_id, task, attempt, cancel, None, {"input": x})
            try:
                results.append(invoke(x, ctx))
            except Exception as e:
                results.append(None)
                errors.append(dict(index=index, **_error_of(e)))
                if stop_on_failure:
                    return

    @staticmethod
    def _encode_batch_slowly(reply):
        """Encodes a batch answer element by element: bytes, files, and results that are
        not JSON.

        A File result is sent as its bytes (a batch has no result_path). Each result
        that cannot be encoded (or read) fails its element with invalid_result. If any
        result is bytes, every string and bytes result is sent base64 (the encoding is
        per message); other values are left for offload to reject, as for one job.
        """
        results, errors = reply["results"], reply["errors"]
        binary = False
        for index, value in enumerate(results):
            if isinstance(value, File):
                try:
                    results[index] = value = _read_file(value.path)
                except OSError as e:
                    results[index] = None
                    errors.append(dict(index=index, **_unreadable_file(value, e)))
                    continue
            if value is None:
                continue
            if isinstance(value, _BINARY):
                binary = True
                continue
            try:
                _ENCODER.encode(value)
            except Exception as e:
                results[index] = None
                errors.append(dict(index=index, **_invalid_result(value, e)))
        if binary:
            reply["encoding"] = "base64"
            for index, value in enumerate(results):
                if isinstance(value, (str,) + _BINARY):
                    results[index] = _b64(value)
        errors.sort(key=operator.itemgetter("index"))
        return _encode(reply)


def _read_file(path):
    with open(path, "rb") as f:
        return f.read()


def _unreadable_file(value, exc):
    return {"type": "invalid_result", "message": "the result File(%r) cannot be read: %s" % (value.path, exc)}


def _file_reply(job_id, value, result_path):
    """The answer for a File result: the file copied to `result_path`, which offload
    then takes as the result; from an offload that names none, its bytes."""
    import shutil  # Here, not at the top: `import offload` (the client) need not pay for it.

    try:
        if result_path is None:
            return {"type": "result", "id": job_id, "encoding": "base64", "result": _b64(_read_file(value.path))}
        try:
            shutil.copyfile(value.path, result_path)
        except shutil.SameFileError:
            pass  # The function wrote its result where offload asked for it.
        return {"type": "result", "id": job_id, "result_file": True}
    except OSError as e:
        return {"type": "error", "id": job_id, "error": _unreadable_file(value, e)}


# ---------------------------------------------------------------------------------
# The legacy API: a worker file that calls run(handler).


def run(handler):
    """Serves jobs with `handler(job)` (a Job) until offload closes stdin, then returns.

    The handler's return value is the result (bytes are sent base64); JobError fails
    the job with its type, any other exception with "handler_error". Batches are
    served too, one handler call per element (job.progress is a no-op there); the
    worker does not announce cancel, so offload stops it by signal instead.
    """
    _take_stdout()
    reader = _Reader(sys.stdin.buffer)
    _send({"type": "ready", "features": ["batch"]})
    reader.start()

    def make_job(job_id, task, attempt, cancel, send, msg):
        job = Job.__new__(Job)
        job.id, job.task, job.input, job.attempt, job._send = job_id, task, msg.get("input"), attempt, send
        return job

    _Server(lambda x, job: handler(job), make_job).serve(reader)


# ---------------------------------------------------------------------------------
# The runner: python3 -m offload.worker TARGET [--call arg|kwargs] [--input path|bytes] [--path DIR]...

_USAGE = "usage: python3 -m offload.worker MODULE:ATTRIBUTE [--call arg|kwargs] [--input path|bytes] [--path DIR]..."


class _UsageError(Exception):
    pass


def _parse_args(argv):
    """Returns (target, call, input, paths); raises _UsageError. `input` is how a file
    argument is passed, "path" (what an offload older than --input meant) or "bytes"."""
    target, call, input, paths = None, "arg", "path", []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--call", "--input", "--path"):
            if not eq:
                if i + 1 >= len(args):
                    raise _UsageError("%s needs a value" % name)
                i += 1
                value = args[i]
            if name == "--call":
                if value not in ("arg", "kwargs"):
                    raise _UsageError("--call is arg or kwargs, not %r" % value)
                call = value
            elif name == "--input":
                if value not in ("path", "bytes"):
                    raise _UsageError("--input is path or bytes, not %r" % value)
                input = value
            else:
                paths.append(value)
        elif arg in ("-h", "--help"):
            raise _UsageError("")
        elif arg.startswith("-") or target is not None:
            raise _UsageError("unexpected argument %r" % arg)
        else:
            target = arg
        i += 1
    if target is None:
        raise _UsageError("TARGET (module:attribute) is required")
    module, colon, attribute = target.partition(":")
    if not colon or not module or not attribute:
        raise _UsageError("TARGET must be module:attribute, such as calc:cpu_bound_func, not %r" % target)
    return target, call, input, paths


def _fatal(kind, message, detail, status):
    """Says why the worker cannot start, then exits with `status`."""
    error = {"type": kind, "message": message}
    if detail:
        error["detail"] = _tail(detail)
    _send({"type": "fatal", "error": error})
    sys.exit(status)


def _load(target):
    """Imports module:attribute.path and returns the callable; exits with a fatal message."""
    module_name, _, attribute = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except BaseException as e:  # SyntaxError, SystemExit at import, anything: not startable.
        if isinstance(e, KeyboardInterrupt):
            raise
        text = _format(e)
        sys.stderr.write(text)
        if isinstance(e, ModuleNotFoundError) and e.name == module_name.split(".")[0]:
            text = "looked in sys.path = %r (the current folder is %s)\n%s" % (sys.path, os.getcwd(), text)
        _fatal("import_error", _describe(e), text, EXIT_START_FAILED)
    owner = module_name
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            _warn(_describe(e))
            _fatal("attribute_error", _describe(e), _callables_in(owner, obj), EXIT_START_FAILED)
        owner = owner + (":" if owner == module_name else ".") + part
    if not callable(obj):
        e = TypeError("%s is not callable: it is a %s" % (target, type(obj).__name__))
        _warn(str(e))
        _fatal("attribute_error", _describe(e), None, EXIT_START_FAILED)
    return obj


def _callables_in(name, obj):
    """A hint for a misspelt attribute: what `obj` (named `name`) does hold that can be called."""
    names = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))
    where = getattr(obj, "__file__", None)
    return "%s%s has these public callables: %s" % (
        name,
        " (%s)" % where if where else "",
        ", ".join(names) if names else "none",
    )


def _signature(func):
    import inspect  # Here, not at the top: `import offload` (the client) need not pay for it.

    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # Some built-ins have none.
        return None


def _takes_ctx(sig):
    """Whether the function has a real parameter named ctx that a keyword can fill."""
    if sig is None:
        return False
    param = sig.parameters.get("ctx")
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _kwargs_invoker(func, sig, takes_ctx, target):
    """invoke(input, ctx) that calls func(**input), telling binding errors from the function's."""

    def invoke(value, ctx):
        if not isinstance(value, dict):
            raise JobError(
                "invalid_input",
                "the input must be a JSON object (its keys are %s's keyword arguments), not %s"
                % (target, _json_kind(value)),
            )
        kwargs = value
        if takes_ctx:
            if "ctx" in value:
                raise JobError("invalid_input", "the input has a key \"ctx\", which %s takes for its Context" % target)
            kwargs = dict(value, ctx=ctx)
        try:
            return func(**kwargs)
        except TypeError:
            if sig is not None:
                try:
                    sig.bind(**kwargs)
                except TypeError as bind_error:
                    raise JobError(
                        "invalid_input", "the input does not match %s%s: %s" % (target, sig, bind_error)
                    ) from None
            raise

    return invoke


def _json_kind(value):
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def main(argv=None):
    """Runs TARGET as a worker until offload closes stdin; returns 0 (exit status).

    `argv` excludes the program's name (sys.argv[1:] when None). Exits with status 3
    after a fatal message when TARGET cannot be imported or is not callable.
    """
    if argv is None:
        argv = sys.argv[1:]
    _take_stdout()
    try:
        target, call, input, paths = _parse_args(argv)
    except _UsageError as e:
        print(_USAGE, file=sys.stderr)
        if not str(e):
            return 0
        _warn(str(e))
        _fatal("usage_error", str(e), None, EXIT_USAGE)

    # --path folders go first, in order; the current folder stays importable, as with
    # `python -c` (a later os.chdir by the user's code does not move the --path ones).
    sys.path[0:0] = [os.path.abspath(p) for p in paths]
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(len(paths), "")

    func = _load(target)
    sig = _signature(func)
    takes_ctx = _takes_ctx(sig)

    def make_context(job_id, task, attempt, cancel, send, msg):
        files = [JobFile(entry) for entry in msg.get("files") or ()]
        return Context(job_id, task, attempt, cancel, send, files, msg.get("result_path"))

    def no_context(job_id, task, attempt, cancel, send, msg):
        return None

    if takes_ctx:
        positional = lambda value, ctx: func(value, ctx=ctx)  # noqa: E731
    else:
        positional = lambda value, ctx: func(value)  # noqa: E731
    plain = None
    if call == "kwargs":
        invoke = _kwargs_invoker(func, sig, takes_ctx, target)
    else:
        invoke = positional
        if not takes_ctx:
            plain = func
    # A file argument is positional whatever `call` says: it has no keys to spread.
    if input == "bytes":
        invoke_file = lambda entry, ctx: positional(_read_file(entry["path"]), ctx)  # noqa: E731
    else:
        invoke_file = lambda entry, ctx: positional(entry["path"], ctx)  # noqa: E731
    server = _Server(invoke, make_context if takes_ctx else no_context, plain, invoke_file)

    reader = _Reader(sys.stdin.buffer)
    _send({"type": "ready", "features": ["batch", "cancel"] if takes_ctx else ["batch"]})
    reader.start()
    server.serve(reader)
    return 0


if __name__ == "__main__":
    # Run the copy imported by name, not this __main__ one: the user's code imports
    # offload.worker (or offload) for JobError, and must get the same classes.
    try:
        _runner = importlib.import_module("offload.worker")
    except ImportError:  # Run as a plain file, outside its package.
        _runner = sys.modules[__name__]
    sys.exit(_runner.main())
