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
- A submit with a file is repeated as any submit is, its body sent again from the
  start: a path is opened again, a file object sought back to where it stood. One
  that cannot seek (a pipe) is sent once; its NetworkError is raised.

Files go both ways without being held in memory: a request's body may be a
:class:`StreamBody` (the transport writes its pieces, CHUNK bytes at a time, and stops
when the server answers before the body is whole: a refusal such as 413 or 415), and
a request may carry a ``sink`` (a :class:`Download`), into which the transport writes
a 200 or 206 body as it arrives instead of returning it. :func:`download` resumes a
download that broke off with ``Range``.
"""

import hashlib
import io
import json
import mimetypes
import os
import re
import time
import uuid
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
# Bytes of a file read, or of an answer received, at a time: what a transfer holds.
CHUNK = 256 * 1024


class Request:
    """One HTTP request. ``body``: bytes, a StreamBody, or None. ``timeout`` is how
    long the answer may take, in seconds (None: no limit); for a streamed body or
    answer it bounds each step (a piece sent or received) instead. ``idempotent``
    says whether sending it twice does what sending it once does. ``sink``: a
    Download that takes a 200 or 206 answer's body."""

    __slots__ = ("method", "path", "headers", "body", "timeout", "idempotent", "sink")

    def __init__(self, method, path, *, headers=None, body=None, timeout=None, idempotent=None, sink=None):
        self.method = method
        self.path = path
        self.headers = headers or {}
        self.body = body
        self.timeout = timeout
        self.idempotent = method in ("GET", "DELETE") if idempotent is None else idempotent
        self.sink = sink

    @property
    def streams(self):
        """Whether the body or the answer moves in pieces."""
        return self.sink is not None or isinstance(self.body, StreamBody)


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


# Where a client finds its token when none is given (the CLI reads it too).
TOKEN_ENV = "OFFLOAD_TOKEN"
# RFC 6750's token68, which is what `offload token create` makes (ofl_ and base64url).
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*", re.ASCII)


def token_of(token):
    """The token to send, or None: ``token`` when given, else $OFFLOAD_TOKEN when it is
    set and not empty. "" sends none, whatever the environment says. ValueError for a
    token that cannot go in a header; its message never shows the token."""
    origin = "token="
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
        origin = "$" + TOKEN_ENV
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise TypeError("token must be a string, not %s" % type(token).__name__)
    if not _TOKEN.fullmatch(token):
        raise ValueError("%s is not a bearer token: letters, digits and -._~+/ only, as `offload token create` "
                         "prints it (the value is not shown here)" % origin)
    return token


class Settings:
    """What a client was made with; constant after construction. The token is in
    ``headers`` (Authorization), sent with every request, never in a URL; ``repr``
    does not show it."""

    def __init__(self, url, token, timeout, retries, busy_timeout):
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Not echoed: what stands before the @ is a credential.
            raise ValueError("url must not carry a user or password (USER:PASSWORD@HOST): give token= or "
                             "$%s" % TOKEN_ENV)
        if parts.query or parts.fragment:
            # Not echoed: a query is where a token must never go (the server answers 400
            # token-in-query), and it would be sent with no request anyway.
            raise ValueError("url must be http://HOST:PORT with at most a path, without a query or fragment; "
                             "a token goes in token= or $%s" % TOKEN_ENV)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http://HOST:PORT or https://HOST:PORT, got %r" % (url,))
        token = token_of(token)
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
        if token is not None:
            self.headers["Authorization"] = "Bearer " + token

    def __repr__(self):
        return "Settings(url=%r, token=%s)" % (self.url, "<set>" if self.token is not None else None)

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


# ---- files: request bodies and downloads -----------------------------------------

