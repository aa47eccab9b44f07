"""Every call of offload.Client and offload.AsyncClient against the real server, and
every exception the server's problems become. Each test runs once per client (the
``client``/``connect`` fixtures of conftest.py)."""

import sys
import types

import pytest

import offload
from offload import _core
from support import until

PNG = b"\x89PNG\r\n\x1a\n"
TINY_PICTURE = {"width": 8, "height": 8, "max_iter": 10}


@pytest.fixture
def cleanup(client):
    """cleanup(job) cancels the job when the test ends, so that no long job of one
    test holds the shared server's cores in the next."""
    jobs = []
    yield jobs.append
    for job in jobs:
        try:
            client.cancel(job.id)
        except offload.Conflict:
            pass


# ---- the calls ---------------------------------------------------------------------

def test_health_tasks_resources(client):
    assert client.health() == {"status": "ok"}
    tasks = {t["name"]: t for t in client.tasks()}
    assert {"noop", "sleep", "cpu", "mandelbrot", "fail", "once"} <= set(tasks)
    assert tasks["mandelbrot"]["content_type"] == "image/png"
    resources = {r["name"]: r for r in client.resources()}
    assert resources["cpu"]["capacity"] >= 1


def test_submit_get_wait_result(client):
    job = client.submit("cpu", {"ms": 5}, priority=3)
    assert isinstance(job, offload.Job)
    assert job.task == "cpu" and job.priority == 3
    assert job.status in ("queued", "running", "succeeded")
    done = client.wait(job.id, timeout=30)
    assert done.id == job.id and done.status == "succeeded" and done.finished and done.succeeded
    assert done.result["ms"] == 5 and done.progress == 1
    assert done.raw["result_url"] == "/v1/jobs/%s/result" % job.id
    assert client.get(job.id) == done
    assert client.result(job.id) == done.result


def test_submit_with_prefer_wait_returns_the_finished_job(client):
    job = client.submit("noop", [1, 2], wait=10)
    assert job.status == "succeeded" and job.result is None


def test_submit_with_job_timeout_fails_it(client):
    job = client.submit("sleep", {"ms": 10000}, timeout=0.05)
    done = client.wait(job.id, timeout=30)
    assert done.status == "failed" and done.error["type"] == "timeout"


def test_idempotency_key_returns_the_first_job(client):
    first = client.submit("noop", {"n": 1}, idempotency_key="key-%s" % id(client))
    again = client.submit("noop", {"n": 1}, idempotency_key="key-%s" % id(client))
    assert again.id == first.id
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("noop", {"n": 2}, idempotency_key="key-%s" % id(client))
    assert e.value.status == 422


def test_wait_reports_progress(client):
    seen = []
    done = client.wait(client.submit("cpu", {"ms": 1200}).id, timeout=60, on_progress=seen.append)
    assert done.status == "succeeded"
    assert seen and seen[-1] == 1
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_wait_timeout(client, cleanup):
    job = client.submit("sleep", {"ms": 30000})
    cleanup(job)
    with pytest.raises(offload.Timeout) as e:
        client.wait(job.id, timeout=0.3)
    assert e.value.job.id == job.id and e.value.job.status in ("queued", "running")
    assert e.value.status is None
    assert isinstance(e.value, TimeoutError)


def test_cancel_and_its_errors(client):
    job = client.submit("sleep", {"ms": 30000})
    canceled = client.cancel(job.id)
    assert canceled.id == job.id and canceled.status == "canceled"
    assert canceled.error["type"] == "canceled"
    with pytest.raises(offload.JobCanceled) as e:
        client.result(job.id)
    assert e.value.status == 409 and e.value.error["type"] == "canceled"
    assert e.value.job.status == "canceled"
    assert isinstance(e.value, offload.JobFailed)
    until(lambda: client.get(job.id).status == "canceled")
    done = client.submit("noop", None, wait=10)
    with pytest.raises(offload.Conflict) as e:
        client.cancel(done.id)
    assert e.value.status == 409 and e.value.name == "conflict"


def test_retry_runs_a_failed_job_again_once(client):
    failed = client.submit("fail", None, wait=10)
    assert failed.status == "failed"
    again = client.retry(failed.id)
    assert again.id != failed.id and again.retry_of == failed.id
    assert client.retry(failed.id).id == again.id, "a retry is keyed by the job it retries"
    assert client.wait(again.id, timeout=10).status == "failed"
    with pytest.raises(offload.Conflict) as e:
        client.retry(client.submit("noop", None, wait=10).id)
    assert e.value.status == 409 and e.value.name == "not-retryable"
    with pytest.raises(offload.NotFound):
        client.retry("nosuchjob")


