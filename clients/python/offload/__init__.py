"""offload: run Python functions as jobs on an offload server, and call it from Python.

Clients (standard library only)::

    import offload

    c = offload.Client("http://127.0.0.1:8080")       # blocking, one keep-alive connection
                                                       # (token=: default $OFFLOAD_TOKEN)
    squares = c.map("square", range(1000))             # results in input order

    async with offload.AsyncClient() as c:             # asyncio, a pool of connections
        job = await c.submit("render", {"scene": 3})
        png = await c.result((await c.wait(job.id)).id)

Errors the server answers with become the exceptions of offload.errors (their table
is there), all subclasses of OffloadError.

For code that runs *as* a job (``python = "module:function"`` tasks), ``JobError``
fails the job with an error type of its choosing, ``Canceled`` is raised when the job
is canceled, ``Context`` is the ``ctx`` a function may take (``ctx.files``: the job's
files, each a ``JobFile``), and ``File(path)`` a result that is a file; see
offload.worker.

``Client`` and ``AsyncClient`` are imported on first use, so that a worker process,
which imports this package too, does not pay for http.client and asyncio.
"""

from .errors import (BadRequest, Conflict, Forbidden, InvalidInput, JobCanceled, JobFailed, NetworkError,
                     NotFinished, NotFound, OffloadError, PayloadTooLarge, QueueFull, QuotaExceeded, Refused,
                     ResponseTooLarge, ServerError, Timeout, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType)
from .job import Job
from .worker import Canceled, Context, File, JobError, JobFile

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "BadRequest", "Canceled", "Client", "Conflict", "Context", "File", "Forbidden", "InvalidInput",
    "Job", "JobCanceled", "JobError", "JobFailed", "JobFile", "NetworkError", "NotFinished", "NotFound",
    "OffloadError", "PayloadTooLarge", "QueueFull", "QuotaExceeded", "Refused", "ResponseTooLarge", "ServerError", "Timeout",
    "TooManyRequests", "Unauthorized", "Unavailable", "UnsupportedMediaType",
]


def __getattr__(name):
    if name == "Client":
        from .client import Client
        return Client
    if name == "AsyncClient":
        from .aio import AsyncClient
        return AsyncClient
    raise AttributeError("module 'offload' has no attribute %r" % (name,))


def __dir__():
    return sorted(set(globals()) | {"Client", "AsyncClient"})