class FileSource:
    """The bytes of the file an upload sends: a path, opened anew for each send, or a
    binary file object, sent from where it stood when given (sought back there for a
    resend). ``size`` is None for a file object that cannot seek (a pipe), which can
    be sent once only. ``name`` is the file's base name, "" when it has none."""

    def __init__(self, file):
        if isinstance(file, (bytes, bytearray, memoryview)):
            raise TypeError("file= is a path or a binary file object; give contents as bytes=")
        self._path = self._file = self._start = None
        if isinstance(file, (str, os.PathLike)):
            self._path = os.fspath(file)
            self.size = os.stat(self._path).st_size
            self.name = os.fsdecode(os.path.basename(self._path))
            return
        if not callable(getattr(file, "read", None)):
            raise TypeError("file= is a path or a binary file object, not %s" % type(file).__name__)
        if isinstance(file, io.TextIOBase):
            raise TypeError("file= must be opened in binary mode ('rb'), not as text")
        self._file = file
        self.size = None
        if getattr(file, "seekable", lambda: False)():
            self._start = file.tell()
            self.size = file.seek(0, os.SEEK_END) - self._start
            file.seek(self._start)
        name = getattr(file, "name", None)
        # "<stdin>" and the like are no file's name.
        self.name = os.path.basename(name) if isinstance(name, str) and not name.startswith("<") else ""

    @property
    def resendable(self):
        return self._file is None or self._start is not None

    def chunks(self):
        """Yields the file's bytes, CHUNK at a time. OffloadError (not OSError, which
        the transports read as a network failure) when it cannot be read, or ends
        before the size it had when the upload began."""
        what = self._path if self._path is not None else (self.name or "the file object")
        try:
            if self._path is not None:
                f = open(self._path, "rb")
            else:
                f = self._file
                if self._start is not None:
                    f.seek(self._start)
            try:
                left = self.size
                while left is None or left > 0:
                    piece = f.read(CHUNK if left is None else min(CHUNK, left))
                    if not piece:
                        if left:
                            raise errors.OffloadError("%s ended %d bytes short of the %d it had when the upload "
                                                      "began" % (what, left, self.size))
                        return
                    if left is not None:
                        left -= len(piece)
                    yield piece
            finally:
                if self._path is not None:
                    f.close()
        except OSError as e:
            raise errors.OffloadError("cannot read %s: %s" % (what, e)) from e


class StreamBody:
    """A request body sent in pieces, so that a file of any size costs CHUNK bytes of
    memory: bytes-like parts and FileSources, in order. ``headers`` frame it: a
    Content-Length, or Transfer-Encoding: chunked when a source cannot tell its size."""

    def __init__(self, parts):
        self._parts = parts
        sizes = [p.size if isinstance(p, FileSource) else len(p) for p in parts]
        self._chunked = None in sizes
        self.headers = {"Transfer-Encoding": "chunked"} if self._chunked else {"Content-Length": str(sum(sizes))}
        self.resendable = all(p.resendable for p in parts if isinstance(p, FileSource))

    def pieces(self):
        """The bytes to write, in order, framing included; bytes= given whole is sent in
        CHUNK slices too (views, not copies), so that asyncio never buffers a copy."""
        for part in self._parts:
            if isinstance(part, FileSource):
                chunks = part.chunks()
            else:
                view = memoryview(part)
                chunks = (view[i:i + CHUNK] for i in range(0, len(view), CHUNK))
            for piece in chunks:
                if not self._chunked:
                    yield piece
                elif piece:
                    yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        if self._chunked:
            yield b"0\r\n\r\n"


_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(?:\s*;[^\r\n\0]*)?", re.ASCII)


def media_type_of(content_type, name):
    """The Content-Type of a file: the one given, else what its name suggests, else
    application/octet-stream. A compressed name (.tar.gz) suggests its content's type
    (application/x-tar) with an encoding, which is not what the bytes are."""
    if content_type is None:
        guessed, encoding = mimetypes.guess_type(name) if name else (None, None)
        content_type = guessed if guessed and not encoding else "application/octet-stream"
    if not isinstance(content_type, str) or not _MEDIA_TYPE.fullmatch(content_type):
        raise ValueError("content_type must be a media type such as \"image/png\", got %r" % (content_type,))
    return content_type


def disposition_filename(name):
    """The filename parameter of a Content-Disposition: quoted when it is printable
    ASCII, else RFC 5987's filename*=UTF-8''…, which the server also reads."""
    if not name:
        return ""
    if all(" " <= c <= "~" for c in name):
        return '; filename="%s"' % name.replace("\\", "\\\\").replace('"', '\\"')
    return "; filename*=UTF-8''" + quote(name, safe="")


