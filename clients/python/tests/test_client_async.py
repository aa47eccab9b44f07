"""What only offload.AsyncClient does: coroutine callbacks, many calls at once from
one event loop, a canceled coroutine that cancels its map, several event loops."""

import asyncio
import gc

import pytest

import offload
from support import until


def test_coroutine_on_progress_is_awaited(server):
    seen = []

    async def record(fraction):
        await asyncio.sleep(0)
        seen.append(fraction)

    async def main():
        async with offload.AsyncClient(server.url) as c:
            job = await c.submit("cpu", {"ms": 50})
            await c.wait(job.id, timeout=30, on_progress=record)
    asyncio.run(main())
    assert seen and seen[-1] == 1


def test_calls_at_once_each_get_a_connection(start_server):
    # The way a FastAPI app uses it: requests in flight at once, each awaiting its
    # own answer. Eight /run calls of 300 ms on eight cores overlap.
    server = start_server(tables="[resources]\ncpu = 8\n")

    async def main():
        async with offload.AsyncClient(server.url) as c:
            results = await asyncio.gather(*[c.run("sleep", {"ms": 300}) for _ in range(8)])
            assert results == [None] * 8
            assert c._connects == 8
            jobs = [j async for j in c.list(task="sleep")]
            starts = sorted(j.started_at for j in jobs)
            finishes = sorted(j.finished_at for j in jobs)
            assert starts[-1] < finishes[0]  # All eight ran at the same time.
    asyncio.run(main())


def test_canceled_map_cancels_its_job(start_server):
    server = start_server(tables='[tasks.long]\nrun = "builtin:sleep"\n')

    async def main():
        async with offload.AsyncClient(server.url) as c:
            waiting = asyncio.ensure_future(c.map("long", [{"ms": 30000}]))
            deadline = asyncio.get_running_loop().time() + 10
            jobs = []
            while not jobs:
                assert asyncio.get_running_loop().time() < deadline, "the map's job never appeared"
                jobs = [j async for j in c.list(task="long")]
                await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return jobs[0].id
    job_id = asyncio.run(main())
    with offload.Client(server.url) as c:
        assert until(lambda: c.get(job_id).status == "canceled", what="the map to be canceled")


def test_interrupted_sync_map_cancels_its_job(start_server):
    server = start_server(tables='[resources]\ncpu = 2\n[tasks.long]\nrun = "builtin:sleep"\n')

    def interrupt(fraction):
        raise KeyboardInterrupt

    with offload.Client(server.url) as c:
        with pytest.raises(KeyboardInterrupt):
            c.map("long", [{"ms": 0}, {"ms": 30000}], chunk=1, on_progress=interrupt)
        jobs = list(c.list(task="long"))
        assert [j.status for j in jobs] == ["canceled"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_client_across_event_loops(server):
    c = offload.AsyncClient(server.url)
    assert asyncio.run(c.health()) == {"status": "ok"}
    # A new loop: a new connection. The first loop's, left open when that loop
    # closed, can no longer be closed by its transport ("unclosed transport" at
    # garbage collection, ignored here: close() before a loop ends avoids it).
    assert asyncio.run(c.health()) == {"status": "ok"}
    assert c._connects == 2
    asyncio.run(c.close())
    gc.collect()


def test_sync_client_refuses_a_coroutine_callback(server):
    async def record(fraction):
        pass

    with offload.Client(server.url) as c:
        job = c.submit("cpu", {"ms": 1}, wait=10)
        with pytest.raises(TypeError):
            c.wait(job.id, on_progress=record)
