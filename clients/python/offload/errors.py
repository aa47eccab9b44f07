"""The exceptions of offload's clients, and the one place where answers become them.

Every error the server sends is an RFC 9457 problem body (``application/problem+json``)
with ``type``, ``title``, ``status`` and ``detail``. :func:`from_problem` turns it into
the exception of this table (types after ``urn:offload:problem:``; docs/api.md lists
them, src/http/problem.cc, api.cc and server.cc send them)::

    status  type                             exception
    ------  -------------------------------  ----------------------------------------
    400     malformed-request                BadRequest
    400     token-in-query                   BadRequest (the clients never send one)
    401     unauthorized                     Unauthorized
    403     insufficient-scope               Forbidden (scope)
    403     origin-not-allowed               Refused
    404     not-found                        NotFound
    405     method-not-allowed               Refused
    409     conflict                         Conflict
    409     not-finished                     NotFinished (a Conflict; retry_after)
    409     not-retryable                    Conflict (a retry of a job that did not fail)
    409     job-canceled                     JobCanceled (a JobFailed)
    413     body-too-large                   PayloadTooLarge
    415     unsupported-media-type           UnsupportedMediaType (a Refused)
    416     range-not-satisfiable            Refused
    421     misdirected-request              Refused
    422     invalid-request                  InvalidInput (a BadRequest; field)
    422     response-too-large               ResponseTooLarge
    422     job-failed                       JobFailed (error.type "invalid_input")
    429     queue-full                       QueueFull (a TooManyRequests; retry_after)
    429     rate-limited                     TooManyRequests (retry_after)
    429     too-many-waits                   TooManyRequests (retry_after)
    429     too-many-streams                 TooManyRequests (retry_after)
    429     quota-max-queued                 QuotaExceeded (a TooManyRequests; quota)
    429     quota-submit-rate                QuotaExceeded (a TooManyRequests; quota)
    431     header-too-large                 Refused
    500     job-failed                       JobFailed
    500     internal                         ServerError
    501     transfer-coding-not-implemented  Refused
    503     too-many-connections             Unavailable (retry_after)
    503     unavailable                      Unavailable (retry_after)
    504     job-timeout                      JobFailed (error.type "timeout")
    504     run-timeout                      Timeout (the server canceled the job)
    507     insufficient-storage             Unavailable (retry_after)

A type the table does not know falls back on its status: 401 Unauthorized, 403
Forbidden, 404 NotFound, 409 Conflict, 413 PayloadTooLarge, 415 UnsupportedMediaType,
429 TooManyRequests, 503 Unavailable, another 5xx ServerError, else OffloadError. Two more
come from the client itself, with ``status`` None: ``NetworkError`` (no answer:
refused, reset or closed, after the retries the client allows) and ``Timeout``
(``wait`` or ``map`` ran out of time, or the server did not answer within the
client's ``timeout``).

An unknown task is an ``InvalidInput`` whose ``field`` is ``"task"``: the server reads
it as a request naming something that does not exist, like an unknown field.
"""

import re

_PREFIX = "urn:offload:problem:"


class OffloadError(Exception):
    """Base of every error of offload's clients.

    ``status`` is the HTTP status (None when no answer came), ``type`` the problem's
    type URI, ``title`` and ``detail`` its words (``detail`` says what to change), and
    ``body`` the decoded problem (a dict), or None.
    """

    def __init__(self, detail, *, status=None, type=None, title=None, body=None):
        super().__init__(detail)
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.body = body

    @property
    def name(self):
        """The problem's short name, ``queue-full`` for ``urn:offload:problem:queue-full``."""
        if self.type and self.type.startswith(_PREFIX):
            return self.type[len(_PREFIX):]
        return self.type

    def __str__(self):
        if self.status is None:
            return self.detail or ""
        return "%s %s: %s" % (self.status, self.name or self.title or "error", self.detail)


class BadRequest(OffloadError):
    """400: the request could not be read (a query value that does not parse)."""


class InvalidInput(BadRequest):
    """422 invalid-request: an unknown task or field, a field of the wrong type, input
    the task refuses, a number no value can hold.

    ``field`` is what the detail names, when it names one: ``"input.ms"``, ``"task"``,
    ``"map[3].x"``, ``"priority"``; else None.
    """

    def __init__(self, detail, **kw):
        super().__init__(detail, **kw)
        self.field = field_of(detail)