def file_body(input, file, data, content_type, filename):
    """(headers, StreamBody) of a job with one file, the headers its Content-Type and
    framing: the file as the body itself (Content-Type its type) when there is no
    input, else a multipart/form-data form of the input (a part named "input") and the
    file (a part named "file").

    A JSON file goes in a form even without input: a body of type application/json is
    the request itself to the server, not a file.
    """
    if file is not None and data is not None:
        raise ValueError("give file= or bytes=, not both")
    if file is not None:
        source = FileSource(file)
        name = source.name if filename is None else filename
    else:
        try:
            source = memoryview(data).cast("B")
        except TypeError:
            raise TypeError("bytes= must be bytes-like, not %s" % type(data).__name__) from None
        name = filename or ""
    media = media_type_of(content_type, name)
    if input is None and media.split(";", 1)[0].strip().lower() != "application/json":
        body = StreamBody([source])
        return dict(body.headers, **{"Content-Type": media}), body
    boundary = "offload-" + uuid.uuid4().hex
    head = b""
    if input is not None:
        head = (b"--%s\r\nContent-Disposition: form-data; name=\"input\"\r\nContent-Type: application/json\r\n\r\n"
                % boundary.encode() + encode_json(input) + b"\r\n")
    head += ("--%s\r\nContent-Disposition: form-data; name=\"file\"%s\r\nContent-Type: %s\r\n\r\n"
             % (boundary, disposition_filename(name), media)).encode("utf-8")
    tail = b"\r\n--%s--\r\n" % boundary.encode()
    body = StreamBody([head, source, tail])
    return dict(body.headers, **{"Content-Type": "multipart/form-data; boundary=" + boundary}), body


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_SHA256_ETAG = re.compile(r'"([0-9a-f]{64})"')


class Download:
    """Where a result goes with ``to=PATH``: ``PATH.part``, renamed to PATH once whole
    and checked (its size against Content-Length, its SHA-256 against the ETag when
    the server sends one, as it does for a result kept in a file), so that PATH is
    never half a result. Fed by the transport one answer at a time: a 200 starts the
    file over, a 206 continues it where it stopped."""

    def __init__(self, path):
        self.path = os.fsdecode(os.fspath(path))
        self._part = self.path + ".part"
        self._file = open(self._part, "wb")
        self._sha256 = hashlib.sha256()
        self.size = 0  # Bytes in the file.
        self.total = None  # The whole result's size, when an answer said it.
        self.etag = None

    def begin(self, status, headers):
        """Whether the body of this answer goes into the file."""
        if status == 200:
            self._file.seek(0)
            self._file.truncate()
            self._sha256 = hashlib.sha256()
            self.size = 0
            length = headers.get("content-length")
            self.total = int(length) if length is not None and length.isdigit() else None
            self.etag = headers.get("etag")
            return True
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(headers.get("content-range", ""))
            if not m or int(m.group(1)) != self.size:
                raise errors.OffloadError("asked for bytes %d- of the result, the server sent %r"
                                          % (self.size, headers.get("content-range")), status=206)
            self.total = int(m.group(3))
            return True
        return False

    def write(self, piece):
        try:
            self._file.write(piece)
        except OSError as e:  # Not a network failure: no retry will help.
            raise errors.OffloadError("cannot write %s: %s" % (self._part, e)) from e
        self._sha256.update(piece)
        self.size += len(piece)

    def finish(self):
        """Checks the file and moves it to its path; returns the path."""
        self._file.close()
        if self.total is not None and self.size != self.total:
            raise errors.OffloadError("the result is %d bytes, %d came" % (self.total, self.size))
        m = _SHA256_ETAG.fullmatch(self.etag or "")
        if m and m.group(1) != self._sha256.hexdigest():
            raise errors.OffloadError("the result's SHA-256 is %s, what came has %s"
                                      % (m.group(1), self._sha256.hexdigest()))
        os.replace(self._part, self.path)
        return self.path

    def discard(self):
        self._file.close()
        try:
            os.unlink(self._part)
        except FileNotFoundError:
            pass


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
            if not resendable(request):
                raise errors.NetworkError("%s (not sent again: the file object cannot seek back to its start)"
                                          % e) from e
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
        if settings.busy_timeout > 0 and is_busy(response) and resendable(request):
            now = time.monotonic()
            if busy_until is None:
                busy_until = now + settings.busy_timeout
            pause = retry_after_of(response) or 1.0
            if now + pause <= busy_until:
                yield Sleep(pause)
                continue
        response.attempts = attempts
        return response


def resendable(request):
    return not isinstance(request.body, StreamBody) or request.body.resendable


def check_task(task):
    if not isinstance(task, str) or not task:
        raise ValueError("task must be a non-empty string")


def has_file(file, data, content_type, filename):
    """Whether a submit or run sends a file; ValueError for a file's options without one."""
    if file is None and data is None:
        if content_type is not None or filename is not None:
            raise ValueError("content_type and filename describe a file: give file= or bytes= too")
        return False
    return True


