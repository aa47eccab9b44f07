"""examples/fastapi-map against the real server: the app's endpoint maps
cpu_bound_func over a list through offload, on every core, in input order."""

import os
import sys

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402  (examples/harness.py, beside this folder)

import offload  # noqa: E402  (clients/python, put on sys.path by harness)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from calc import cpu_bound_func  # noqa: E402  (to compute the expected answers here)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(offload, app URL): offload serving this folder's offload.toml, the app served by uvicorn."""
    server = harness.Offload(os.path.join(HERE, "offload.toml"), str(tmp_path_factory.mktemp("offload")))
    web = None
    try:
        web = harness.Uvicorn(harness.load_app("fastapi-map", server.url).app)
        yield server, web.url
    finally:
        if web is not None:
            web.stop()
        server.stop()


def test_map_answers_in_input_order(servers):
    server, url = servers
    numbers = [3000, 10, 2500, 0, 1, 2, 1800, 97, 4000, 50, 1200, 3, 2200, 700, 5000, 11]
    answer = httpx.post(url + "/primes", json=numbers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"counts": [cpu_bound_func(n) for n in numbers]}

    # It ran on offload, as one map job whose elements are those numbers.
    jobs = list(offload.Client(server.url).list(task="primes", limit=1))
    assert jobs and jobs[0].status == "succeeded"
    assert jobs[0].map["total"] == len(numbers)


def test_an_empty_list_answers_an_empty_one(servers):
    _, url = servers
    answer = httpx.post(url + "/primes", json=[], timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"counts": []}


def test_one_worker_per_core(servers):
    """The config sets no `workers`: offload keeps one per core, the cpu resource's
    capacity, and all of them get ready (calc imports)."""
    server, _ = servers
    c = offload.Client(server.url)
    cores = next(r["capacity"] for r in c.resources() if r["name"] == "cpu")

    def workers():
        return next(t for t in c.tasks() if t["name"] == "primes")["workers"]

    assert workers()["configured"] == cores
    harness.until(lambda: workers()["ready"] == cores, what="every worker to be ready")
    assert workers()["last_error"] is None