class Unauthorized(OffloadError):
    """401 unauthorized: the server takes requests with a token (``[auth]``) and this
    one had none, or one it does not know (revoked, mistyped). Give the client
    ``token=``, or set $OFFLOAD_TOKEN; ``detail`` says which of the two it was. The
    token itself is never part of the exception."""


class Forbidden(OffloadError):
    """403 insufficient-scope: the token is known but lacks the scope this call needs
    (submit, read, cancel or admin). ``scope`` is the one needed, as the detail names
    it, or None."""

    def __init__(self, detail, **kw):
        super().__init__(detail, **kw)
        m = _SCOPE.search(detail) if isinstance(detail, str) else None
        self.scope = m.group(1) if m else None


class Refused(OffloadError):
    """The server refused the request as sent: a web origin it does not allow (403), a
    method (405), a media type (415), a range (416), a host name (421), a header too
    large (431) or a transfer coding (501). The client sends none of these but a file
    of a type the task does not accept (UnsupportedMediaType); a proxy between may."""


class UnsupportedMediaType(Refused):
    """415: a file of a type the task does not ``accept`` (the detail lists those it
    does), or a body the server does not read."""


class NotFound(OffloadError):
    """404: no job with that id (or retention removed it; or, on a server with
    ``[auth]``, it is another tenant's), or no such path."""


class Conflict(OffloadError):
    """409: the job's state does not allow this (cancel of a finished job), or a
    repeated Idempotency-Key whose first request is still being stored."""


class NotFinished(Conflict):
    """409 not-finished: the result of a job that is still queued or running."""

    def __init__(self, detail, *, retry_after=None, **kw):
        super().__init__(detail, **kw)
        self.retry_after = retry_after


class PayloadTooLarge(OffloadError):
    """413: the request body is over the server's ``max_body``, or a file over the
    task's ``max_input``."""


class ResponseTooLarge(OffloadError):
    """422 response-too-large: a listing with results would pass ``max_list_bytes``;
    list with a lower limit, or without results."""


class TooManyRequests(OffloadError):
    """429: a limit says not now. ``rate-limited``: the connection is past the server's
    ``connection_rate``, or the token's tenant past its ``request_rate``;
    ``too-many-waits``/``too-many-streams``: the tenant already has ``max_waits``
    requests waiting (nothing was stored) or ``max_streams`` streams open. ``retry_after``
    is the server's Retry-After in seconds (a float), or None."""

    def __init__(self, detail, *, retry_after=None, **kw):
        super().__init__(detail, **kw)
        self.retry_after = retry_after


class QueueFull(TooManyRequests):
    """429 queue-full: the task already has ``max_queued`` queued jobs. Nothing was
    stored. ``retry_after`` as for TooManyRequests."""


class QuotaExceeded(TooManyRequests):
    """429 quota-max-queued or quota-submit-rate: the token's tenant is at one of its
    quotas, ``quota``: "max_queued" (it has that many jobs queued, cluster-wide) or
    "submit_rate" (it submits faster). Nothing was stored. ``retry_after`` as for
    TooManyRequests."""

    @property
    def quota(self):
        prefix = _PREFIX + "quota-"
        if self.type and self.type.startswith(prefix):
            return self.type[len(prefix):].replace("-", "_")
        return None


class Unavailable(OffloadError):
    """503: the server is draining, its store refuses writes, or it has all the
    connections it takes; 507: it has no room left for a file. Nothing was stored.
    ``retry_after`` as for QueueFull."""

    def __init__(self, detail, *, retry_after=None, **kw):
        super().__init__(detail, **kw)
        self.retry_after = retry_after


class ServerError(OffloadError):
    """500 internal, or another 5xx the table does not name."""


class JobFailed(OffloadError):
    """The job did not succeed. ``error`` is the job's error, a dict with ``type`` and
    ``message``, and ``detail`` when there is more to tell (a Python task's traceback:
    its last lines); ``job`` is the Job when the client knows it (``result``, ``map``),
    None after ``run``."""

    def __init__(self, detail, *, error=None, job=None, **kw):
        super().__init__(detail, **kw)
        self.error = error if error is not None else {"type": "unknown", "message": detail}
        self.job = job


class JobCanceled(JobFailed):
    """The job was canceled (DELETE, shutdown, a /run client that left or timed out)."""


class NetworkError(OffloadError, ConnectionError):
    """No answer came: the connection was refused, reset or closed before the
    response was whole, after the retries the client allows. ``status`` is None."""


