"""What both clients do, written once and free of I/O.

Each API call (submit, wait, map, ...) is a generator that *yields actions* and gets
their outcomes back: ``Send(request)`` is answered with a :class:`Response` (or has the
transport's exception thrown in), ``Sleep(seconds)`` with None, ``Await(x)`` with what
awaiting ``x`` gives (the asynchronous client only). ``offload.Client`` drives a call
with a blocking socket and ``time.sleep``, ``offload.AsyncClient`` with asyncio streams
and ``asyncio.sleep``; the retries, the long-poll loop, the decoding of answers and
the mapping of problems to exceptions are therefore the same in both, and a
transport only moves bytes.

Retries, in :func:`exchange`:

- A request that is safe to repeat (GET, DELETE, a POST /v1/jobs carrying an
  Idempotency-Key, which every submit and map does) is sent again when the network
  fails before its answer is whole (connection refused, reset, closed), up to
  ``retries`` more times, after 0.1 s, 0.3 s, 0.9 s (a failure on a reused
  keep-alive connection is retried at once the first time: the server had closed it
  while idle). A submit repeated with its key returns the job the first one made, so
  a lost answer never makes two jobs; one that meets 409 (its first try is still
  being stored) is sent again after the next pause. ``POST /v1/tasks/NAME/run`` is
  not repeated: the server cancels its job when the connection is lost.
- With ``busy_timeout > 0`` (opt-in; default 0), an answer 429 (queue-full) or 503
  (unavailable, too-many-connections), after which nothing was stored, is retried
  after its Retry-After while the total stays within ``busy_timeout`` seconds; then
  the error is raised as usual.
"""

import json
import time
from urllib.parse import quote, urlencode, urlsplit

from . import __version__, errors
from .job import Job

# Seconds of one long poll (GET ?wait=N): under the server's default max_wait (1 min),
# so that a window is answered by the server, not cut by a proxy's idle timer.
LONG_POLL_WINDOW = 30.0
# The window while someone wants progress: ?wait answers only when the job finishes,
# so progress is seen at this interval.
PROGRESS_WINDOW = 0.5
# A window the server answered far sooner than asked (a max_wait of 0) is followed
# by this pause, so that waiting never turns into a busy loop.
MIN_POLL_INTERVAL = 0.2
# The DELETE that stops an abandoned map gets this long.
CANCEL_TIMEOUT = 5.0


class Request:
    """One HTTP request. ``timeout`` is how long the answer may take, in seconds (None:
    no limit); ``idempotent`` says whether sending it twice does what sending it once
    does."""

    __slots__ = ("method", "path", "headers", "body", "timeout", "idempotent")

    def __init__(self, method, path, *, headers=None, body=None, timeout=None, idempotent=None):
        self.method = method
        self.path = path
        self.headers = headers or {}
        self.body = body
        self.timeout = timeout
        self.idempotent = method in ("GET", "DELETE") if idempotent is None else idempotent


class Response:
    """One HTTP answer. Header names are lower case; ``attempts`` counts the sends it
    took (more than 1 after a retry)."""

    __slots__ = ("status", "headers", "body", "attempts")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.attempts = 1

    def media_type(self):
        """The Content-Type without parameters, lower case: "application/json"."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class Send:
    __slots__ = ("request",)

    def __init__(self, request):
        self.request = request


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds):
        self.seconds = seconds


class Await:
    __slots__ = ("awaitable",)

    def __init__(self, awaitable):
        self.awaitable = awaitable


class Settings:
    """What a client was made with; constant after construction."""

    def __init__(self, url, token, timeout, retries, busy_timeout):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http://HOST:PORT or https://HOST:PORT, got %r" % (url,))
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.base_path = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.busy_timeout = max(0.0, float(busy_timeout))
        host = "[%s]" % self.host if ":" in self.host else self.host
        self.host_header = host if parts.port is None else "%s:%d" % (host, self.port)
        self.headers = {"User-Agent": "offload-python/" + __version__, "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token

    def answer_within(self, server_wait=0.0):
        """The socket timeout of a request the server may hold ``server_wait`` s."""
        return None if self.timeout is None else self.timeout + server_wait


# ---- encoding and decoding -------------------------------------------------------

def encode_json(value):
    """JSON for a request body. NaN and infinities are refused here (ValueError): JSON
    has no spelling for them, and the server would refuse the body."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_request(method, path, value, **kw):
    headers = kw.pop("headers", {})
    headers["Content-Type"] = "application/json"
    return Request(method, path, headers=headers, body=encode_json(value), **kw)