def submit_request(settings, task, input=None, *, file=None, data=None, content_type=None, filename=None,
                   priority=None, idempotency_key=None, timeout=None, wait=None, map=None, chunk=None,
                   on_error=None):
    """The POST /v1/jobs of a submit or a map. Every one carries an Idempotency-Key (a
    new random one unless given), so that exchange() may repeat it safely. A job with
    a file (``file``: a path or a binary file object; ``data``: bytes) names its task,
    priority and timeout in the query, since its body is the file (see file_body)."""
    check_task(task)
    if idempotency_key is None:
        idempotency_key = uuid.uuid4().hex
    headers = {"Idempotency-Key": idempotency_key}
    server_wait = 0.0
    if wait is not None and wait > 0:
        headers["Prefer"] = "wait=" + seconds_text(wait)
        server_wait = wait
    if has_file(file, data, content_type, filename):
        query = {"task": task}
        if priority is not None:
            query["priority"] = str(priority)
        if timeout is not None:
            query["timeout"] = seconds_text(timeout)
        body_headers, body = file_body(input, file, data, content_type, filename)
        headers.update(body_headers)
        return Request("POST", "/v1/jobs?" + urlencode(query), headers=headers, body=body,
                       timeout=settings.answer_within(server_wait), idempotent=True)
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
    raise (yield from result_error(settings, job_id, response))


def result_error(settings, job_id, response):
    """The exception for an error answer to GET /result."""
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
    return error


def download(settings, job_id, to):
    """The result's body, whatever its type, written to the file ``to`` as it arrives
    (see Download); returns the path.

    A connection lost during the body is followed by a request for the rest (``Range:
    bytes=N-``, with ``If-Range`` naming the ETag, so that a result that is not the
    same any more comes whole); ``retries`` lost connections in a row with no byte
    between them end it with the NetworkError.
    """
    sink = Download(to)
    try:
        failures = 0
        while True:
            headers = {}
            if sink.size:
                headers["Range"] = "bytes=%d-" % sink.size
                if sink.etag:
                    headers["If-Range"] = sink.etag
            before = sink.size
            # Not idempotent to exchange(): a resend must ask for what is still missing.
            request = Request("GET", job_path(job_id, "/result"), headers=headers,
                              timeout=settings.answer_within(), idempotent=False, sink=sink)
            try:
                response = yield from exchange(settings, request)
            except errors.NetworkError as e:
                failures = 1 if sink.size > before else failures + 1
                if failures > settings.retries:
                    raise
                if not (failures == 1 and getattr(e, "reused", False)):
                    yield Sleep(backoff(failures))
                continue
            if response.status not in (200, 206):
                raise (yield from result_error(settings, job_id, response))
            return sink.finish()
    except BaseException:
        sink.discard()
        raise


def cancel(settings, job_id):
    response = yield from exchange(settings, Request("DELETE", job_path(job_id), timeout=settings.answer_within()))
    if response.status == 409 and response.attempts > 1:
        # A repeated DELETE whose first one was done: the job is canceled, by us.
        job = yield from get(settings, job_id)
        if job.status == "canceled":
            return job
    return Job(json_of(response))


def retry(settings, job_id):
    """POST /v1/jobs/ID/retry. The server keys a retry by the job it retries, so a
    resend after a lost answer gets the same new job."""
    response = yield from exchange(settings, Request("POST", job_path(job_id, "/retry"),
                                                     timeout=settings.answer_within(), idempotent=True))
    return Job(json_of(response, ok=(200, 202)))


def cancel_matching(settings, task=None, status=None, everything=False):
    """POST /v1/jobs/cancel; the number of jobs canceled."""
    body = {}
    if task is not None:
        check_task(task)
        body["task"] = task
    if status is not None:
        body["status"] = status
    if everything:
        body["all"] = True
    if not body:
        raise ValueError("cancel_matching needs a task, a status, or everything=True")
    # Resent after a lost answer, as a DELETE is: what it cancels then is what matches.
    response = yield from exchange(settings, json_request("POST", "/v1/jobs/cancel", body,
                                                          timeout=settings.answer_within(), idempotent=True))
    return json_of(response)["canceled"]


def run(settings, task, input=None, *, file=None, data=None, content_type=None, filename=None):
    """POST /v1/tasks/NAME/run: the server waits up to its run_timeout, so the socket
    has no timeout of its own. A file goes as for submit_request."""
    check_task(task)
    path = "/v1/tasks/" + quote(task, safe="") + "/run"
    if has_file(file, data, content_type, filename):
        headers, body = file_body(input, file, data, content_type, filename)
        request = Request("POST", path, headers=headers, body=body, timeout=None, idempotent=False)
    else:
        request = json_request("POST", path, input, timeout=None, idempotent=False)
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
