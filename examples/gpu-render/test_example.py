"""examples/gpu-render against the real server: 20 renders queued through the app run
one at a time in submission order on the one `gpu`, while the app keeps answering;
positions count down, progress shows, and the PNGs are fetched afterwards.

Renders are kept short here: RENDER_STEP_SECONDS = 0.01 in offload's environment (its
worker inherits it), so a scene of the default 10 steps takes 0.1 s. The queue is
made on purpose, not by timing: a long render holds the GPU while the twenty are
submitted, and is canceled once they all wait.
"""

import datetime
import os
import struct
import sys
import time
import zlib

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402  (examples/harness.py, beside this folder)

import offload  # noqa: E402  (clients/python, put on sys.path by harness)

HERE = os.path.dirname(os.path.abspath(__file__))
STEP_SECONDS = 0.01
RENDERS = 20
LAST_STEPS = 50  # The last render takes 0.5 s: long enough to be seen running.


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(offload.Client of the server, httpx.Client of the app)."""
    server = harness.Offload(os.path.join(HERE, "offload.toml"), str(tmp_path_factory.mktemp("offload")),
                             env={"RENDER_STEP_SECONDS": str(STEP_SECONDS)})
    web = None
    try:
        web = harness.Uvicorn(harness.load_app("gpu-render", server.url).app)
        with offload.Client(server.url) as direct, httpx.Client(base_url=web.url, timeout=30) as http:
            harness.until(lambda: render_workers(direct)["ready"] == 1, what="the render worker to be ready")
            yield direct, http
    finally:
        if web is not None:
            web.stop()
        server.stop()


def render_workers(direct):
    return next(t for t in direct.tasks() if t["name"] == "render")["workers"]


def timestamp(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_png(data, width, height):
    """A whole, valid PNG of that size: signature, chunks with their CRCs, IHDR, and
    IDAT pixels that decompress to height rows of 1 + 3 * width bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (width, height, 8, 2, 0, 0, 0)
    assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)


def test_twenty_renders_run_one_at_a_time_in_order(servers):
    direct, http = servers
    # A long render holds the GPU first, so that the twenty all wait behind it, however
    # slowly they are submitted; canceling it (DELETE) lets them run.
    blocker = http.post("/render", json={"name": "blocker", "steps": 1000}).json()["id"]  # 10 s
    harness.until(lambda: http.get("/render/" + blocker).json()["status"] == "running",
                  what="the first render to start")

    # Each POST answers 202 at once, with the job's id, where to ask about it, and its
    # place in the queue: behind the renders submitted before it.
    scenes = [{"name": "scene-%d" % i, "width": 8 + i, "height": 4 + i} for i in range(RENDERS)]
    scenes[-1]["steps"] = LAST_STEPS
    ids = []
    for i, scene in enumerate(scenes):
        answer = http.post("/render", json=scene)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert answer.headers["location"] == "/render/" + body["id"]
        assert (body["status"], body["position"]) == ("queued", i), body
        ids.append(body["id"])
    last = ids[-1]

    # The app answers at once while the twenty wait.
    started = time.monotonic()
    answer = http.get("/render/" + last)
    assert time.monotonic() - started < 1.0
    assert answer.json()["position"] == RENDERS - 1, answer.text
    assert http.get("/render/%s.png" % last).status_code == 409  # Not rendered yet.
    assert http.delete("/render/" + blocker).json()["status"] == "canceled"

    # Until the last is done: its position only goes down, its progress only up, and
    # never are two renders running at once (GET /v1/jobs, straight from offload).
    positions, progress = [RENDERS - 1], []
    deadline = time.monotonic() + 30
    while True:
        running = list(direct.list(status="running", task="render"))
        assert len(running) <= 1, running
        view = http.get("/render/" + last).json()
        if view["status"] == "queued":
            positions.append(view["position"])
        elif view["status"] == "running" and view["progress"] is not None:
            progress.append(view["progress"])
        elif view["status"] != "running":
            break
        assert time.monotonic() < deadline, "the renders took longer than 30 s"
        time.sleep(0.02)
    assert view["status"] == "succeeded", view
    assert view["image"] == "/render/%s.png" % last and view["progress"] == 1
    assert positions == sorted(positions, reverse=True) and positions[-1] < RENDERS - 1, positions
    assert progress == sorted(progress) and any(0 < p < 1 for p in progress), progress

    # One at a time, in submission order: each started once the one before finished.
    jobs = [direct.get(job_id) for job_id in ids]
    assert [j.status for j in jobs] == ["succeeded"] * RENDERS
    for before, after in zip(jobs, jobs[1:]):
        assert timestamp(after.started_at) >= timestamp(before.finished_at), (before, after)

    # The images, fetched later, are the PNGs of their scenes.
    for job_id, scene in zip(ids, scenes):
        answer = http.get("/render/%s.png" % job_id)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        check_png(answer.content, scene["width"], scene["height"])


def test_an_unknown_render_is_404(servers):
    _, http = servers
    assert http.get("/render/nosuchrender").status_code == 404
    assert http.get("/render/nosuchrender.png").status_code == 404
    assert http.delete("/render/nosuchrender").status_code == 404


def test_a_canceled_render_has_no_image(servers):
    _, http = servers
    job_id = http.post("/render", json={"name": "long", "steps": 1000}).json()["id"]  # 10 s
    answer = http.get("/render/%s.png" % job_id)
    assert answer.status_code == 409 and answer.headers["retry-after"] == "1"
    assert http.delete("/render/" + job_id).json()["status"] == "canceled"
    answer = http.get("/render/%s.png" % job_id)
    assert answer.status_code == 409 and "canceled" in answer.json()["detail"], answer.text


def test_a_scene_out_of_range_is_refused_before_it_is_queued(servers):
    _, http = servers
    assert http.post("/render", json={"name": "huge", "width": 100000}).status_code == 422
