"""The clients on the network: keep-alive reuse, a connection the server closed while
idle, a connection lost before its answer (the automatic Idempotency-Key that makes a
retried submit safe), busy answers retried when asked to, and HTTP framing."""

import asyncio

import pytest

import offload
from offload import client as client_module
from support import job_json, problem, until


def posts(proxy, path="/v1/jobs"):
    return [(line, headers) for line, headers in proxy.requests if line.startswith("POST " + path + " ")]


def transport_of(c):
    """The client object behind the connect fixture's wrapper."""
    return getattr(c, "async_client", c)


# ---- keep-alive --------------------------------------------------------------------

def test_sync_client_reuses_one_connection(server):
    with offload.Client(server.url) as c:
        c.health()
        sock = c._conn.sock
        job = c.submit("noop", 1, wait=10)
        c.get(job.id)
        c.result(job.id)
        c.tasks()
        list(c.list(limit=3))
        assert c._conn.sock is sock
        assert c._connects == 1


def test_async_client_reuses_connections(server):
    async def main():
        async with offload.AsyncClient(server.url) as c:
            for _ in range(5):
                await c.health()
            job = await c.submit("noop", 1, wait=10)
            await c.result(job.id)
            assert c._connects == 1
    asyncio.run(main())


def test_async_client_pool_serves_concurrent_waits(start_server):
    server = start_server(tables="[resources]\ncpu = 8\n")

    async def main():
        async with offload.AsyncClient(server.url) as c:
            jobs = [await c.submit("sleep", {"ms": 300}) for _ in range(4)]
            opened = c._connects
            done = await asyncio.gather(*[c.wait(j.id, timeout=30) for j in jobs])
            assert [d.status for d in done] == ["succeeded"] * 4
            # Four long polls at once: four sockets, not one taken in turns.
            assert c._connects - opened == 3
        async with offload.AsyncClient(server.url, max_connections=2) as c:
            jobs = [await c.submit("sleep", {"ms": 300}) for _ in range(3)]
            await asyncio.gather(*[c.wait(j.id, timeout=30) for j in jobs])
            assert c._connects == 2
    asyncio.run(main())


def test_connection_closed_by_the_server_while_idle(start_server):
    server = start_server('idle_timeout = "200ms"\n')
    with offload.Client(server.url) as c:
        c.health()
        until(lambda: client_module._readable(c._conn.sock), what="the server to close the idle connection")
        assert c.health() == {"status": "ok"}
        assert c._connects == 2

    async def main():
        async with offload.AsyncClient(server.url) as c:
            await c.health()
            conn = c._idle[-1]
            deadline = asyncio.get_running_loop().time() + 10
            while conn.usable():
                assert asyncio.get_running_loop().time() < deadline, "the idle connection stayed open"
                await asyncio.sleep(0.01)
            assert await c.health() == {"status": "ok"}
            assert c._connects == 2
    asyncio.run(main())


def test_reused_connection_lost_mid_request_is_retried_at_once(connect, server, proxy_to):
    proxy = proxy_to(server.port)
    c = connect(proxy.url, retries=1)
    c.health()
    proxy.drop(lambda line, headers: line.startswith("GET /healthz"))
    assert c.health() == {"status": "ok"}
    assert [line for line, _ in proxy.requests].count("GET /healthz HTTP/1.1") == 3
    assert transport_of(c)._connects == 2


# ---- a lost answer: the automatic Idempotency-Key -----------------------------------

def test_submit_whose_answer_was_lost_makes_one_job(connect, start_server, proxy_to):
    server = start_server()
    proxy = proxy_to(server.port)
    c = connect(proxy.url)
    proxy.drop(lambda line, headers: line.startswith("POST /v1/jobs "))
    job = c.submit("once", {"n": 1})
    sent = posts(proxy)
    assert len(sent) == 2
    keys = [headers["idempotency-key"] for _, headers in sent]
    assert keys[0] == keys[1] and len(keys[0]) == 32
    with offload.Client(server.url) as direct:
        jobs = list(direct.list(task="once"))
    assert [j.id for j in jobs] == [job.id]


def test_map_whose_answer_was_lost_makes_one_job(connect, start_server, proxy_to):
    server = start_server()
    proxy = proxy_to(server.port)
    c = connect(proxy.url)
    proxy.drop(lambda line, headers: line.startswith("POST /v1/jobs "))
    assert c.map("once", [1, 2, 3]) == [None, None, None]
    assert len(posts(proxy)) == 2
    with offload.Client(server.url) as direct:
        assert len(list(direct.list(task="once"))) == 1