def seconds_text(seconds):
    """A number of seconds as the server reads it ("0.5", "30")."""
    return ("%.3f" % max(0.0, seconds)).rstrip("0").rstrip(".") or "0"


def job_path(job_id, tail=""):
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("a job id is a non-empty string, got %r" % (job_id,))
    return "/v1/jobs/" + quote(job_id, safe="") + tail


def retry_after_of(response):
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # An HTTP date: the server sends seconds only.


def error_of(response):
    """The exception for an error answer (status >= 400)."""
    problem = None
    if response.media_type() in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(response.body)
        except ValueError:
            problem = None
    if not isinstance(problem, dict):
        text = response.body[:200].decode("utf-8", "replace").strip()
        problem = {"detail": "HTTP %d%s" % (response.status, ": " + text if text else "")}
    return errors.from_problem(response.status, problem, retry_after_of(response))


def json_of(response, ok=(200,)):
    """The decoded JSON body of a successful answer; the error of any other."""
    if response.status not in ok:
        raise error_of(response)
    try:
        return json.loads(response.body)
    except ValueError as e:
        raise errors.OffloadError("the server's answer is not JSON (%s)" % e, status=response.status)


def result_of(response):
    """A result body: decoded when its type is JSON, else the bytes as they came."""
    if response.status != 200:
        raise error_of(response)
    media = response.media_type()
    if media == "application/json" or media.endswith("+json"):
        return json.loads(response.body) if response.body else None
    return response.body


def is_busy(response):
    return response.status in (429, 503) and response.media_type() == "application/problem+json"


def is_key_conflict(response):
    """409 conflict to a keyed submit: its first request is still being stored."""
    if response.status != 409 or response.media_type() != "application/problem+json":
        return False
    try:
        return json.loads(response.body).get("type") == "urn:offload:problem:conflict"
    except (ValueError, AttributeError):
        return False


def backoff(failures):
    """Seconds before the retry that follows the n-th failure: 0.1, 0.3, 0.9, ... 2."""
    return min(2.0, 0.1 * 3 ** (failures - 1))


# ---- the calls -------------------------------------------------------------------

def exchange(settings, request):
    """Sends ``request`` and returns its Response, retrying as the module says."""
    failures = 0
    busy_until = None
    attempts = 0
    while True:
        attempts += 1
        try:
            response = yield Send(request)
        except errors.NetworkError as e:
            failures += 1
            if not request.idempotent or failures > settings.retries:
                raise
            if not (failures == 1 and getattr(e, "reused", False)):
                yield Sleep(backoff(failures))
            continue
        if failures and "Idempotency-Key" in request.headers and is_key_conflict(response) \
                and failures <= settings.retries:
            # A retried submit whose first try is still being stored: it will be
            # there in a moment, and the key then returns it.
            failures += 1
            yield Sleep(backoff(failures))
            continue
        if settings.busy_timeout > 0 and is_busy(response):
            now = time.monotonic()
            if busy_until is None:
                busy_until = now + settings.busy_timeout
            pause = retry_after_of(response) or 1.0
            if now + pause <= busy_until:
                yield Sleep(pause)
                continue
        response.attempts = attempts
        return response


