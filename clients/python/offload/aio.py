"""offload.AsyncClient: the client for asyncio programs (FastAPI, aiohttp apps...).

::

    import offload

    client = offload.AsyncClient("http://127.0.0.1:8080")

    @app.post("/scores")
    async def scores(xs: list[float]):
        return await client.map("score", xs)

The same calls as offload.Client, as coroutines (``list`` is an async iterator), on
asyncio alone: HTTP/1.1 over ``asyncio.open_connection``, with keep-alive and a pool
of at most ``max_connections`` connections, so that coroutines waiting at once (a
long poll each) do not queue behind one socket. Callers past that number wait for a
connection to come free. What each call sends, retries and raises is in
offload._core, shared with the blocking client; this module moves the bytes.

One event loop at a time: a client used from a new loop (a second ``asyncio.run``)
drops the connections of the old one and opens new ones. Close the client before
its loop ends (``async with`` does): a connection left open in a closed loop can
only be closed by the garbage collector, with a ResourceWarning. Not thread-safe.
"""

import asyncio
import collections
import ssl as _ssl

from . import _core, errors

DEFAULT_URL = "http://127.0.0.1:8080"


class AsyncClient:
    """An asyncio client of one offload server.

    ``url``, ``token`` (default $OFFLOAD_TOKEN), ``timeout``, ``retries``,
    ``busy_timeout`` as for offload.Client. ``max_connections``: the pool's size,
    requests in flight at once. Use ``async with AsyncClient(...) as c:``, or ``await c.close()`` when done.
    """

    def __init__(self, url=DEFAULT_URL, token=None, timeout=60.0, *, retries=3, busy_timeout=0.0,
                 max_connections=16):
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._settings = _core.Settings(url, token, timeout, retries, busy_timeout)
        self._max_connections = max_connections
        self._idle = collections.deque()  # Open connections no request uses; the newest last.
        self._slots = None  # A Semaphore of max_connections, made in the loop that uses it.
        self._loop = None
        self._generation = 0  # Bumped by close(): a connection of an older one is not pooled again.
        self._connects = 0  # Connections opened in all.

    @property
    def url(self):
        return self._settings.url

    def __repr__(self):
        return "%s(%r, token=%s)" % (type(self).__name__, self._settings.url,
                                      "<set>" if self._settings.token is not None else None)

    # ---- the API (as offload.Client's; see its docstrings) ----------------------

    async def submit(self, task, input=None, *, file=None, bytes=None, content_type=None, filename=None,
                     priority=None, idempotency_key=None, timeout=None, wait=None):
        """Submits a job and returns it; see offload.Client.submit."""
        return await self._run(_core.submit(self._settings, task, input, file=file, data=bytes,
                                            content_type=content_type, filename=filename, priority=priority,
                                            idempotency_key=idempotency_key, timeout=timeout, wait=wait))

    async def get(self, job_id):
        """The job as it is now; see offload.Client.get."""
        return await self._run(_core.get(self._settings, job_id))

    async def wait(self, job_id, timeout=None, on_progress=None):
        """Waits until the job is final; see offload.Client.wait. ``on_progress`` may be
        a plain function or a coroutine function."""
        return await self._run(_core.wait(self._settings, job_id, timeout, on_progress))

    async def result(self, job_id, *, to=None):
        """The result of a succeeded job, or (``to``) the path it was written to; see
        offload.Client.result."""
        if to is not None:
            return await self._run(_core.download(self._settings, job_id, to))
        return await self._run(_core.result(self._settings, job_id))

    async def cancel(self, job_id):
        """Cancels a job; see offload.Client.cancel."""
        return await self._run(_core.cancel(self._settings, job_id))

    async def retry(self, job_id):
        """Runs a failed or canceled job again; see offload.Client.retry."""
        return await self._run(_core.retry(self._settings, job_id))

    async def cancel_matching(self, task=None, status=None, *, everything=False):
        """Cancels the jobs that match; see offload.Client.cancel_matching."""
        return await self._run(_core.cancel_matching(self._settings, task, status, everything))

    async def run(self, task, input=None, *, file=None, bytes=None, content_type=None, filename=None):
        """Runs one job and returns its result; see offload.Client.run."""
        return await self._run(_core.run(self._settings, task, input, file=file, data=bytes,
                                         content_type=content_type, filename=filename))

    async def map(self, task, inputs, chunk=None, on_error="fail_fast", *, priority=None, idempotency_key=None,
                  timeout=None, wait_timeout=None, on_progress=None):
        """One map job over ``inputs``, its results in input order; see
        offload.Client.map. A coroutine canceled while it waits (a FastAPI request
        whose client left) cancels the job too."""
        return await self._run(_core.map_results(self._settings, task, inputs, chunk=chunk, on_error=on_error,
                                                 priority=priority, idempotency_key=idempotency_key,
                                                 timeout=timeout, wait_timeout=wait_timeout,
                                                 on_progress=on_progress))

    async def list(self, status=None, task=None, limit=None, include_result=False, *, page_size=100):
        """``async for job in c.list(...)``: the jobs, newest first, a page at a time;
        see offload.Client.list."""
        pager = _core.Pager(self._settings, status, task, limit, include_result, page_size)
        while not pager.done:
            for job in await self._run(pager.next_page()):
                yield job

    async def tasks(self):
        return await self._run(_core.tasks(self._settings))

    async def resources(self):
        return await self._run(_core.resources(self._settings))

    async def health(self):
        return await self._run(_core.health(self._settings))

    async def close(self):
        """Closes the idle connections, and those in use once their answer is read. A
        later call opens new ones."""
        self._generation += 1
        idle, self._idle = self._idle, collections.deque()
        for conn in idle:
            await conn.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- the driver and the transport -------------------------------------------

    async def _run(self, call):
        """Drives one call of offload._core to its end (as Client._run does)."""
        outcome = None
        failure = None
        while True:
            try:
                action = call.send(outcome) if failure is None else call.throw(failure)
            except StopIteration as done:
                return done.value
            outcome = failure = None
            try:
                if isinstance(action, _core.Send):
                    outcome = await self._send(action.request)
                elif isinstance(action, _core.Sleep):
                    await asyncio.sleep(action.seconds)
                else:
                    outcome = await action.awaitable
            except BaseException as e:  # The call decides: retry, clean up, or raise.
                failure = e

    def _slots_here(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            for conn in self._idle:
                conn.abort()
            self._idle.clear()
            self._loop = loop
            self._slots = asyncio.Semaphore(self._max_connections)
        return self._slots

    def _idle_connection(self):
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.abort()  # Closed by the server while idle: not a failure.
        return None

    async def _send(self, request):
        async with self._slots_here():
            generation = self._generation
            conn = self._idle_connection()
            reused = conn is not None
            try:
                if conn is None:
                    conn = await asyncio.wait_for(self._open(), self._settings.timeout)
                # A streamed body or answer bounds each step instead (_Connection.exchange).
                response, keep_alive = await asyncio.wait_for(conn.exchange(self._settings, request),
                                                              None if request.streams else request.timeout)
            except asyncio.TimeoutError:
                if conn is not None:
                    conn.abort()
                raise errors.Timeout("no answer from %s within %s s" % (self._settings.url, request.timeout))
            except (OSError, EOFError, asyncio.LimitOverrunError, _BadResponse) as e:
                if conn is not None:
                    conn.abort()
                failure = errors.NetworkError("%s %s: %s: %s" % (request.method, request.path, type(e).__name__, e))
                failure.reused = reused
                raise failure from e
            except BaseException:
                if conn is not None:
                    conn.abort()  # Interrupted mid-exchange: the connection's state is unknown.
                raise
            if keep_alive and generation == self._generation:
                self._idle.append(conn)
            else:
                conn.abort()
            return response

    async def _open(self):
        s = self._settings
        context = _ssl.create_default_context() if s.tls else None
        reader, writer = await asyncio.open_connection(s.host, s.port, ssl=context)
        self._connects += 1
        return _Connection(reader, writer)


class _BadResponse(Exception):
    """The server's bytes are not an HTTP/1.1 response."""


class _Connection:
    """One keep-alive connection; used by one request at a time."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    def usable(self):
        """False once the server closed it, or sent bytes nobody asked for."""
        if self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None:
            return False
        return not getattr(self.reader, "_buffer", b"")

    def abort(self):
        try:
            self.writer.transport.abort()
        except RuntimeError:
            pass  # Its event loop is closed; the socket goes with the transport.

    async def close(self):
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (OSError, RuntimeError):
            pass

    async def exchange(self, settings, request):
        """Writes the request, reads the answer: (Response, whether to keep the connection).

        A request that streams (request.streams) bounds each step by request.timeout:
        each piece of its body written, the answer after the body, each piece of an
        answer going to its sink. The caller bounds the others as a whole.
        """
        lines = ["%s %s HTTP/1.1" % (request.method, settings.base_path + request.path),
                 "Host: " + settings.host_header]
        for name, value in settings.headers.items():
            lines.append("%s: %s" % (name, value))
        for name, value in request.headers.items():
            lines.append("%s: %s" % (name, value))
        body = request.body
        if isinstance(body, bytes):
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        step = request.timeout if request.streams else None
        if not isinstance(body, _core.StreamBody):
            self.writer.write(head + body if body is not None else head)
            await _within(self.writer.drain(), step)
            return await self._read_response(request, step)
        self.writer.write(head)
        # Read while writing: an answer that comes before the body is whole (a refusal:
        # 413, 415) ends the writing, and is the one to return.
        answer = asyncio.ensure_future(self._read_response(request, None))
        try:
            whole = await self._write_body(body, answer, step)
            response, keep_alive = await _within(answer, step)
        finally:
            if not answer.done():
                answer.cancel()
            elif not answer.cancelled():
                answer.exception()  # Retrieved, so that asyncio does not warn that it was not.
        return response, keep_alive and whole

    async def _write_body(self, body, answer, step):
        """Writes a StreamBody's pieces; False when ``answer`` (the task reading the
        answer) finished first, which ends the writing."""
        for piece in body.pieces():
            if answer.done():
                return False
            self.writer.write(piece)
            try:
                await _within(self.writer.drain(), step)
            except OSError:
                return False  # Closed while the body still came: the answer says why, or fails too.
        return True

    async def _read_response(self, request, step):
        method, sink = request.method, request.sink
        while True:
            head = await _within(self.reader.readuntil(b"\r\n\r\n"), step)
            lines = head.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise _BadResponse("status line %r" % lines[0][:80])
            status = int(code)
            headers = {}
            for line in lines[1:]:
                if not line:
                    continue
                name, sep, value = line.partition(":")
                if not sep:
                    raise _BadResponse("header line %r" % line[:80])
                name = name.strip().lower()
                value = value.strip()
                headers[name] = headers[name] + ", " + value if name in headers else value
            if 100 <= status < 200:
                continue  # 100 Continue and other interim answers precede the real one.
            break
        tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
        keep_alive = version == "HTTP/1.1" and "close" not in tokens
        parts = []
        write = parts.append
        if sink is not None and sink.begin(status, headers):
            write = sink.write
        if method == "HEAD" or status in (204, 304):
            pass  # No body, whatever the header says.
        elif headers.get("transfer-encoding", "").lower().rstrip().endswith("chunked"):
            await self._read_chunked(write, step)
        elif "content-length" in headers:
            try:
                left = int(headers["content-length"])
            except ValueError:
                raise _BadResponse("Content-Length %r" % headers["content-length"])
            while left > 0:
                # read, not readexactly: what came before a drop is kept, for a resume.
                piece = await _within(self.reader.read(min(left, _core.CHUNK)), step)
                if not piece:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(piece)
                write(piece)
        else:
            keep_alive = False  # Delimited by the end of the connection.
            while True:
                piece = await _within(self.reader.read(_core.CHUNK), step)
                if not piece:
                    break
                write(piece)
        return _core.Response(status, headers, b"".join(parts)), keep_alive

    async def _read_chunked(self, write, step):
        while True:
            line = await _within(self.reader.readuntil(b"\r\n"), step)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadResponse("chunk size %r" % line[:40])
            if size == 0:
                break
            while size > 0:
                piece = await _within(self.reader.readexactly(min(size, _core.CHUNK)), step)
                size -= len(piece)
                write(piece)
            if await _within(self.reader.readexactly(2), step) != b"\r\n":
                raise _BadResponse("chunk without its CRLF")
        while await _within(self.reader.readuntil(b"\r\n"), step) != b"\r\n":
            pass  # Trailer fields: none that matter here.


async def _within(awaitable, timeout):
    """Awaits with a time limit, or without one (None) at no cost."""
    if timeout is None:
        return await awaitable
    return await asyncio.wait_for(awaitable, timeout)
