"""The client's view of a job: what ``GET /v1/jobs/ID`` answered, as attributes.

Not to be confused with ``offload.worker.Job``, the job a worker process is handed.
"""

FINAL_STATUSES = ("succeeded", "failed", "canceled")


class Job:
    """A job as the server last described it (docs/api.md, "The job object").

    Attributes: ``id``, ``task``, ``status`` (``queued``, ``running``, ``succeeded``,
    ``failed``, ``canceled``), ``priority``, ``position`` (while queued: jobs that start
    first; else None), ``attempts``, ``created_at``, ``started_at``, ``finished_at``
    (RFC 3339 strings or None), ``result`` (the JSON result once succeeded; None for a
    binary one, and in listings without results), ``result_type``, ``result_url``,
    ``result_size`` (bytes, for a result that is not JSON), ``result_sha256`` (hex,
    for one the server keeps in a file), ``error`` (``{"type", "message", ...}`` or
    None), ``progress`` (0..1 or None), ``map`` (a map's counters, or None),
    ``files`` (the job's files: dicts with ``field``, ``filename``, ``content_type``,
    ``size``, ``sha256``; None when it has none), ``retry_of`` (the job this one
    retries, or None), ``tenant`` (the name of the token that submitted it, on a
    server with ``[auth]``; else None) and ``raw``, the whole dict, for fields this
    class does not name. A snapshot: it does not change when the job does.
    """

    __slots__ = ("raw",)

    def __init__(self, raw):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise ValueError("not a job object: %r" % (raw,))
        self.raw = raw

    def __getattr__(self, name):
        # Every documented field reads as an attribute; one the server left out is None.
        if name in _FIELDS:
            return self.raw.get(name)
        raise AttributeError("%s has no attribute %r" % (type(self).__name__, name))

    @property
    def finished(self):
        """True once the job is succeeded, failed or canceled: its state is final."""
        return self.raw.get("status") in FINAL_STATUSES

    @property
    def succeeded(self):
        return self.raw.get("status") == "succeeded"

    def __eq__(self, other):
        return isinstance(other, Job) and other.raw == self.raw

    __hash__ = None

    def __repr__(self):
        parts = ["id=%r" % self.raw.get("id"), "task=%r" % self.raw.get("task"),
                 "status=%r" % self.raw.get("status")]
        for name in ("position", "progress", "error"):
            if self.raw.get(name) is not None:
                parts.append("%s=%r" % (name, self.raw[name]))
        return "Job(%s)" % ", ".join(parts)


_FIELDS = frozenset((
    "id", "task", "status", "priority", "position", "attempts", "created_at", "started_at",
    "finished_at", "result", "result_type", "result_url", "result_size", "result_sha256", "error", "progress",
    "map", "error_history", "files", "retry_of", "tenant",
))
