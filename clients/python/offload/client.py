"""offload.Client: the blocking client, on one keep-alive http.client connection.

::

    import offload

    c = offload.Client("http://127.0.0.1:8080")
    job = c.submit("cpu", {"ms": 200})
    job = c.wait(job.id, timeout=30, on_progress=print)
    print(c.result(job.id))
    print(c.map("cpu", [{"ms": 5}] * 100))

What each call sends, retries and raises is in offload._core (written once for this
client and the asynchronous one) and offload.errors; this module moves the bytes.

Thread-safe: calls from several threads take turns on the one connection. For
requests in parallel, give each thread its own Client, or use offload.AsyncClient.
"""

import http.client
import select
import socket
import threading
import time

from . import _core, errors

DEFAULT_URL = "http://127.0.0.1:8080"


class Client:
    """A client of one offload server.

    ``url``: the server, ``http://HOST:PORT`` (a path after it is a prefix, for a
    server behind a proxy; no query, no user:password). ``token``: the server's access
    token (``offload token create``), sent as ``Authorization: Bearer TOKEN`` with
    every request, never in a URL; None (the default) takes $OFFLOAD_TOKEN when it is
    set, "" sends none. A server with ``[auth]`` answers a missing or unknown token
    with Unauthorized (401), a token without the scope a call needs with Forbidden
    (403), and another tenant's job as NotFound. Neither ``repr`` nor an exception
    shows the token.
    ``timeout``: seconds an answer may take beyond what the request asks the server to
    wait (a long poll's window, a ``Prefer: wait``); None waits for ever.
    ``retries``: how many times a request safe to repeat is sent again after a
    network failure (see offload._core). ``busy_timeout``: seconds to keep retrying a
    429/503 answer after its Retry-After (0, the default: raise at once).
    """

    def __init__(self, url=DEFAULT_URL, token=None, timeout=60.0, *, retries=3, busy_timeout=0.0):
        self._settings = _core.Settings(url, token, timeout, retries, busy_timeout)
        self._lock = threading.Lock()
        self._conn = None  # guarded by _lock; an http.client connection, or None.
        self._served = 0  # guarded by _lock; answers read on the current socket.
        self._connects = 0  # guarded by _lock; sockets opened in all.

    @property
    def url(self):
        return self._settings.url

    def __repr__(self):
        return "%s(%r, token=%s)" % (type(self).__name__, self._settings.url,
                                      "<set>" if self._settings.token is not None else None)

    # ---- the API ---------------------------------------------------------------

    def submit(self, task, input=None, *, file=None, bytes=None, content_type=None, filename=None, priority=None,
               idempotency_key=None, timeout=None, wait=None):
        """Submits a job and returns it (a Job: ``id``, ``status``, ``position``, ...).

        ``file``: a file for the job, a path or a binary file object (read from where
        it stands), streamed, never read whole; or ``bytes``: its contents. Its type is
        ``content_type``, else what its name suggests, else application/octet-stream;
        the task must ``accept`` it. ``filename``: the name sent with it (default: the
        path's base name), which only a job with ``input`` too keeps: then the two go
        as a multipart/form-data form; alone, the file is the body itself.
        ``priority``: higher runs first (a 32-bit integer, default 0). ``timeout``:
        this job's own time limit in seconds (the task's caps it). ``wait``: seconds
        the server may hold the answer for the job to finish (``Prefer: wait``); the
        job comes back finished if it did. ``idempotency_key``: the same key within
        the server's idempotency_ttl returns the first job instead of a new one;
        without one a random key is sent, so that a retry after a lost answer is safe
        (a file object that cannot seek, a pipe, is not sent twice: NetworkError).
        """
        return self._run(_core.submit(self._settings, task, input, file=file, data=bytes, content_type=content_type,
                                      filename=filename, priority=priority, idempotency_key=idempotency_key,
                                      timeout=timeout, wait=wait))

    def get(self, job_id):
        """The job as it is now. NotFound if there is none (or retention removed it)."""
        return self._run(_core.get(self._settings, job_id))

    def wait(self, job_id, timeout=None, on_progress=None):
        """Waits until the job is succeeded, failed or canceled, and returns it.

        Long-polls in windows of 30 s (0.5 s when ``on_progress`` is given, which is
        called with the progress, 0..1, each time it changes). Raises Timeout (with
        ``job``, as last seen) after ``timeout`` seconds; None waits for ever. A
        failed job is returned, not raised: its ``error`` says why.
        """
        return self._run(_core.wait(self._settings, job_id, timeout, on_progress))

    def result(self, job_id, *, to=None):
        """The result of a succeeded job: decoded JSON, or bytes for another content
        type (a PNG). NotFinished while it runs; JobFailed (``error``, ``job``) or
        JobCanceled otherwise.

        ``to``: a path; the result's body (of any type) is written there as it
        arrives, never whole in memory, and the path is returned. A connection lost
        midway resumes where it stopped (``Range``); the file appears at ``to`` only
        once whole, its size and (for a result the server keeps in a file) its
        SHA-256 checked (OffloadError if they do not match)."""
        if to is not None:
            return self._run(_core.download(self._settings, job_id, to))
        return self._run(_core.result(self._settings, job_id))

    def cancel(self, job_id):
        """Cancels a queued or running job and returns it (status canceled). Conflict
        if it had already finished; NotFound if unknown."""
        return self._run(_core.cancel(self._settings, job_id))

    def retry(self, job_id):
        """Runs a failed or canceled job again as a new job (its ``retry_of`` names the
        old one) and returns the new job. Retrying the same job again returns that
        same retry (the server keys it by the old job). Conflict (``not-retryable``)
        for a job in another state or one that came with files; NotFound if unknown."""
        return self._run(_core.retry(self._settings, job_id))

    def cancel_matching(self, task=None, status=None, *, everything=False):
        """Cancels every queued or running job of ``task`` (None: any task) and of
        ``status`` ("queued" or "running"; None: both), on every node, and returns how
        many it canceled. At least one of them, or ``everything=True``."""
        return self._run(_core.cancel_matching(self._settings, task, status, everything))

    def run(self, task, input=None, *, file=None, bytes=None, content_type=None, filename=None):
        """Runs one job and returns its result (as ``result`` does): the server waits
        for it up to its run_timeout (Timeout after that; the job is canceled). Raises
        JobFailed, with ``error`` and no ``job``, if it failed. Not retried: a lost
        connection cancels the job on the server. ``file``, ``bytes``,
        ``content_type``, ``filename``: a file for the job, as for ``submit``."""
        return self._run(_core.run(self._settings, task, input, file=file, data=bytes, content_type=content_type,
                                   filename=filename))

    def map(self, task, inputs, chunk=None, on_error="fail_fast", *, priority=None, idempotency_key=None,
            timeout=None, wait_timeout=None, on_progress=None):
        """Runs ``task`` over every element of ``inputs`` as one map job, spread over
        the task's resources, and returns the results in input order.

        ``chunk``: elements per dispatch (None: the server sizes it). ``on_error``:
        "fail_fast" raises JobFailed (``job.map["failed_index"]`` says which element)
        at the first failed element; "collect" returns one ``{"ok": RESULT}`` or
        ``{"error": {...}}`` per element. A bytes result of an element comes as
        ``{"content_type", "base64"}``. ``timeout``: the job's own limit, which bounds
        each element. ``wait_timeout``: seconds to wait for the whole map (None: no
        limit); past it, or on KeyboardInterrupt, the job is canceled and Timeout (or
        the interrupt) raised. ``on_progress`` as for ``wait``.
        """
        return self._run(_core.map_results(self._settings, task, inputs, chunk=chunk, on_error=on_error,
                                           priority=priority, idempotency_key=idempotency_key, timeout=timeout,
                                           wait_timeout=wait_timeout, on_progress=on_progress))

    def list(self, status=None, task=None, limit=None, include_result=False, *, page_size=100):
        """Iterates over the jobs, newest first, fetching pages as it goes.

        ``status``, ``task``: only those. ``limit``: at most this many jobs in all
        (None: every one). ``include_result``: jobs carry their JSON results (a page
        whose results pass the server's max_list_bytes raises ResponseTooLarge: lower
        ``page_size``). ``page_size``: jobs per request, 1..1000.
        """
        pager = _core.Pager(self._settings, status, task, limit, include_result, page_size)
        while not pager.done:
            yield from self._run(pager.next_page())

    def tasks(self):
        """The tasks: a list of dicts with "name", "run", "uses", "content_type",
        "max_queued", "queued", "timeout_ms"."""
        return self._run(_core.tasks(self._settings))

    def resources(self):
        """The resources: a list of dicts with "name", "capacity", "in_use",
        "queued_demand"."""
        return self._run(_core.resources(self._settings))

    def health(self):
        """The server's health: {"status": "ok"}, "degraded" (with "detail") or
        "draining"."""
        return self._run(_core.health(self._settings))

    def close(self):
        """Closes the connection; a later call opens a new one."""
        with self._lock:
            self._drop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the driver and the transport -------------------------------------------

    def _run(self, call):
        """Drives one call of offload._core to its end: performs each action it yields
        and hands the outcome, or the exception, back to it."""
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
                    outcome = self._send(action.request)
                elif isinstance(action, _core.Sleep):
                    time.sleep(action.seconds)
                else:
                    if hasattr(action.awaitable, "close"):
                        action.awaitable.close()  # Never to be awaited: no warning that it was not.
                    raise TypeError("offload.Client cannot await %r: give it a plain function "
                                    "(on_progress), or use offload.AsyncClient" % (action.awaitable,))
            except BaseException as e:  # The call decides: retry, clean up, or raise.
                failure = e

    def _send(self, request):
        with self._lock:
            reused = self._conn is not None and self._conn.sock is not None and self._served > 0
            if reused and _readable(self._conn.sock):
                self._drop()  # Closed by the server while idle: not a failure.
                reused = False
            try:
                conn = self._connection()
                conn.sock.settimeout(request.timeout)
                conn.putrequest(request.method, self._settings.base_path + request.path,
                                skip_accept_encoding=True)
                for name, value in self._settings.headers.items():
                    conn.putheader(name, value)
                for name, value in request.headers.items():
                    conn.putheader(name, value)
                whole = True
                if isinstance(request.body, _core.StreamBody):
                    conn.endheaders()
                    whole = _send_body(conn, request.body)
                else:
                    if request.body is not None:
                        conn.putheader("Content-Length", str(len(request.body)))
                    conn.endheaders(request.body)
                answer = conn.getresponse()
                headers = {}
                for name, value in answer.getheaders():
                    name = name.lower()
                    headers[name] = headers[name] + ", " + value if name in headers else value
                if request.sink is not None and request.sink.begin(answer.status, headers):
                    body = b""
                    while True:
                        piece = answer.read(_core.CHUNK)
                        if not piece:
                            break
                        request.sink.write(piece)
                    if answer.length:  # http.client ends a body cut short without a word.
                        raise http.client.IncompleteRead(b"", answer.length)
                else:
                    body = answer.read()
            except socket.timeout:
                self._drop()
                raise errors.Timeout("no answer from %s within %s s" % (self._settings.url, request.timeout))
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                failure = errors.NetworkError("%s %s: %s: %s" % (request.method, request.path, type(e).__name__, e))
                failure.reused = reused
                raise failure from e
            except BaseException:
                self._drop()  # Interrupted mid-exchange: the connection's state is unknown.
                raise
            if answer.will_close or not whole:
                self._drop()
            else:
                self._served += 1
            return _core.Response(answer.status, headers, body)

    def _connection(self):
        """The open connection, opened if there is none. REQUIRES: _lock held."""
        if self._conn is None:
            s = self._settings
            if s.tls:
                self._conn = http.client.HTTPSConnection(s.host, s.port, timeout=s.timeout)
            else:
                self._conn = http.client.HTTPConnection(s.host, s.port, timeout=s.timeout)
        if self._conn.sock is None:
            self._conn.connect()
            self._served = 0
            self._connects += 1
        return self._conn

    def _drop(self):
        """REQUIRES: _lock held."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._served = 0


def _send_body(conn, body):
    """Sends a StreamBody; False when the server answered before it was whole (it
    refused the request: 413, 415), which ends the sending: the answer is read next,
    and the connection closed after it."""
    for piece in body.pieces():
        if _readable(conn.sock):
            return False
        try:
            conn.send(piece)
        except OSError:
            if _readable(conn.sock):
                return False  # Answered, then closed while the body still came.
            raise
    return True


def _readable(sock):
    """True when a socket that has sent its request, or that sits idle, is readable:
    the server answered, closed it (EOF) or sent something unasked. An idle one then
    cannot carry the next request; a request still being sent was answered early."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