def test_cancel_matching_cancels_a_tasks_queued_and_running_jobs(client):
    jobs = [client.submit("sleep", {"ms": 30000}) for _ in range(3)]
    # Another task's job, maybe queued behind the sleeps for the same cores: left alone.
    other = client.submit("once", None)
    assert client.cancel_matching(task="sleep") >= 3
    for job in jobs:
        until(lambda: client.get(job.id).status == "canceled")
    assert client.wait(other.id, timeout=10).status == "succeeded"
    assert client.cancel_matching(task="sleep", status="queued") == 0
    with pytest.raises(ValueError):
        client.cancel_matching()
    with pytest.raises(offload.InvalidInput):
        client.cancel_matching(task="nosuchtask")


def test_result_while_running_is_not_finished(client, cleanup):
    job = client.submit("sleep", {"ms": 30000})
    cleanup(job)
    with pytest.raises(offload.NotFinished) as e:
        client.result(job.id)
    assert e.value.status == 409 and e.value.retry_after == 1.0
    assert isinstance(e.value, offload.Conflict)


def test_binary_result(client):
    job = client.submit("mandelbrot", TINY_PICTURE)
    done = client.wait(job.id, timeout=30)
    assert done.result is None and done.result_type == "image/png"
    png = client.result(job.id)
    assert isinstance(png, bytes) and png.startswith(PNG)


def test_failed_job_result(client):
    job = client.wait(client.submit("fail").id, timeout=30)
    assert job.status == "failed" and job.error["type"] == "command_failed"
    with pytest.raises(offload.JobFailed) as e:
        client.result(job.id)
    assert e.value.status == 500 and e.value.name == "job-failed"
    assert e.value.error == job.error and "boom" in e.value.error["message"]
    assert e.value.job.id == job.id


def test_timed_out_job_result(client):
    job = client.wait(client.submit("sleep", {"ms": 10000}, timeout=0.05).id, timeout=30)
    with pytest.raises(offload.JobFailed) as e:
        client.result(job.id)
    assert e.value.status == 504 and e.value.name == "job-timeout" and e.value.error["type"] == "timeout"


def test_run(client):
    assert client.run("cpu", {"ms": 2})["ms"] == 2
    assert client.run("noop") is None
    assert client.run("mandelbrot", TINY_PICTURE).startswith(PNG)
    with pytest.raises(offload.JobFailed) as e:
        client.run("fail")
    assert e.value.status == 500 and e.value.error["type"] == "command_failed" and e.value.job is None
    with pytest.raises(offload.InvalidInput) as e:
        client.run("cpu", {"ms": -1})
    assert e.value.field == "input.ms"


def test_run_timeout(connect, start_server):
    client = connect(start_server('run_timeout = "200ms"\n').url)
    with pytest.raises(offload.Timeout) as e:
        client.run("sleep", {"ms": 30000})
    assert e.value.status == 504 and e.value.name == "run-timeout"


CALC = """
def score(x):
    if x < 0:
        raise ValueError("negative: %r" % x)
    return x * x + 1
"""


def test_python_task(connect, start_server):
    server = start_server(tables='[tasks.score]\npython = "calc:score"\ninterpreter = "%s"\n' % sys.executable,
                          files={"calc.py": CALC})
    client = connect(server.url)
    assert client.run("score", 3) == 10
    assert client.map("score", list(range(100))) == [x * x + 1 for x in range(100)]
    with pytest.raises(offload.JobFailed) as e:
        client.run("score", -1)
    assert "ValueError" in str(e.value.error) and "negative: -1" in e.value.error["message"]
    assert "raise ValueError" in e.value.error["detail"]  # The traceback's last lines.
    job = client.wait(client.submit("score", -2).id, timeout=30)
    with pytest.raises(offload.JobFailed) as e:
        client.result(job.id)
    assert e.value.error == job.error and "detail" in job.error and e.value.job.id == job.id
    with pytest.raises(offload.JobFailed) as e:
        client.map("score", [1, -1, 2])
    assert e.value.job.map["failed_index"] == 1