def test_a_given_idempotency_key_is_the_one_retried(connect, start_server, proxy_to):
    server = start_server()
    proxy = proxy_to(server.port)
    c = connect(proxy.url)
    proxy.drop(lambda line, headers: line.startswith("POST /v1/jobs "))
    job = c.submit("once", None, idempotency_key="mine")
    assert [h["idempotency-key"] for _, h in posts(proxy)] == ["mine", "mine"]
    assert c.submit("once", None, idempotency_key="mine").id == job.id


def test_run_whose_answer_was_lost_is_not_repeated(connect, server, proxy_to):
    proxy = proxy_to(server.port)
    c = connect(proxy.url)
    proxy.drop(lambda line, headers: line.startswith("POST /v1/tasks/noop/run "))
    with pytest.raises(offload.NetworkError):
        c.run("noop", 1)
    assert len(posts(proxy, "/v1/tasks/noop/run")) == 1


def test_cancel_whose_answer_was_lost(connect, server, proxy_to):
    proxy = proxy_to(server.port)
    c = connect(proxy.url)
    job = c.submit("sleep", {"ms": 30000})
    proxy.drop(lambda line, headers: line.startswith("DELETE "))
    assert c.cancel(job.id).status == "canceled"
    assert sum(line.startswith("DELETE ") for line, _ in proxy.requests) == 2


def test_retried_submit_waits_for_its_first_to_be_stored(connect, scripted):
    fake = scripted([None, (409, {"Content-Type": "application/problem+json"}, problem(409, "conflict")),
                     (202, {"Content-Type": "application/json"}, job_json("AAAA"))])
    c = connect(fake.url)
    assert c.submit("noop").id == "AAAA"
    keys = {headers["idempotency-key"] for _, headers, _ in fake.requests}
    assert len(fake.requests) == 3 and len(keys) == 1


def test_network_failures_are_retried_a_bounded_number_of_times(connect, scripted):
    fake = scripted([None, None, None])
    c = connect(fake.url, retries=2)
    with pytest.raises(offload.NetworkError):
        c.submit("noop")
    assert len(fake.requests) == 3


# ---- busy answers: opt-in retries ---------------------------------------------------

def queue_full(retry_after="0.2"):
    return (429, {"Content-Type": "application/problem+json", "Retry-After": retry_after},
            problem(429, "queue-full"))


def test_busy_answers_raise_by_default(connect, scripted):
    fake = scripted([queue_full()])
    with pytest.raises(offload.QueueFull) as e:
        connect(fake.url).submit("noop")
    assert e.value.retry_after == 0.2 and len(fake.requests) == 1


def test_busy_answers_retried_within_busy_timeout(connect, scripted):
    unavailable = (503, {"Content-Type": "application/problem+json", "Retry-After": "0.1"},
                   problem(503, "unavailable"))
    fake = scripted([queue_full(), unavailable, (202, {"Content-Type": "application/json"}, job_json("BBBB"))])
    assert connect(fake.url, busy_timeout=5).submit("noop").id == "BBBB"
    assert len(fake.requests) == 3
    assert len({headers["idempotency-key"] for _, headers, _ in fake.requests}) == 1


def test_busy_retries_stop_at_busy_timeout(connect, scripted):
    fake = scripted([queue_full(), queue_full(), queue_full()])
    with pytest.raises(offload.QueueFull):
        connect(fake.url, busy_timeout=0.3).submit("noop")
    assert len(fake.requests) == 2  # At 0.2 s a third try would end past 0.3 s.


# ---- framing -------------------------------------------------------------------------

def test_chunked_and_connection_close_answers(connect, scripted):
    body = b'{"status": "ok"}'
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (5, body[:5]) + b"%x;ext=1\r\n%s\r\n" % (len(body) - 5, body[5:])
               + b"0\r\n\r\n")
    closing = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    fake = scripted([chunked, chunked, closing, chunked])
    c = connect(fake.url)
    assert [c.health() for _ in range(4)] == [{"status": "ok"}] * 4
    assert fake.connections == 2  # A new one after the answer that closed.


def test_non_problem_error_answer(connect, scripted):
    fake = scripted([(502, {"Content-Type": "text/html"}, b"<h1>Bad gateway</h1>")])
    with pytest.raises(offload.ServerError) as e:
        connect(fake.url).health()
    assert e.value.status == 502 and "Bad gateway" in e.value.detail


def test_token_and_headers(connect, scripted):
    fake = scripted([(200, {"Content-Type": "application/json"}, {"tasks": []})])
    connect(fake.url + "/prefix/", token="s3cret").tasks()
    line, headers, _ = fake.requests[0]
    assert line == "GET /prefix/v1/tasks HTTP/1.1"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["host"] == "127.0.0.1:%d" % fake.port
    assert headers["user-agent"].startswith("offload-python/")
