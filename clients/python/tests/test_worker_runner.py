"""offload.worker driven over its pipes, as offload drives it, with no server.

Run from the repository root:

    /usr/bin/python3 -m pytest clients/python/tests/test_worker_runner.py -q

Each test starts the runner (`python3 -m offload.worker TARGET ...`, or a legacy worker
file through the offload_worker shim) as a child process with PYTHONPATH pointing at
clients/python, writes protocol lines to its stdin and reads its answers with a deadline.

`python3 clients/python/tests/test_worker_runner.py --bench` runs the batch
micro-benchmark instead (not a test: it prints figures and asserts nothing).
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # clients/python
REPO = PACKAGE_DIR.parents[1]
TEST_WORKER = REPO / "tests" / "exec" / "testdata" / "test_worker.py"
TIMEOUT = 10.0  # seconds for any one answer; every answer here comes in well under 1 s

# The user's code that the tests serve, written to tmp_path as calc.py.
CALC = '''
import os, sys, time
from offload.worker import Canceled, File, JobError

print("calc: print() at import time")

def square_plus_one(x):
    return x * x + 1

def add(a, b=0):
    return a + b

def add_ctx(a, b=0, *, ctx):
    ctx.progress(0.25)
    return {"sum": a + b, "attempt": ctx.attempt}

def with_ctx(x, ctx):
    return {"x": x, "job_id": ctx.job_id, "task": ctx.task, "attempt": ctx.attempt}

def kw_only_ctx(x, *, ctx=None):
    return x

def positional_only_ctx(x, ctx=None, /):
    return x

def var_kwargs(x, **kwargs):
    return x

def fail_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x * 10

def fail_on_three_ctx(x, ctx):
    if x == 3:
        raise JobError("invalid_input", "three is not allowed", detail="x=3")
    return x * 10

def bad_value(x):
    raise ValueError("bad value %r" % (x,))

def empty_error(x):
    raise KeyError()

def deep(n):  # Two functions in turn: traceback does not fold their frames as repeats.
    if n == 0:
        raise RuntimeError("bottom of a deep stack")
    return deeper(n - 1)

def deeper(n):
    return deep(n)

def job_error(x):
    raise JobError(x["type"], x["message"], **({"detail": x["detail"]} if "detail" in x else {}))

def cancel_yourself(x):
    raise Canceled()

def binary(x):
    return {"bytes": bytes(range(256)), "bytearray": bytearray(b"ab"), "memoryview": memoryview(b"mv"),
            "str": "text \u00e9"}[x]

def mixed(x):
    return bytes([x]) if x % 2 == 0 else "s%d" % x

def not_json(x):
    return {"nan": float("nan"), "inf": float("inf"), "set": {1}, "object": object(),
            "nested": {"a": {1}}}[x]

def progress(x, ctx):
    ctx.progress(0.5)
    ctx.progress(x)
    return "done"

def sleeper(seconds, ctx):
    ctx.progress(0.1)  # Tells the test the function runs.
    slept = ctx.sleep(seconds)
    return {"slept": slept, "canceled": ctx.canceled}

def checker(x, ctx):
    ctx.progress(0.1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ctx.check()
        time.sleep(0.005)
    return "never canceled"

def batch_sleeper(x, ctx):
    if x == 1:
        with open(os.environ["MARKER"] + ".tmp", "w") as f:
            f.write("started")
        os.rename(os.environ["MARKER"] + ".tmp", os.environ["MARKER"])
        ctx.sleep(60)
    return x

def noisy(x):
    print("noisy: print() inside the function")
    sys.stdout.write("noisy: sys.stdout.write\\n")
    os.write(1, b"noisy: os.write to fd 1\\n")
    return x

def slow(seconds):
    time.sleep(seconds)
    return seconds

def types(x):
    return type(x).__name__

def file_argument(x):
    return [type(x).__name__, x.decode() if isinstance(x, bytes) else x]

def file_keywords(path=None, *, n=0):
    return [path, n]

def files_ctx(x, ctx):
    files = [[f.field, f.filename, f.content_type, f.size, f.sha256, f.path, f.read_bytes().decode()]
             for f in ctx.files]
    return {"x": x, "files": files, "result_path": ctx.result_path}

def file_result(path):
    return File(path)

class Shapes:
    @staticmethod
    def area(side):
        return side * side

NOT_CALLABLE = 42
'''


class Worker:
    """A runner child process, its answers read by a thread into a queue."""

    def __init__(self, argv, cwd, env=None):
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(PACKAGE_DIR)
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            argv, cwd=str(cwd), env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._lines = queue.Queue()
        self._stderr = []
        self._stderr_lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._stderr_lock:
                self._stderr.append(line.decode("utf-8", "replace"))

    def send(self, msg):
        line = msg if isinstance(msg, (bytes, str)) else json.dumps(msg)
        if isinstance(line, str):
            line = line.encode()
        self.proc.stdin.write(line.rstrip(b"\n") + b"\n")
        self.proc.stdin.flush()

    def recv_line(self, timeout=TIMEOUT):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no answer within %.0f s; stderr:\n%s" % (timeout, self.stderr())) from None
        if line is None:
            raise AssertionError("the worker closed stdout; stderr:\n%s" % self.stderr())
        return line

    def recv(self, timeout=TIMEOUT):
        line = self.recv_line(timeout)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        return json.loads(line)

    def recv_eof(self, timeout=TIMEOUT):
        """Asserts that stdout ends with nothing more on it."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("stdout still open after %.0f s" % timeout) from None
        assert line is None, "unexpected output %r" % line

    def ready(self):
        msg = self.recv()
        assert msg["type"] == "ready", msg
        return msg

    def call(self, job_id, value, **fields):
        self.send(dict({"type": "job", "id": job_id, "task": "t", "input": value, "attempt": 1}, **fields))
        return self.recv()

    def batch(self, batch_id, inputs, **fields):
        self.send(dict({"type": "batch", "id": batch_id, "task": "t", "inputs": inputs}, **fields))
        return self.recv()

    def stderr(self):
        with self._stderr_lock:
            return "".join(self._stderr)

    def wait_stderr(self, text, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline:
                raise AssertionError("%r not in stderr within %.0f s:\n%s" % (text, timeout, self.stderr()))
            time.sleep(0.01)

    def close(self, timeout=TIMEOUT):
        """Closes stdin and returns the exit status."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def kill(self):
        """Kills the process if it still runs; closes the pipes once the readers are done."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        for t in self._readers:  # They see EOF now that the process is gone.
            t.join(timeout=TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:  # stdin's buffer may not flush into a dead pipe
                pass


@pytest.fixture
def calc_dir(tmp_path):
    (tmp_path / "calc.py").write_text(CALC)
    return tmp_path


@pytest.fixture
def start(calc_dir):
    """start(TARGET, *args, cwd=calc_dir, env=None) → Worker running python3 -m offload.worker."""
    workers = []

    def start(target, *args, cwd=None, env=None, argv=None):
        argv = argv or [sys.executable, "-m", "offload.worker", target, *args]
        w = Worker(argv, cwd or calc_dir, env)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.kill()


# --- start-up ------------------------------------------------------------------------


def test_missing_module_is_fatal_and_exits_3(start):
    w = start("nomodule:f")
    msg = w.recv()
    assert msg["type"] == "fatal"
    assert msg["error"]["type"] == "import_error"
    assert msg["error"]["message"] == "ModuleNotFoundError: No module named 'nomodule'"
    assert "sys.path" in msg["error"]["detail"]
    assert w.proc.wait(timeout=TIMEOUT) == 3
    w.recv_eof()
    assert "No module named 'nomodule'" in w.stderr()


def test_exception_and_syntax_error_at_import_are_fatal(start, calc_dir):
    (calc_dir / "boom.py").write_text("import os\nraise RuntimeError('boom at import')\n")
    (calc_dir / "broken.py").write_text("def f(:\n")
    w = start("boom:f")
    msg = w.recv()
    assert msg["error"]["type"] == "import_error"
    assert msg["error"]["message"] == "RuntimeError: boom at import"
    assert msg["error"]["detail"].endswith("RuntimeError: boom at import")
    assert "boom.py" in msg["error"]["detail"]
    assert w.proc.wait(timeout=TIMEOUT) == 3
    w = start("broken:f")
    msg = w.recv()
    assert msg["error"]["type"] == "import_error"
    assert msg["error"]["message"].startswith("SyntaxError: ")
    assert w.proc.wait(timeout=TIMEOUT) == 3


def test_missing_or_uncallable_attribute_is_fatal(start):
    w = start("calc:nope")
    msg = w.recv()
    assert msg["type"] == "fatal"
    assert msg["error"]["type"] == "attribute_error"
    assert msg["error"]["message"] == "AttributeError: module 'calc' has no attribute 'nope'"
    assert "square_plus_one" in msg["error"]["detail"]  # what the module does have
    assert w.proc.wait(timeout=TIMEOUT) == 3
    w = start("calc:NOT_CALLABLE")
    msg = w.recv()
    assert msg["error"]["type"] == "attribute_error"
    assert "not callable" in msg["error"]["message"]
    assert w.proc.wait(timeout=TIMEOUT) == 3


def test_bad_target_is_a_usage_error(start):
    w = start("calc")
    msg = w.recv()
    assert msg["type"] == "fatal" and msg["error"]["type"] == "usage_error"
    assert w.proc.wait(timeout=TIMEOUT) == 2


@pytest.mark.parametrize(
    "target, features",
    [
        ("calc:square_plus_one", ["batch"]),
        ("calc:with_ctx", ["batch", "cancel"]),
        ("calc:kw_only_ctx", ["batch", "cancel"]),
        ("calc:positional_only_ctx", ["batch"]),  # ctx cannot be passed as a keyword
        ("calc:var_kwargs", ["batch"]),  # **kwargs is not a parameter named ctx
        ("math:sqrt", ["batch"]),
    ],
)
def test_ready_announces_cancel_only_for_a_ctx_parameter(start, target, features):
    w = start(target)
    assert w.ready() == {"type": "ready", "features": features}
    assert w.close() == 0


def test_dotted_attribute_and_path_and_current_folder(start, calc_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    w = start("calc:Shapes.area", "--path", str(calc_dir), cwd=elsewhere)
    w.ready()
    assert w.call("a", 3) == {"type": "result", "id": "a", "result": 9}
    assert w.close() == 0
    # A relative --path is taken from the current folder; the folder itself is importable.
    (calc_dir / "sub").mkdir()
    (calc_dir / "sub" / "inner.py").write_text("from calc import square_plus_one as f\n")
    w = start("inner:f", "--path=sub")
    w.ready()
    assert w.call("b", 2)["result"] == 5
    assert w.close() == 0


def test_main_reads_sys_argv_like_the_server_bootstrap(start):
    # What offload runs: python -c BOOTSTRAP TARGET ...; main() takes sys.argv[1:].
    bootstrap = "import sys; sys.path.insert(0, %r); import offload.worker; offload.worker.main()" % str(PACKAGE_DIR)
    w = start(None, argv=[sys.executable, "-c", bootstrap, "calc:add", "--call", "kwargs"], env={"PYTHONPATH": ""})
    w.ready()
    assert w.call("a", {"a": 2, "b": 3})["result"] == 5
    assert w.close() == 0


def test_worker_py_runs_as_a_file_on_its_own(start, tmp_path):
    # Standard library only, no import of the rest of the package: offload may embed it.
    (tmp_path / "plain.py").write_text("def f(x):\n    return x + 1\n")
    w = start(None, argv=[sys.executable, str(PACKAGE_DIR / "offload" / "worker.py"), "plain:f"], cwd=tmp_path,
              env={"PYTHONPATH": ""})
    w.ready()
    assert w.batch("m", [1, 2])["results"] == [2, 3]
    assert w.close() == 0


# --- calls -----------------------------------------------------------------------------


def test_arg_call_passes_the_input_as_decoded(start):
    w = start("calc:types")
    w.ready()
    assert w.call("a", 2.0)["result"] == "float"
    assert w.call("b", 2)["result"] == "int"
    assert w.call("c", {"k": [1]})["result"] == "dict"
    assert w.call("d", None)["result"] == "NoneType"
    w = start("calc:square_plus_one")
    w.ready()
    assert w.call("e", 7) == {"type": "result", "id": "e", "result": 50}


def test_kwargs_call(start):
    w = start("calc:add", "--call", "kwargs")
    w.ready()
    assert w.call("a", {"a": 1, "b": 2}) == {"type": "result", "id": "a", "result": 3}
    assert w.call("b", {"a": 1})["result"] == 1
    msg = w.call("c", [1, 2])
    assert msg["type"] == "error" and msg["error"]["type"] == "invalid_input"
    assert "must be a JSON object" in msg["error"]["message"] and "array" in msg["error"]["message"]
    msg = w.call("d", {"a": 1, "c": 2})
    assert msg["error"]["type"] == "invalid_input"
    assert "'c'" in msg["error"]["message"]
    msg = w.call("e", {"b": 1})
    assert msg["error"]["type"] == "invalid_input"
    # A TypeError raised inside the function, with arguments that bind, is the function's.
    msg = w.call("f", {"a": 1, "b": "x"})
    assert msg["error"]["type"] == "handler_error"
    assert msg["error"]["message"].startswith("TypeError: unsupported operand")
    assert w.call("g", {"a": 5})["result"] == 5


def test_kwargs_call_with_ctx(start):
    w = start("calc:add_ctx", "--call", "kwargs")
    assert w.ready()["features"] == ["batch", "cancel"]
    w.send({"type": "job", "id": "a", "task": "t", "input": {"a": 1, "b": 2}, "attempt": 2})
    assert w.recv() == {"type": "progress", "id": "a", "progress": 0.25}
    assert w.recv() == {"type": "result", "id": "a", "result": {"sum": 3, "attempt": 2}}
    msg = w.call("b", {"a": 1, "ctx": 2})
    assert msg["error"]["type"] == "invalid_input"


def test_ctx_attributes(start):
    w = start("calc:with_ctx")
    w.ready()
    msg = w.call("job-1", "in", attempt=3)
    assert msg["result"] == {"x": "in", "job_id": "job-1", "task": "t", "attempt": 3}


# --- files ------------------------------------------------------------------------------


def job_files(tmp_path, *contents):
    """The "files" of a job message for files holding ``contents``, written to tmp_path."""
    entries = []
    for i, content in enumerate(contents):
        path = tmp_path / ("upload-%d" % i)
        path.write_bytes(content)
        entries.append({"field": "file%d" % i, "filename": "f%d.txt" % i, "content_type": "text/plain",
                        "size": len(content), "sha256": "%064x" % i, "path": str(path)})
    return entries


def test_input_option_is_path_or_bytes(start):
    for args in (["--input", "path"], ["--input=bytes"]):
        w = start("calc:file_argument", *args)
        w.ready()
        assert w.close() == 0
    w = start("calc:file_argument", "--input", "text")
    msg = w.recv()
    assert msg["type"] == "fatal" and msg["error"]["type"] == "usage_error" and "--input" in msg["error"]["message"]
    assert w.proc.wait(timeout=TIMEOUT) == 2


@pytest.mark.parametrize("args", [[], ["--input", "path"]])
def test_first_file_is_the_argument_as_a_path_when_the_input_is_null(start, tmp_path, args):
    files = job_files(tmp_path, b"first", b"second")
    w = start("calc:file_argument", *args)
    w.ready()
    assert w.call("a", None, files=files)["result"] == ["str", files[0]["path"]]
    assert w.call("b", {"k": 1}, files=files)["result"] == ["dict", {"k": 1}]
    assert w.call("c", None)["result"] == ["NoneType", None]


def test_first_file_is_the_argument_as_bytes_with_input_bytes(start, tmp_path):
    files = job_files(tmp_path, b"first", b"second")
    w = start("calc:file_argument", "--input", "bytes")
    w.ready()
    assert w.call("a", None, files=files)["result"] == ["bytes", "first"]
    assert w.call("b", 3, files=files)["result"] == ["int", 3]


def test_a_file_argument_is_positional_with_call_kwargs(start, tmp_path):
    files = job_files(tmp_path, b"x")
    w = start("calc:file_keywords", "--call", "kwargs")
    w.ready()
    assert w.call("a", None, files=files)["result"] == [files[0]["path"], 0]
    assert w.call("b", {"n": 2}, files=files)["result"] == [None, 2]


def test_ctx_files_and_result_path(start, tmp_path):
    files = job_files(tmp_path, b"one", b"two")
    w = start("calc:files_ctx")
    w.ready()
    msg = w.call("a", {"k": 1}, files=files, result_path=str(tmp_path / "result"))
    assert msg["result"] == {
        "x": {"k": 1}, "result_path": str(tmp_path / "result"),
        "files": [[f["field"], f["filename"], f["content_type"], f["size"], f["sha256"], f["path"], content]
                  for f, content in zip(files, ("one", "two"))]}
    assert w.call("b", 1)["result"] == {"x": 1, "files": [], "result_path": None}
    assert w.batch("m", [1])["results"] == [{"x": 1, "files": [], "result_path": None}]


def test_a_file_result_is_copied_to_result_path(start, tmp_path):
    source = tmp_path / "made.bin"
    source.write_bytes(b"\x00made")
    result_path = tmp_path / "result"
    w = start("calc:file_result")
    w.ready()
    assert w.call("a", str(source), result_path=str(result_path)) == {"type": "result", "id": "a",
                                                                       "result_file": True}
    assert result_path.read_bytes() == b"\x00made"
    # Already there: nothing to copy.
    assert w.call("b", str(result_path), result_path=str(result_path))["result_file"] is True
    assert result_path.read_bytes() == b"\x00made"
    msg = w.call("c", str(tmp_path / "missing"), result_path=str(result_path))
    assert msg["type"] == "error" and msg["error"]["type"] == "invalid_result"
    assert "missing" in msg["error"]["message"]


def test_a_file_result_without_result_path_is_sent_as_bytes(start, tmp_path):
    source = tmp_path / "made.bin"
    source.write_bytes(b"\x00made")
    w = start("calc:file_result")
    w.ready()
    assert w.call("a", str(source)) == {"type": "result", "id": "a", "encoding": "base64", "result": "AG1hZGU="}
    msg = w.batch("m", [str(source), str(tmp_path / "missing")])
    assert msg["encoding"] == "base64" and msg["results"] == ["AG1hZGU=", None]
    assert [(e["index"], e["type"]) for e in msg["errors"]] == [(1, "invalid_result")]


# --- failures --------------------------------------------------------------------------


def test_exception_is_a_handler_error_with_the_traceback_tail(start):
    w = start("calc:bad_value")
    w.ready()
    msg = w.call("a", 1)
    assert msg["type"] == "error" and msg["id"] == "a"
    err = msg["error"]
    assert err["type"] == "handler_error"
    assert err["message"] == "ValueError: bad value 1"
    assert err["detail"].startswith("Traceback (most recent call last):")
    assert err["detail"].endswith("ValueError: bad value 1")
    assert "calc.py" in err["detail"] and "in bad_value" in err["detail"]
    assert "offload/worker.py" not in err["detail"]  # the runner's own frames are left out
    w.wait_stderr("ValueError: bad value 1")
    assert w.call("b", 2)["error"]["message"] == "ValueError: bad value 2"  # the worker lives on
    w = start("calc:empty_error")
    w.ready()
    assert w.call("c", 1)["error"]["message"] == "KeyError"


def test_long_traceback_detail_is_cut_to_its_end(start):
    w = start("calc:deep")
    w.ready()
    err = w.call("a", 200)["error"]
    assert err["message"] == "RuntimeError: bottom of a deep stack"
    assert len(err["detail"]) <= 2100
    assert err["detail"].count("\n") > 20
    assert err["detail"].startswith("...\n")
    assert err["detail"].endswith("RuntimeError: bottom of a deep stack")


def test_job_error_chooses_type_message_and_detail(start):
    w = start("calc:job_error")
    w.ready()
    msg = w.call("a", {"type": "invalid_input", "message": "x must be positive", "detail": "got -1"})
    assert msg == {
        "type": "error",
        "id": "a",
        "error": {"type": "invalid_input", "message": "x must be positive", "detail": "got -1"},
    }
    msg = w.call("b", {"type": "quota", "message": "over quota"})
    assert msg["error"] == {"type": "quota", "message": "over quota"}
    assert "Traceback" not in w.stderr()
    w = start("calc:cancel_yourself")
    w.ready()
    assert w.call("c", 1)["error"] == {"type": "canceled", "message": "the job was canceled"}


def test_results_that_are_not_json_fail_the_job_only(start):
    w = start("calc:not_json")
    w.ready()
    for i, (key, type_name) in enumerate([("nan", "float"), ("inf", "float"), ("set", "set"), ("object", "object")]):
        msg = w.call("j%d" % i, key)
        assert msg["type"] == "error" and msg["error"]["type"] == "invalid_result", msg
        assert "of type %s," % type_name in msg["error"]["message"]
    assert "of type dict, cannot be sent as JSON: Object of type set" in w.call("n", "nested")["error"]["message"]
    assert w.call("y", "nan")["id"] == "y"


def test_bytes_results_are_sent_base64_and_str_as_is(start):
    import base64

    w = start("calc:binary")
    w.ready()
    msg = w.call("a", "bytes")
    assert msg["encoding"] == "base64"
    assert base64.b64decode(msg["result"]) == bytes(range(256))
    assert base64.b64decode(w.call("b", "bytearray")["result"]) == b"ab"
    assert base64.b64decode(w.call("c", "memoryview")["result"]) == b"mv"
    assert w.call("d", "str") == {"type": "result", "id": "d", "result": "text \u00e9"}


# --- progress, cancel, output ----------------------------------------------------------


def test_progress_messages(start):
    w = start("calc:progress")
    w.ready()
    w.send({"type": "job", "id": "a", "task": "t", "input": 0.75})
    assert w.recv() == {"type": "progress", "id": "a", "progress": 0.5}
    assert w.recv() == {"type": "progress", "id": "a", "progress": 0.75}
    assert w.recv() == {"type": "result", "id": "a", "result": "done"}


def test_cancel_wakes_ctx_sleep_and_the_worker_serves_the_next_job(start):
    w = start("calc:sleeper")
    w.ready()
    w.send({"type": "job", "id": "a", "task": "t", "input": 60})
    assert w.recv()["type"] == "progress"  # the function is running
    w.send({"type": "cancel", "id": "a"})
    assert w.recv(timeout=5) == {"type": "result", "id": "a", "result": {"slept": False, "canceled": True}}
    w.send({"type": "cancel", "id": "a"})  # already answered: ignored
    # The next job starts uncanceled; a cancel for another id does not touch it.
    w.send({"type": "job", "id": "b", "task": "t", "input": 0.3})
    assert w.recv()["type"] == "progress"
    w.send({"type": "cancel", "id": "other"})
    assert w.recv() == {"type": "result", "id": "b", "result": {"slept": True, "canceled": False}}
    assert w.close() == 0


def test_cancel_makes_ctx_check_raise_canceled(start):
    w = start("calc:checker")
    w.ready()
    w.send({"type": "job", "id": "a", "task": "t", "input": None})
    assert w.recv()["type"] == "progress"
    w.send({"type": "cancel", "id": "a"})
    msg = w.recv(timeout=5)
    assert msg == {"type": "error", "id": "a", "error": {"type": "canceled", "message": "the job was canceled"}}


def test_print_goes_to_stderr_not_the_protocol(start):
    w = start("calc:noisy")
    w.ready()  # the print() at import time did not come before it
    assert w.call("a", 1) == {"type": "result", "id": "a", "result": 1}
    for text in ("calc: print() at import time", "print() inside", "sys.stdout.write", "os.write to fd 1"):
        w.wait_stderr(text)
    assert w.close() == 0
    w.recv_eof()


def test_lines_that_are_not_json_objects_are_ignored(start):
    w = start("calc:square_plus_one")
    w.ready()
    w.send(b"this is not json")
    w.send(b"[1, 2]")
    w.send(b"")
    w.send({"type": "what"})
    assert w.call("a", 1)["result"] == 2
    w.wait_stderr("not JSON")
    w.wait_stderr("not a JSON object")


def test_eof_finishes_the_current_job_then_exits_0(start):
    w = start("calc:slow")
    w.ready()
    w.send({"type": "job", "id": "a", "task": "t", "input": 0.3})
    w.proc.stdin.close()
    assert w.recv() == {"type": "result", "id": "a", "result": 0.3}
    assert w.proc.wait(timeout=TIMEOUT) == 0
    w.recv_eof()


# --- batches ---------------------------------------------------------------------------


def test_batch_all_ok(start):
    w = start("calc:square_plus_one")
    w.ready()
    inputs = list(range(1000))
    assert w.batch("m", inputs) == {
        "type": "batch_result",
        "id": "m",
        "results": [x * x + 1 for x in inputs],
        "errors": [],
    }
    assert w.batch("empty", [])["results"] == []
    assert w.call("after", 3)["result"] == 10


def test_batch_with_ctx_gets_attempts_per_element_and_no_progress(start):
    w = start("calc:progress")
    w.ready()
    assert w.batch("m", [0.1, 0.2]) == {"type": "batch_result", "id": "m", "results": ["done", "done"], "errors": []}
    w = start("calc:with_ctx")
    w.ready()
    msg = w.batch("m", ["a", "b", "c"], attempts=[1, 2, 3])
    assert [(r["job_id"], r["attempt"]) for r in msg["results"]] == [("m", 1), ("m", 2), ("m", 3)]
    assert [r["attempt"] for r in w.batch("n", ["a", "b"])["results"]] == [1, 1]


@pytest.mark.parametrize("target", ["calc:fail_on_three", "calc:fail_on_three_ctx"])
def test_batch_failure_with_and_without_stop_on_failure(start, target):
    w = start(target)
    w.ready()
    inputs = list(range(8)) + [3, 9]
    msg = w.batch("m", inputs, stop_on_failure=True)
    assert msg["results"] == [0, 10, 20, None]
    assert [e["index"] for e in msg["errors"]] == [3]
    msg = w.batch("n", inputs, stop_on_failure=False)
    assert msg["results"] == [0, 10, 20, None, 40, 50, 60, 70, None, 90]
    assert [e["index"] for e in msg["errors"]] == [3, 8]
    err = msg["errors"][0]
    if target.endswith("_ctx"):
        assert err == {"index": 3, "type": "invalid_input", "message": "three is not allowed", "detail": "x=3"}
    else:
        assert err["type"] == "handler_error"
        assert err["message"] == "ValueError: three is not allowed"
        assert err["detail"].endswith("ValueError: three is not allowed")
    assert w.call("after", 1)["result"] == 10


def test_batch_of_kwargs(start):
    w = start("calc:add", "--call", "kwargs")
    w.ready()
    msg = w.batch("m", [{"a": 1, "b": 2}, [1], {"a": 3}], stop_on_failure=False)
    assert msg["results"] == [3, None, 3]
    assert msg["errors"][0]["index"] == 1 and msg["errors"][0]["type"] == "invalid_input"


def test_batch_with_bytes_sends_every_result_base64(start):
    import base64

    w = start("calc:mixed")
    w.ready()
    msg = w.batch("m", [0, 1, 2, 3])
    assert msg["encoding"] == "base64"
    assert [base64.b64decode(r) for r in msg["results"]] == [b"\x00", b"s1", b"\x02", b"s3"]
    assert msg["errors"] == []
    w = start("calc:binary")
    w.ready()
    msg = w.batch("n", ["str", "bytes"])
    assert base64.b64decode(msg["results"][0]).decode() == "text \u00e9"


def test_batch_result_that_is_not_json_fails_its_element(start):
    w = start("calc:not_json")
    w.ready()
    msg = w.batch("m", ["nan", "set"], stop_on_failure=False)
    assert msg["results"] == [None, None]
    assert [(e["index"], e["type"]) for e in msg["errors"]] == [(0, "invalid_result"), (1, "invalid_result")]


def test_batch_cancel_stops_after_the_running_element(start, tmp_path):
    marker = tmp_path / "started"
    w = start("calc:batch_sleeper", env={"MARKER": str(marker)})
    w.ready()
    w.send({"type": "batch", "id": "m", "task": "t", "inputs": [0, 1, 2, 3, 4], "stop_on_failure": False})
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists():
        assert time.monotonic() < deadline, "element 1 did not start; stderr:\n" + w.stderr()
        time.sleep(0.01)
    w.send({"type": "cancel", "id": "m"})
    msg = w.recv(timeout=5)
    assert msg == {"type": "batch_result", "id": "m", "results": [0, 1], "errors": []}
    assert w.batch("n", [5, 6])["results"] == [5, 6]


# --- the legacy API through the offload_worker shim -------------------------------------

LEGACY = '''
import offload_worker

def handle(job):
    if job.input == "raw":
        offload_worker._protocol.write(b'{"type":"progress","id":"%s","progress":0.5}\\n' % job.id.encode())
        offload_worker._protocol.flush()
        return "after"
    if job.input == "fail":
        raise offload_worker.JobError("invalid_input", "failed as asked")
    job.progress(0.5)
    return {"id": job.id, "task": job.task, "input": job.input, "attempt": job.attempt}

offload_worker.run(handle)
print("legacy: run() returned")
'''


def test_legacy_run_through_the_shim(start, tmp_path):
    (tmp_path / "legacy.py").write_text(LEGACY)
    w = start(None, argv=[sys.executable, "legacy.py"], cwd=tmp_path)
    assert w.ready() == {"type": "ready", "features": ["batch"]}
    w.send({"type": "job", "id": "a", "task": "t", "input": 1, "attempt": 2})
    assert w.recv() == {"type": "progress", "id": "a", "progress": 0.5}
    assert w.recv() == {"type": "result", "id": "a", "result": {"id": "a", "task": "t", "input": 1, "attempt": 2}}
    w.send({"type": "job", "id": "b", "task": "t", "input": "raw"})
    assert w.recv() == {"type": "progress", "id": "b", "progress": 0.5}
    assert w.recv()["result"] == "after"
    # A batch: one handler call per element, progress a no-op, JobError per element.
    msg = w.batch("m", [1, "fail", 3], attempts=[1, 1, 2], stop_on_failure=False)
    assert msg["type"] == "batch_result" and msg["id"] == "m"
    assert msg["results"] == [
        {"id": "m", "task": "t", "input": 1, "attempt": 1},
        None,
        {"id": "m", "task": "t", "input": 3, "attempt": 2},
    ]
    assert msg["errors"] == [{"index": 1, "type": "invalid_input", "message": "failed as asked"}]
    assert w.close() == 0
    w.wait_stderr("legacy: run() returned")


def test_the_exec_tests_worker_file_speaks_the_protocol(start):
    w = start(None, argv=[sys.executable, str(TEST_WORKER)], cwd=REPO)
    w.ready()
    msg = w.call("a", {"op": "echo", "value": 3})
    assert msg["type"] == "result" and msg["result"]["value"] == 3 and msg["result"]["jobs"] == 1
    w.send({"type": "job", "id": "b", "task": "t", "input": {"op": "noise"}})
    assert w.recv_line() == b"not a protocol line\n"
    assert w.recv() == {"no": "type"}
    assert w.recv() == {"type": "result", "id": "b", "result": "ok"}
    w.wait_stderr("a print() goes to stderr")
    assert w.call("c", {"op": "raise"})["error"]["message"] == "ValueError: raised as asked"
    assert w.call("d", {"op": "fail", "type": "x", "message": "y"})["error"] == {"type": "x", "message": "y"}
    assert w.close() == 0


# --- micro-benchmark (python3 clients/python/tests/test_worker_runner.py --bench) ---------

BENCH_MODULE = "def f(x):\n    return x * x + 1\n"


def _bench_f(x):  # The same function, for the process pool (it pickles it by name).
    return x * x + 1


def bench(elements=37500, rounds=15):
    """Prints µs per element of a batch through the runner's pipes, against a plain loop."""
    import tempfile

    xs = list(range(elements))
    expected = [_bench_f(x) for x in xs]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "benchmod.py").write_text(BENCH_MODULE)
        w = Worker([sys.executable, "-m", "offload.worker", "benchmod:f"], tmp)
        try:
            w.ready()
            line = (json.dumps({"type": "batch", "id": "b", "task": "t", "inputs": xs}) + "\n").encode()
            round_trips = []
            for _ in range(rounds):
                begin = time.perf_counter()
                w.proc.stdin.write(line)
                w.proc.stdin.flush()
                answer = w.recv_line()
                round_trips.append(time.perf_counter() - begin)
                assert json.loads(answer)["results"] == expected
        finally:
            w.kill()

    def best(fn):
        times = []
        for _ in range(rounds):
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
        return min(times)

    plain_loop = best(lambda: [_bench_f(x) for x in xs])
    decode = best(lambda: json.loads(line))
    encode = best(lambda: json.dumps({"results": expected}, separators=(",", ":")))
    us = 1e6 / elements
    print("batch of %d ints through the runner (best of %d):" % (elements, rounds))
    print("  round trip over the pipes:       %.3f us/element (median %.3f)"
          % (min(round_trips) * us, sorted(round_trips)[rounds // 2] * us))
    print("  plain loop [f(x) for x in xs]:   %.3f us/element" % (plain_loop * us))
    print("  json.loads of the batch:         %.3f us/element" % (decode * us))
    print("  json.dumps of the results:       %.3f us/element" % (encode * us))


def bench_map_vs_pool(elements=300000, workers=2, rounds=5):
    """A W11-like map without the server: `workers` runners, chunks of len/(4*workers).

    Lines are encoded before the clock starts and decoded after it stops (offload does
    that part in C++), so this is the Python side's share: pipes, runner, function.
    """
    import concurrent.futures
    import tempfile

    xs = list(range(elements))
    chunk = elements // (4 * workers)
    chunks = [xs[i : i + chunk] for i in range(0, elements, chunk)]
    lines = [
        (json.dumps({"type": "batch", "id": str(i), "task": "t", "inputs": c}) + "\n").encode()
        for i, c in enumerate(chunks)
    ]
    runner_times = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "benchmod.py").write_text(BENCH_MODULE)
        ws = [Worker([sys.executable, "-m", "offload.worker", "benchmod:f"], tmp) for _ in range(workers)]
        try:
            for w in ws:
                w.ready()
            for _ in range(rounds):
                answers = [None] * len(lines)
                next_chunk = iter(range(len(lines)))
                lock = threading.Lock()

                def feed(w):
                    while True:
                        with lock:
                            i = next(next_chunk, None)
                        if i is None:
                            return
                        w.proc.stdin.write(lines[i])
                        w.proc.stdin.flush()
                        answers[i] = w.recv_line(timeout=60)

                begin = time.perf_counter()
                threads = [threading.Thread(target=feed, args=(w,)) for w in ws]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=120)
                runner_times.append(time.perf_counter() - begin)
                results = [r for a in answers for r in json.loads(a)["results"]]
                assert results == [_bench_f(x) for x in xs]
        finally:
            for w in ws:
                w.kill()
    pool_times = []
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        list(pool.map(_bench_f, range(workers * 4)))  # started before the clock, as the runners were
        for _ in range(rounds):
            begin = time.perf_counter()
            results = list(pool.map(_bench_f, xs, chunksize=chunk))
            pool_times.append(time.perf_counter() - begin)
            assert results == [_bench_f(x) for x in xs]
    print("map of %d ints over %d processes, chunks of %d (best / median of %d):" % (elements, workers, chunk, rounds))
    print("  offload.worker runners: %.3f s / %.3f s" % (min(runner_times), sorted(runner_times)[rounds // 2]))
    print("  ProcessPoolExecutor:    %.3f s / %.3f s" % (min(pool_times), sorted(pool_times)[rounds // 2]))


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
        bench_map_vs_pool()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