def test_map_in_input_order(client):
    inputs = [{"ms": i % 4} for i in range(40)]
    results = client.map("cpu", inputs)
    assert [r["ms"] for r in results] == [i["ms"] for i in inputs]
    assert client.map("noop", [1, 2, 3], chunk=2) == [None, None, None]
    assert client.map("noop", []) == []
    assert client.map("noop", (x for x in range(3))) == [None, None, None]


def test_map_progress(connect, start_server):
    # One element at a time, 100 ms each: the map is unfinished when the first
    # 0.5 s window ends, whatever the machine.
    client = connect(start_server(tables="[resources]\ncpu = 1\n").url)
    seen = []
    client.map("sleep", [{"ms": 100}] * 8, chunk=1, on_progress=seen.append)
    assert len(seen) >= 2 and seen[-1] == 1
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_map_of_binary_results(client):
    pictures = client.map("mandelbrot", [TINY_PICTURE, TINY_PICTURE])
    assert [p["content_type"] for p in pictures] == ["image/png", "image/png"]


def test_map_fail_fast(client):
    with pytest.raises(offload.JobFailed) as e:
        client.map("sleep", [{"ms": 0}, {"ms": 30000}], chunk=1, timeout=0.05)
    assert e.value.error["type"] == "timeout"
    assert e.value.job.status == "failed" and e.value.job.map["failed_index"] == 1


def test_map_collect(client):
    results = client.map("sleep", [{"ms": 0}, {"ms": 30000}], chunk=1, on_error="collect", timeout=0.05)
    assert results[0] == {"ok": None}
    assert results[1]["error"]["type"] == "timeout"
    with pytest.raises(ValueError):
        client.map("noop", [1], on_error="ignore")


def test_map_refuses_a_bad_element(client):
    with pytest.raises(offload.InvalidInput) as e:
        client.map("cpu", [{"ms": 1}, {"ms": "x"}])
    assert e.value.field == "map[1].ms"


def test_map_past_its_wait_timeout_is_canceled(client):
    with pytest.raises(offload.Timeout) as e:
        client.map("sleep", [{"ms": 30000}], wait_timeout=0.3)
    assert e.value.job.map is not None
    assert client.get(e.value.job.id).status == "canceled"


def test_list_iterates_pages(client):
    ids = [client.submit("once", i).id for i in range(5)]
    client.wait(ids[-1], timeout=30)
    pages = client.list(task="once", page_size=2)
    assert isinstance(pages, types.GeneratorType)
    listed = [j.id for j in pages]
    assert listed[:5] == ids[::-1]  # Newest first.
    assert all(isinstance(j, offload.Job) for j in client.list(task="once", limit=3))
    assert [j.id for j in client.list(task="once", limit=3, page_size=2)] == ids[::-1][:3]
    assert list(client.list(task="once", limit=0)) == []
    for job in client.list(task="once", status="succeeded"):
        assert job.status == "succeeded"
    results = [j.raw.get("result", "absent") for j in client.list(task="cpu", limit=2)]
    assert results == ["absent"] * len(results)
    client.submit("cpu", {"ms": 1}, wait=10)
    with_results = list(client.list(task="cpu", limit=1, include_result=True))
    assert with_results[0].result["ms"] >= 0


def test_client_calls_are_the_same_for_both(connect, server):
    c = connect(server.url)
    names = ["submit", "get", "wait", "result", "cancel", "run", "map", "list", "tasks", "resources", "health"]
    for name in names:
        assert callable(getattr(c, name)), name


# ---- the exceptions ----------------------------------------------------------------

def test_not_found(client):
    for call in (client.get, client.result, client.cancel, client.wait):
        with pytest.raises(offload.NotFound) as e:
            call("nosuchjob123456")
        assert e.value.status == 404 and e.value.name == "not-found" and e.value.detail


def test_invalid_input(client):
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("no-such-task", {})
    assert e.value.field == "task" and "no task named" in e.value.detail
    assert e.value.type == "urn:offload:problem:invalid-request" and e.value.body["status"] == 422
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("cpu", {"ms": "soon"})
    assert e.value.field == "input.ms"
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("cpu", {"ms": 10 ** 30})
    assert e.value.field == "input.ms" and "64-bit" in e.value.detail
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("cpu", {"ms": 1}, priority=2 ** 40)
    assert e.value.field == "priority"
    with pytest.raises(offload.InvalidInput) as e:
        list(client.list(status="lost"))
    assert e.value.field == "status"
    assert isinstance(e.value, offload.BadRequest) and isinstance(e.value, offload.OffloadError)
    with pytest.raises(ValueError):
        client.submit("cpu", {"ms": float("nan")})  # JSON cannot say it: refused before sending.