class Timeout(OffloadError, TimeoutError):
    """Waited long enough: ``wait``/``map`` passed their timeout (``job`` is the job as
    last seen), the server did not answer within the client's ``timeout``, or ``run``
    passed the server's ``run_timeout`` (504 run-timeout; the job was canceled)."""

    def __init__(self, detail, *, job=None, **kw):
        super().__init__(detail, **kw)
        self.job = job


# The problem types the server sends (docs/api.md, "Errors") and their exceptions.
_BY_TYPE = {
    "malformed-request": BadRequest,
    "token-in-query": BadRequest,
    "unauthorized": Unauthorized,
    "insufficient-scope": Forbidden,
    "origin-not-allowed": Refused,
    "not-found": NotFound,
    "method-not-allowed": Refused,
    "conflict": Conflict,
    "not-finished": NotFinished,
    "not-retryable": Conflict,
    "job-canceled": JobCanceled,
    "body-too-large": PayloadTooLarge,
    "unsupported-media-type": UnsupportedMediaType,
    "range-not-satisfiable": Refused,
    "misdirected-request": Refused,
    "invalid-request": InvalidInput,
    "response-too-large": ResponseTooLarge,
    "job-failed": JobFailed,
    "job-timeout": JobFailed,
    "queue-full": QueueFull,
    "rate-limited": TooManyRequests,
    "too-many-waits": TooManyRequests,
    "too-many-streams": TooManyRequests,
    "quota-max-queued": QuotaExceeded,
    "quota-submit-rate": QuotaExceeded,
    "header-too-large": Refused,
    "internal": ServerError,
    "transfer-coding-not-implemented": Refused,
    "too-many-connections": Unavailable,
    "unavailable": Unavailable,
    "insufficient-storage": Unavailable,
    "run-timeout": Timeout,
}

_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: TooManyRequests,
    503: Unavailable,
}

# 'this request needs a token with scope "submit"; token "alice" does not have it'.
_SCOPE = re.compile(r'scope "([a-z]+)"')

_RETRY_AFTER = (TooManyRequests, Unavailable, NotFinished)


def from_problem(status, problem, retry_after=None):
    """The exception for an error answer.

    ``problem`` is the decoded problem body (a dict), or None when the body was not
    one (a proxy's page): then only the status decides. ``retry_after`` is the
    Retry-After header in seconds, or None.
    """
    if not isinstance(problem, dict):
        problem = None
    body = problem or {}
    type_uri = body.get("type") if isinstance(body.get("type"), str) else None
    short = type_uri[len(_PREFIX):] if type_uri and type_uri.startswith(_PREFIX) else None
    cls = _BY_TYPE.get(short) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else OffloadError
    detail = body.get("detail")
    if not isinstance(detail, str):
        detail = body.get("title") if isinstance(body.get("title"), str) else "HTTP %d" % status
    kw = {"status": status, "type": type_uri, "title": body.get("title"), "body": problem}
    if issubclass(cls, _RETRY_AFTER):
        kw["retry_after"] = retry_after
    if issubclass(cls, JobFailed):
        error = body.get("error")
        kw["error"] = error if isinstance(error, dict) else job_error_of(detail, short)
    return cls(detail, **kw)


def job_error_of(detail, short=None):
    """The job error a job-failed problem states in its detail, "TYPE: MESSAGE": for a
    server that does not send the error whole (its "error" member)."""
    error_type, sep, message = detail.partition(": ")
    if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", error_type):
        return {"type": error_type, "message": message}
    return {"type": "timeout" if short == "job-timeout" else "unknown", "message": detail}


# "input.ms must be ...", "map[3].x: the number ...", "task: no task named ...",
# "priority must be ...", "Idempotency-Key must be ...".
_FIELD = re.compile(r"([A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*)(?::| must | is | needs? )")
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]*)"')
_MAP_ELEMENT = re.compile(r"map\[(\d+)\]: ")


def field_of(detail):
    """The field an invalid-request detail names first, or None.

    An element of a map refused by the task's validator reads "map[3]: input.ms must
    be ...": its field is "map[3].ms", the place in the body that was sent.
    """
    if not isinstance(detail, str):
        return None
    m = _UNKNOWN_FIELD.match(detail)
    if m:
        return m.group(1)
    m = _MAP_ELEMENT.match(detail)
    if m:
        inner = field_of(detail[m.end():]) or ""
        element = "map[%s]" % m.group(1)
        if inner.startswith(("input.", "input[")):
            return element + inner[len("input"):]
        return element
    m = _FIELD.match(detail)
    if m and m.group(1) not in ("the", "a", "an"):
        return m.group(1)
    return None
