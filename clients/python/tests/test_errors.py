"""offload.errors alone: the problem table, kept in step with what the server sends
(its sources and docs/api.md), and the fields read from details."""

import glob
import os
import re

import pytest

import offload
from offload import errors
from conftest import REPO


def problem_types_in_sources():
    types = set()
    for path in glob.glob(os.path.join(REPO, "src", "http", "*.cc")):
        with open(path) as f:
            types |= set(re.findall(r'MakeProblem\(\s*http::status::\w+,\s*"([a-z-]+)"', f.read()))
    return types


def problem_types_in_docs():
    with open(os.path.join(REPO, "docs", "api.md")) as f:
        errors_section = f.read().split("## Errors", 1)[1].split("\n## ", 1)[0]
    types = set()
    for row in errors_section.splitlines():
        cells = row.split("|")
        if len(cells) > 3 and re.match(r"\s*[0-9, ]+\s*$", cells[1]):
            types |= set(re.findall(r"`([a-z-]+)`", cells[2]))
    return types


def test_every_problem_type_the_server_sends_has_its_exception():
    sent = problem_types_in_sources() | problem_types_in_docs()
    assert len(sent) > 15, sent  # The patterns still find them.
    assert sorted(sent - set(errors._BY_TYPE)) == []
    for name in sent:
        assert "\n    %s " % name in errors.__doc__ or " %s " % name in errors.__doc__, name


@pytest.mark.parametrize("status,name,cls", [
    (400, "malformed-request", offload.BadRequest),
    (400, "token-in-query", offload.BadRequest),
    (401, "unauthorized", offload.Unauthorized),
    (403, "insufficient-scope", offload.Forbidden),
    (403, "origin-not-allowed", offload.Refused),
    (404, "not-found", offload.NotFound),
    (409, "conflict", offload.Conflict),
    (409, "not-finished", offload.NotFinished),
    (409, "job-canceled", offload.JobCanceled),
    (413, "body-too-large", offload.PayloadTooLarge),
    (422, "invalid-request", offload.InvalidInput),
    (422, "response-too-large", offload.ResponseTooLarge),
    (422, "job-failed", offload.JobFailed),
    (429, "queue-full", offload.QueueFull),
    (429, "rate-limited", offload.TooManyRequests),
    (429, "too-many-waits", offload.TooManyRequests),
    (429, "too-many-streams", offload.TooManyRequests),
    (500, "internal", offload.ServerError),
    (503, "too-many-connections", offload.Unavailable),
    (503, "unavailable", offload.Unavailable),
    (504, "job-timeout", offload.JobFailed),
    (504, "run-timeout", offload.Timeout),
])
def test_from_problem(status, name, cls):
    body = {"type": "urn:offload:problem:" + name, "title": "T", "status": status, "detail": "what: to do"}
    e = errors.from_problem(status, body, retry_after=2.0)
    assert type(e) is cls
    assert (e.status, e.name, e.title, e.detail, e.body) == (status, name, "T", "what: to do", body)
    assert str(e) == "%d %s: what: to do" % (status, name)
    if hasattr(e, "retry_after"):
        assert e.retry_after == 2.0


def test_unknown_types_fall_back_on_the_status():
    assert type(errors.from_problem(404, {"type": "about:blank"})) is offload.NotFound
    assert type(errors.from_problem(401, None)) is offload.Unauthorized  # A proxy's login page.
    assert type(errors.from_problem(403, {"type": "about:blank"})) is offload.Forbidden
    assert type(errors.from_problem(502, None)) is offload.ServerError
    assert type(errors.from_problem(418, {"detail": "teapot"})) is offload.OffloadError
    assert errors.from_problem(418, {"detail": "teapot"}).detail == "teapot"


def test_forbidden_names_the_scope_it_needs():
    detail = 'this request needs a token with scope "cancel"; token "alice" does not have it'
    e = errors.from_problem(403, {"type": "urn:offload:problem:insufficient-scope", "detail": detail})
    assert type(e) is offload.Forbidden and e.scope == "cancel" and e.detail == detail
    assert errors.from_problem(403, {"detail": "go away"}).scope is None


def test_job_failed_carries_the_error_member():
    error = {"type": "ValueError", "message": "bad x", "detail": "Traceback ..."}
    e = errors.from_problem(500, {"type": "urn:offload:problem:job-failed", "detail": "ValueError: bad x",
                                  "error": error})
    assert e.error == error


def test_job_failed_reads_the_error_from_the_detail():
    e = errors.from_problem(500, {"type": "urn:offload:problem:job-failed", "detail": "worker_died: exit 9"})
    assert e.error == {"type": "worker_died", "message": "exit 9"} and e.job is None


@pytest.mark.parametrize("detail,field", [
    ("input.ms must be between 0 and 3600000", "input.ms"),
    ("input.x: the number 1e400 is out of range of a 64-bit float", "input.x"),
    ('task: no task named "x"; GET /v1/tasks lists them', "task"),
    ("priority must be a 32-bit integer", "priority"),
    ('unknown field "inptu" (expected task, input, map, chunk, on_error, priority, timeout)', "inptu"),
    ("map[3]: input.ms must be an integer", "map[3].ms"),
    ("map[3]: input must be a JSON object", "map[3]"),
    ("map[2].y: the number 1e400 is out of range of a 64-bit float", "map[2].y"),
    ("input.ms is required", "input.ms"),
    ("Idempotency-Key must be at most 255 characters", "Idempotency-Key"),
    ("the body must be a JSON object", None),
    ("chunk and on_error need a map", None),
])
def test_field_of(detail, field):
    assert errors.field_of(detail) == field


def test_the_hierarchy():
    assert issubclass(offload.InvalidInput, offload.BadRequest)
    assert issubclass(offload.JobCanceled, offload.JobFailed)
    assert issubclass(offload.NotFinished, offload.Conflict)
    assert issubclass(offload.Timeout, TimeoutError) and issubclass(offload.NetworkError, ConnectionError)
    for name in offload.__all__:
        obj = getattr(offload, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name not in ("JobError", "Canceled"):
            assert issubclass(obj, offload.OffloadError), name