def submit_request(settings, task, input=None, *, priority=None, idempotency_key=None,
                   timeout=None, wait=None, map=None, chunk=None, on_error=None):
    """The POST /v1/jobs of a submit or a map. Every one carries an Idempotency-Key (a
    new random one unless given), so that exchange() may repeat it safely."""
    if not isinstance(task, str) or not task:
        raise ValueError("task must be a non-empty string")
    body = {"task": task}
    if map is not None:
        body["map"] = map
        if chunk is not None:
            body["chunk"] = chunk
        if on_error is not None:
            body["on_error"] = on_error
    else:
        body["input"] = input
    if priority is not None:
        body["priority"] = priority
    if timeout is not None:
        body["timeout"] = timeout
    if idempotency_key is None:
        import uuid
        idempotency_key = uuid.uuid4().hex
    headers = {"Idempotency-Key": idempotency_key}
    server_wait = 0.0
    if wait is not None and wait > 0:
        headers["Prefer"] = "wait=" + seconds_text(wait)
        server_wait = wait
    return json_request("POST", "/v1/jobs", body, headers=headers,
                        timeout=settings.answer_within(server_wait), idempotent=True)


def submit(settings, task, input=None, **kw):
    response = yield from exchange(settings, submit_request(settings, task, input, **kw))
    return Job(json_of(response, ok=(200, 202)))


def get(settings, job_id, wait=0.0):
    path = job_path(job_id)
    if wait > 0:
        path += "?wait=" + seconds_text(wait)
    response = yield from exchange(settings, Request("GET", path, timeout=settings.answer_within(wait)))
    return Job(json_of(response))


def wait(settings, job_id, timeout=None, on_progress=None, seen=None):
    """Long-polls until the job is final; Timeout after ``timeout`` s (None: no limit).
    ``on_progress(fraction)`` is called whenever the job's progress changes from the
    last one seen (``seen``: what the caller already reported)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        window = LONG_POLL_WINDOW if on_progress is None else PROGRESS_WINDOW
        if deadline is not None:
            window = max(0.0, min(window, deadline - time.monotonic()))
        started = time.monotonic()
        job = yield from get(settings, job_id, wait=window)
        if on_progress is not None and job.progress is not None and job.progress != seen:
            seen = job.progress
            yield from report_progress(on_progress, seen)
        if job.finished:
            return job
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise errors.Timeout("job %s is still %s after %s s" % (job.id, job.status, seconds_text(timeout)),
                                 job=job)
        if now - started < min(window, MIN_POLL_INTERVAL):
            pause = MIN_POLL_INTERVAL if deadline is None else min(MIN_POLL_INTERVAL, deadline - now)
            yield Sleep(pause)


def report_progress(on_progress, fraction):
    """Calls on_progress; awaits what it returns when it is a coroutine function's."""
    outcome = on_progress(fraction)
    if hasattr(outcome, "__await__"):
        yield Await(outcome)


def failure_of(job):
    """The JobFailed (or JobCanceled) a final job that did not succeed stands for."""
    error = job.error if isinstance(job.error, dict) else {"type": "unknown", "message": "the job did not succeed"}
    text = "job %s %s: %s: %s" % (job.id, job.status, error.get("type"), error.get("message"))
    cls = errors.JobCanceled if job.status == "canceled" else errors.JobFailed
    return cls(text, error=error, job=job)


def result(settings, job_id):
    response = yield from exchange(settings, Request("GET", job_path(job_id, "/result"),
                                                     timeout=settings.answer_within()))
    if response.status == 200:
        return result_of(response)
    error = error_of(response)
    if isinstance(error, errors.JobFailed):
        # The problem states "TYPE: MESSAGE"; the job has the whole error (and itself).
        try:
            job = yield from get(settings, job_id)
        except errors.OffloadError:
            job = None
        if job is not None and job.finished and not job.succeeded:
            error.job = job
            if isinstance(job.error, dict):
                error.error = job.error
    raise error


def cancel(settings, job_id):
    response = yield from exchange(settings, Request("DELETE", job_path(job_id), timeout=settings.answer_within()))
    if response.status == 409 and response.attempts > 1:
        # A repeated DELETE whose first one was done: the job is canceled, by us.
        job = yield from get(settings, job_id)
        if job.status == "canceled":
            return job
    return Job(json_of(response))


