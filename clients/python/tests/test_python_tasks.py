"""The `python = "module:function"` task kind end to end: the real server, its bundled
runner, the user's module beside the config file, and offload.Client over HTTP.

test_worker_runner.py checks the runner alone, message by message; these check what a
user of a python task sees: results, errors and their HTTP statuses, worker state on
GET /v1/tasks and /healthz, cancel and timeout (which keep or replace the worker: told
apart by the worker's pid), recycling, and maps sent to workers in batches.

Each test starts its own server (store "memory", small worker counts, kill_grace 2s)
whose config file's folder holds the user's module(s), calc.py and others; the server
runs from another folder, and the workers' cwd is the config's because no task sets
one. The workers run on this test's own Python (sys.executable), so that they start as
fast here as on CI's Debian.
"""

import http.client
import json
import os

import pytest

import offload
from conftest import BASE_SETTINGS, BASE_TASKS, Server
from support import python_task, until

# The user's code: calc.py, written beside each server's config.
USER_MODULE = '''
import os
import time

import offload


def square_plus_one(x):
    return x * x + 1


def add(a, b=0):
    return {"sum": a + b}


def cwd(x):
    return os.getcwd()


def pid(x):
    return os.getpid()


def fail_on_seven(x):
    if x == 7:
        raise ValueError("seven is not allowed")
    return x * 10


def raise_value_error(x):
    raise ValueError("bad input %r" % (x,))


def refuse(x):
    raise offload.JobError("invalid_input", "x must be positive, got %r" % (x,))


def _write_pid(path):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)  # Whole or absent: a reader never sees half.


def wait_with_ctx(x, ctx):
    """Given {"pid_file": PATH, "seconds": S}: writes its pid, reports 0.5, waits S
    seconds or until canceled. Given anything else: returns its pid at once."""
    if not isinstance(x, dict):
        return os.getpid()
    _write_pid(x["pid_file"])
    ctx.progress(0.5)
    ctx.sleep(x["seconds"])
    return os.getpid()


def wait_without_ctx(x):
    """As wait_with_ctx, but deaf to cancels: only a signal stops it."""
    if not isinstance(x, dict):
        return os.getpid()
    _write_pid(x["pid_file"])
    time.sleep(x["seconds"])
    return os.getpid()


def png(x):
    return PNG_BYTES


def exit_on_three(x):
    if x == 3:
        os._exit(7)
    return x + 100


def chatty(x):
    print("chatty says hello to", x)
    return x
'''

# What calc.png returns: a PNG signature, then every byte value.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
USER_MODULE += "\n\nPNG_BYTES = %r\n" % PNG_BYTES


@pytest.fixture
def serve(tmp_path):
    """serve(tables, files=None) -> (Server, offload.Client): a server with the base
    settings and tasks plus ``tables``, whose config is in a folder that holds calc.py
    (USER_MODULE) and ``files`` ({relative path: text}, sub-folders made as needed)
    before it starts, and which runs from another, empty folder. Stopped, and its
    client closed, when the test ends."""
    started = []
    elsewhere = tmp_path / "server-cwd"
    elsewhere.mkdir()

    def start(tables, files=None):
        folder = tmp_path / ("server%d" % len(started))
        for name, text in dict({"calc.py": USER_MODULE}, **(files or {})).items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        server = Server(str(folder), BASE_SETTINGS + BASE_TASKS + tables, str(elsewhere))
        client = offload.Client(server.url, timeout=30)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop()


def workers_of(client, task):
    return {t["name"]: t for t in client.tasks()}[task]["workers"]


def await_ready(client, task, count):
    """Waits until ``count`` workers of ``task`` said ready; returns its workers object.

    Needed before a job whose timeout is short: a job dispatched to a worker that is
    still starting counts its start-up against that timeout (see
    test_worker_start_up_does_not_count_against_the_job_timeout). The count is given,
    not read from "configured", which says 0 until a worker's first event (see
    test_workers_are_shown_while_they_start)."""
    return until(lambda: (lambda w: w if w["ready"] == count else None)(workers_of(client, task)),
                 what="%d worker(s) of %s to be ready" % (count, task))