def test_payload_too_large(connect, start_server):
    client = connect(start_server("max_body = 1024\n").url)
    with pytest.raises(offload.PayloadTooLarge) as e:
        client.submit("noop", "x" * 5000)
    assert e.value.status == 413 and "max_body" in e.value.detail
    assert client.submit("noop", "x" * 10).task == "noop"  # On a new connection.


def test_queue_full_and_position(connect, start_server):
    server = start_server(tables="""
[resources]
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = { gpu = 1 }
max_queued = 2
""")
    client = connect(server.url)
    running = client.submit("render", {"ms": 30000})
    until(lambda: client.get(running.id).status == "running")
    first = client.submit("render", {"ms": 1})
    second = client.submit("render", {"ms": 1})
    assert (first.position, second.position) == (0, 1)
    with pytest.raises(offload.QueueFull) as e:
        client.submit("render", {"ms": 1})
    assert e.value.status == 429 and e.value.retry_after == 1.0
    client.cancel(running.id)


def test_response_too_large(connect, start_server):
    client = connect(start_server("max_list_bytes = 1024\n").url)
    for _ in range(6):
        client.submit("cpu", {"ms": 1}, wait=10)
    with pytest.raises(offload.ResponseTooLarge) as e:
        list(client.list(include_result=True))
    assert e.value.status == 422
    assert len(list(client.list(include_result=True, page_size=1))) == 6


def test_unavailable_when_the_store_is_full(connect, start_server, tmp_path):
    store = tmp_path / "full.db"
    client = connect(start_server('store = "sqlite:%s"\nsqlite_max_bytes = 1\n' % store, base=False).url)
    with pytest.raises(offload.Unavailable) as e:
        client.submit("noop", "x" * 300000)  # Past the 16 pages SQLite is given at least.
    assert e.value.status == 503 and e.value.retry_after == 5.0


def test_too_many_connections_is_unavailable(connect, start_server):
    server = start_server("max_connections = 1\n")
    holder = offload.Client(server.url)
    try:
        holder.health()  # Holds the one connection, kept alive.
        client = connect(server.url, retries=0)
        with pytest.raises(offload.Unavailable) as e:
            client.health()
        assert e.value.name == "too-many-connections" and e.value.retry_after == 1.0
    finally:
        holder.close()


def test_network_error_when_nothing_listens(connect):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # Closed again: nothing listens there.
    client = connect("http://127.0.0.1:%d" % port, retries=1)
    with pytest.raises(offload.NetworkError) as e:
        client.health()
    assert e.value.status is None and isinstance(e.value, ConnectionError)
    with pytest.raises(offload.NetworkError):
        client.submit("noop")


def answer_to(client, method, path, headers=None, body=None):
    """The exception the server's answer to a request the client's calls never send
    becomes."""
    request = _core.Request(method, path, headers=headers or {}, body=body, timeout=10)
    return _core.error_of(client._run(_core.exchange(client._settings, request)))


def test_problems_of_requests_the_calls_do_not_send(client):
    e = answer_to(client, "GET", "/v1/jobs/x?wait=soon")
    assert type(e) is offload.BadRequest and e.status == 400 and e.name == "malformed-request"
    e = answer_to(client, "PUT", "/v1/jobs")
    assert type(e) is offload.Refused and e.status == 405 and e.name == "method-not-allowed"
    e = answer_to(client, "POST", "/v1/tasks/noop/run", {"Content-Type": "text/plain"}, b'{"task": "noop"}')
    assert type(e) is offload.UnsupportedMediaType and e.status == 415 and e.name == "unsupported-media-type"
    assert isinstance(e, offload.Refused)
    e = answer_to(client, "GET", "/v1/tasks", {"Origin": "http://evil.example"})
    assert type(e) is offload.Refused and e.status == 403 and e.name == "origin-not-allowed"
    e = answer_to(client, "GET", "/nowhere")
    assert type(e) is offload.NotFound
    assert client.health() == {"status": "ok"}  # The connection still serves.