def run(settings, task, input=None):
    """POST /v1/tasks/NAME/run: the server waits up to its run_timeout, so the socket
    has no timeout of its own."""
    if not isinstance(task, str) or not task:
        raise ValueError("task must be a non-empty string")
    request = json_request("POST", "/v1/tasks/" + quote(task, safe="") + "/run", input,
                           timeout=None, idempotent=False)
    response = yield from exchange(settings, request)
    return result_of(response)


def map_results(settings, task, inputs, *, chunk=None, on_error="fail_fast", priority=None, idempotency_key=None,
                timeout=None, wait_timeout=None, on_progress=None):
    """One map job over ``inputs``; its results in input order.

    The submit does not ask the server to hold its answer (no Prefer: wait): the id
    comes back at once, so that a wait given up (Timeout, KeyboardInterrupt, a
    canceled coroutine) can cancel the job before the exception goes on. Nobody is
    left to read its result, and its elements would hold the cores. It costs one
    more round trip than a Prefer: wait, for a map that finishes at once.
    """
    if on_error not in ("fail_fast", "collect"):
        raise ValueError('on_error must be "fail_fast" or "collect", got %r' % (on_error,))
    deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
    job = yield from submit(settings, task, map=list(inputs), chunk=chunk, on_error=on_error, priority=priority,
                            idempotency_key=idempotency_key, timeout=timeout)
    try:
        if on_progress is not None and job.progress is not None:
            yield from report_progress(on_progress, job.progress)
        if not job.finished:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = yield from wait(settings, job.id, remaining, on_progress, seen=job.progress)
    except GeneratorExit:
        raise
    except BaseException:
        if not job.finished:
            try:
                yield Send(Request("DELETE", job_path(job.id), timeout=CANCEL_TIMEOUT))
            except Exception:
                pass  # Best effort: the exception that ended the wait is the one to see.
        raise
    if not job.succeeded:
        raise failure_of(job)
    return job.result


class Pager:
    """The state of a listing across pages: ``next_page()`` is the call for the next
    one, ``done`` says when there is none. ``limit`` caps the jobs in all (None: every
    one), ``page_size`` those of one request (at most 1000)."""

    def __init__(self, settings, status=None, task=None, limit=None, include_result=False, page_size=100):
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be from 1 to 1000")
        self._settings = settings
        self._query = {}
        if status is not None:
            self._query["status"] = status
        if task is not None:
            self._query["task"] = task
        if include_result:
            self._query["include"] = "result"
        self._remaining = limit
        self._page_size = page_size
        self._cursor = None
        self.done = limit == 0

    def next_page(self):
        query = dict(self._query)
        size = self._page_size if self._remaining is None else min(self._page_size, self._remaining)
        query["limit"] = str(size)
        if self._cursor is not None:
            query["cursor"] = self._cursor
        response = yield from exchange(self._settings, Request("GET", "/v1/jobs?" + urlencode(query),
                                                               timeout=self._settings.answer_within()))
        page = json_of(response)
        jobs = [Job(j) for j in page.get("jobs", [])]
        if self._remaining is not None:
            jobs = jobs[:self._remaining]
            self._remaining -= len(jobs)
        self._cursor = page.get("next_cursor")
        self.done = self._cursor is None or not jobs or self._remaining == 0
        return jobs


def tasks(settings):
    response = yield from exchange(settings, Request("GET", "/v1/tasks", timeout=settings.answer_within()))
    return json_of(response)["tasks"]


def resources(settings):
    response = yield from exchange(settings, Request("GET", "/v1/resources", timeout=settings.answer_within()))
    return json_of(response)["resources"]


def health(settings):
    """{"status": "ok"|"degraded"|"draining", ...}: a draining server's 503 is an answer
    here, not an error."""
    response = yield from exchange(settings, Request("GET", "/healthz", timeout=settings.answer_within()))
    if response.status == 503 and response.media_type() == "application/json":
        return json_of(response, ok=(503,))
    return json_of(response)