def http_get(server, path):
    """(status, content type, body bytes) of a plain GET: what no client decodes."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def wait_finished(client, job_id):
    return client.wait(job_id, timeout=15)


def read_pid_file(path):
    """The pid a waiting function wrote, once it has written it (the job runs then)."""
    def pid():
        try:
            with open(path) as f:
                return int(f.read())
        except FileNotFoundError:
            return None
    return until(pid, timeout=10, what="the function to write its pid to %s" % path)


# ---- calling the function ------------------------------------------------------------

def test_function_named_in_config_runs_with_one_argument_or_kwargs(serve):
    server, client = serve(python_task("square", "calc:square_plus_one")
                           + python_task("add", "calc:add", call="kwargs")
                           + python_task("cwd", "calc:cwd"))
    assert client.run("cwd", None) == server.folder, "the workers run in the config file's folder"
    assert client.run("square", 12) == 145
    assert client.run("add", {"a": 2, "b": 3})["sum"] == 5
    assert client.run("add", {"a": 2})["sum"] == 2

    job = client.submit("add", [2, 3])
    assert wait_finished(client, job.id).status == "failed"
    with pytest.raises(offload.JobFailed) as failed:
        client.result(job.id)
    assert failed.value.status == 422
    assert failed.value.error["type"] == "invalid_input"
    assert http_get(server, "/v1/jobs/%s/result" % job.id)[0] == 422


def test_python_path_relative_to_the_config_folder(serve):
    server, client = serve(python_task("cube", "cubes:cube", python_path=["lib"]),
                           files={"lib/cubes.py": "def cube(x):\n    return x ** 3\n"})
    assert client.run("cube", 4) == 64


def test_exception_fails_the_job_with_its_type_and_traceback_tail(serve):
    server, client = serve(python_task("bad", "calc:raise_value_error"))
    job = client.submit("bad", 5)
    job = wait_finished(client, job.id)
    assert job.status == "failed"
    assert job.error["type"] == "handler_error"
    assert job.error["message"] == "ValueError: bad input 5"
    # The whole traceback, from the user's frame on: the runner's frames are left out.
    traceback_lines = job.error["detail"].splitlines()
    assert len(traceback_lines) == 4, job.error["detail"]
    assert traceback_lines[0] == "Traceback (most recent call last):"
    assert traceback_lines[1].startswith('  File "%s", line ' % os.path.join(server.folder, "calc.py"))
    assert traceback_lines[1].endswith(", in raise_value_error")
    assert traceback_lines[2].strip() == 'raise ValueError("bad input %r" % (x,))'
    assert traceback_lines[3] == "ValueError: bad input 5"

    with pytest.raises(offload.JobFailed) as failed:
        client.result(job.id)
    assert failed.value.status == 500
    assert failed.value.error == job.error
    with pytest.raises(offload.JobFailed) as failed:
        client.run("bad", 6)
    assert failed.value.error["message"] == "ValueError: bad input 6"


def test_job_error_invalid_input_answers_422(serve):
    server, client = serve(python_task("refuse", "calc:refuse"))
    job = wait_finished(client, client.submit("refuse", -1).id)
    assert job.status == "failed"
    assert job.error["type"] == "invalid_input"
    assert job.error["message"] == "x must be positive, got -1"
    with pytest.raises(offload.JobFailed) as failed:
        client.result(job.id)
    assert failed.value.status == 422
    assert failed.value.error["message"] == "x must be positive, got -1"
    status, content_type, body = http_get(server, "/v1/jobs/%s/result" % job.id)
    assert status == 422
    assert json.loads(body)["error"]["type"] == "invalid_input"


# ---- start-up failures ----------------------------------------------------------------

@pytest.mark.parametrize("target, files, fix, error_type, named", [
    ("absent:f", {}, {"absent.py": "def f(x):\n    return ['fixed', x]\n"}, "import_error", "absent"),
    ("calc2:later", {"calc2.py": "def other(x):\n    return x\n"},
     {"calc2.py": "def other(x):\n    return x\n\n\ndef later(x):\n    return ['fixed', x]\n"},
     "attribute_error", "later"),
], ids=["missing-module", "missing-attribute"])
def test_start_failure_is_reported_and_recovers_once_fixed(serve, target, files, fix, error_type, named):
    server, client = serve(python_task("square", "calc:square_plus_one")
                           + python_task("broken", target, workers=1), files=files)
    assert client.run("square", 3) == 10, "the other tasks work"

    job = wait_finished(client, client.submit("broken", 1).id)
    assert job.status == "failed"
    assert job.error["type"] == error_type
    assert named in job.error["message"]

    workers = until(lambda: (lambda w: w if w["trouble"] else None)(workers_of(client, "broken")),
                    what="the broken task's workers.trouble")
    assert workers["last_error"]["type"] == error_type
    assert named in workers["last_error"]["message"]
    assert workers["ready"] == 0
    health = client.health()
    assert health["status"] == "degraded"
    assert "broken" in health["detail"]
    assert workers_of(client, "square")["trouble"] is None
    assert "cannot start: %s" % error_type in server.log(), "said in the log at start-up too"

    for name, text in fix.items():
        with open(os.path.join(server.folder, name), "w") as f:
            f.write(text)
    until(lambda: client.health() == {"status": "ok"}, timeout=20, what="/healthz to say ok again")
    assert client.run("broken", 2) == ["fixed", 2]
    assert workers_of(client, "broken")["trouble"] is None


# A module whose import waits (10 s at most) for a file "go" in the worker's cwd: its
# workers stay starting until the test creates that file.
GATED_IMPORT = """
import os
import time

