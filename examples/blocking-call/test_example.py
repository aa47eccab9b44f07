"""examples/blocking-call against the real server: two requests at once to the
offloaded endpoint overlap; the same two to the naive one run one after the other.

The bounds assert overlap, not speed: two calls of 1 s each take at least 2 s in
series, and well under 1.8 s side by side.
"""

import asyncio
import os
import sys
import time

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402  (examples/harness.py, beside this folder)

import offload  # noqa: E402  (clients/python, put on sys.path by harness)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    server = harness.Offload(os.path.join(HERE, "offload.toml"), str(tmp_path_factory.mktemp("offload")))
    web = None
    try:
        with offload.Client(server.url) as direct:
            # Every worker started, so that no request waits for a Python to start.
            harness.until(lambda: next(t for t in direct.tasks() if t["name"] == "ping")["workers"]["ready"] == 4,
                          what="the ping workers to be ready")
        web = harness.Uvicorn(harness.load_app("blocking-call", server.url).app)
        yield web.url
    finally:
        if web is not None:
            web.stop()
        server.stop()


def two_at_once(url):
    """Sends two GETs of ``url`` at the same time: (seconds for both, their answers)."""

    async def both():
        async with httpx.AsyncClient(timeout=30) as http:
            started = time.monotonic()
            answers = await asyncio.gather(http.get(url), http.get(url))
            return time.monotonic() - started, answers

    return asyncio.run(both())


def test_offloaded_calls_overlap(app_url):
    elapsed, answers = two_at_once(app_url + "/ping?seconds=1")
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["ping"] for a in answers] == ["pong", "pong"]
    assert elapsed < 1.8, "two offloaded calls of 1 s took %.2f s: they did not overlap" % elapsed
    # Side by side means in two worker processes: a worker runs one job at a time.
    assert answers[0].json()["pid"] != answers[1].json()["pid"]


def test_naive_calls_run_in_series(app_url):
    elapsed, answers = two_at_once(app_url + "/naive/ping?seconds=1")
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert elapsed >= 2.0, "two blocking calls of 1 s in the event loop took %.2f s" % elapsed
    # Both ran in the app's own process.
    assert answers[0].json()["pid"] == answers[1].json()["pid"] == os.getpid()