_deadline = time.monotonic() + 10
while not os.path.exists("go") and time.monotonic() < _deadline:
    time.sleep(0.01)


def double(x):
    return 2 * x
"""


def test_workers_are_shown_while_they_start(serve):
    server, client = serve(python_task("gated", "gated:double", workers=1), files={"gated.py": GATED_IMPORT})
    try:
        assert workers_of(client, "gated")["configured"] == 1
        workers = until(lambda: (lambda w: w if w["started"] else None)(workers_of(client, "gated")),
                        what="workers.started to count the worker being started")
        assert (workers["configured"], workers["starting"], workers["ready"]) == (1, 1, 0)
    finally:
        open(os.path.join(server.folder, "go"), "w").close()
    await_ready(client, "gated", 1)


# ---- ctx, cancel and timeout ------------------------------------------------------------

def test_ctx_progress_then_cancel_keeps_the_worker(serve, tmp_path):
    server, client = serve(python_task("waiter", "calc:wait_with_ctx", workers=1))
    assert set(until(lambda: workers_of(client, "waiter")["features"])) == {"batch", "cancel"}
    pid_file = str(tmp_path / "waiter.pid")
    job = client.submit("waiter", {"pid_file": pid_file, "seconds": 30})
    running = until(lambda: (lambda j: j if j.progress == 0.5 else None)(client.get(job.id)),
                    what="progress 0.5 on the running job")
    assert running.status == "running"
    first_pid = read_pid_file(pid_file)

    client.cancel(job.id)
    assert wait_finished(client, job.id).status == "canceled"
    assert client.run("waiter", None) == first_pid, "a cooperative cancel keeps the worker"


def test_cancel_without_ctx_replaces_the_worker(serve, tmp_path):
    server, client = serve(python_task("deaf", "calc:wait_without_ctx", workers=1))
    assert set(until(lambda: workers_of(client, "deaf")["features"])) == {"batch"}
    pid_file = str(tmp_path / "deaf.pid")
    job = client.submit("deaf", {"pid_file": pid_file, "seconds": 30})
    first_pid = read_pid_file(pid_file)

    client.cancel(job.id)
    assert wait_finished(client, job.id).status == "canceled"
    assert client.run("deaf", None) != first_pid, "a worker that cannot be asked is stopped"


def test_timeout_with_ctx_fails_the_job_and_keeps_the_worker(serve, tmp_path):
    server, client = serve(python_task("waiter", "calc:wait_with_ctx", workers=1, timeout="300ms"))
    await_ready(client, "waiter", 1)
    pid_file = str(tmp_path / "timeout.pid")
    job = wait_finished(client, client.submit("waiter", {"pid_file": pid_file, "seconds": 30}).id)
    assert job.status == "failed"
    assert job.error["type"] == "timeout"
    assert client.run("waiter", None) == read_pid_file(pid_file)


def test_worker_start_up_does_not_count_against_the_job_timeout(serve):
    slow_import = "import time\ntime.sleep(1.0)\n\n\ndef double(x):\n    return 2 * x\n"
    server, client = serve(python_task("slow", "slowimport:double", workers=1, timeout="500ms"),
                           files={"slowimport.py": slow_import})
    job = wait_finished(client, client.submit("slow", 21).id)
    assert (job.status, job.error) == ("succeeded", None)
    assert job.result == 42


# ---- results and recycling --------------------------------------------------------------

def test_bytes_result_is_sent_with_the_task_content_type(serve):
    server, client = serve(python_task("picture", "calc:png", content_type="image/png"))
    assert client.run("picture", None) == PNG_BYTES
    job = wait_finished(client, client.submit("picture", None).id)
    assert client.result(job.id) == PNG_BYTES
    status, content_type, body = http_get(server, "/v1/jobs/%s/result" % job.id)
    assert (status, content_type, body) == (200, "image/png", PNG_BYTES)


def test_workers_are_recycled_after_max_jobs_counting_map_elements(serve):
    server, client = serve(python_task("pid", "calc:pid", workers=1, max_jobs_per_worker=2))
    first, second, third = (client.run("pid", i) for i in range(3))
    assert first == second != third

    fourth = client.run("pid", 3)
    assert fourth == third
    # Two elements in one batch message, to a fresh worker: it has served two jobs.
    pids = client.map("pid", [0, 1], chunk=2)
    assert pids[0] == pids[1] != fourth
    assert client.run("pid", 4) not in pids + [fourth], "each element of a map counts as a job"


# ---- maps in batches ------------------------------------------------------------------

def test_map_of_ten_thousand_elements_in_order(serve):
    server, client = serve(python_task("square", "calc:square_plus_one"))
    assert "batch" in until(lambda: workers_of(client, "square")["features"])
    xs = list(range(-5000, 5000))
    assert client.map("square", xs) == [x * x + 1 for x in xs]


def test_map_failures_fail_fast_or_are_collected_in_order(serve):
    server, client = serve(python_task("seven", "calc:fail_on_seven"))
    xs = list(range(20))
    with pytest.raises(offload.JobFailed) as failed:
        client.map("seven", xs)
    assert failed.value.error["type"] == "handler_error"
    assert failed.value.error["message"] == "element 7 of 20 failed: ValueError: seven is not allowed"
    assert failed.value.job.map["failed_index"] == 7

    outcomes = client.map("seven", xs, on_error="collect")
    assert len(outcomes) == 20
    for x, outcome in zip(xs, outcomes):
        if x == 7:
            assert outcome["error"]["type"] == "handler_error"
            assert outcome["error"]["message"] == "ValueError: seven is not allowed"
        else:
            assert outcome == {"ok": x * 10}


def test_map_element_errors_keep_the_traceback_detail(serve):
    server, client = serve(python_task("seven", "calc:fail_on_seven"))
    outcomes = client.map("seven", [6, 7, 8], on_error="collect")
    assert outcomes[1]["error"].get("detail", "").endswith("\nValueError: seven is not allowed")
    with pytest.raises(offload.JobFailed) as failed:
        client.map("seven", [6, 7, 8])
    assert failed.value.error.get("detail", "").endswith("\nValueError: seven is not allowed")


def test_worker_death_in_a_batch_fails_only_that_element(serve):
    server, client = serve(python_task("fragile", "calc:exit_on_three"))
    xs = list(range(10))
    outcomes = client.map("fragile", xs, chunk=5, on_error="collect")
    assert [o.get("ok") for o in outcomes] == [x + 100 if x != 3 else None for x in xs]
    assert outcomes[3]["error"]["type"] == "worker_died"
    assert "exited with status 7" in outcomes[3]["error"]["message"]
    assert "they run again one at a time" in until(
        lambda: (lambda log: log if "died during a batch" in log else None)(server.log()),
        what="the log line about the rerun")
    assert client.run("fragile", 4) == 104, "a fresh worker replaced the dead one"


# ---- the protocol's stdout ----------------------------------------------------------------

def test_print_does_not_break_the_protocol(serve):
    server, client = serve(python_task("chatty", "calc:chatty"))
    assert client.run("chatty", 41) == 41
    assert client.map("chatty", [1, 2, 3]) == [1, 2, 3]
    until(lambda: "chatty says hello to 41" in server.log(), what="the printed line in the server's log")
