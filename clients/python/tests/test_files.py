"""Files in, files out, end to end: uploads from offload.Client and offload.AsyncClient
(a raw body, a multipart form with the input), what command and python tasks get of
them, results that are files (offload.File, a command's stdout past
max_memory_result) fetched with result(to=PATH), a download resumed after a cut, and
the refusals (415, 413) as the clients' exceptions.

The module's server keeps binary results over 64 KiB in files, so that a
multi-megabyte result is served from disk (ETag, Range). Tests that count requests or
jobs start a server of their own.
"""

import hashlib
import io
import os

import pytest

import offload
from conftest import BASE_SETTINGS, BASE_TASKS, Server
from support import ScriptedServer, python_task

# The user's code of the python tasks: files.py, beside the config.
USER_MODULE = '''
import offload


def argument(x):
    """What the function was given as its argument."""
    if isinstance(x, str):
        with open(x, "rb") as f:
            return {"kind": "path", "content": f.read().decode()}
    if isinstance(x, bytes):
        return {"kind": "bytes", "content": x.decode()}
    return {"kind": "json", "content": x}


def keywords(path=None, *, n=0):
    return {"path": path is not None, "n": n}


def inspect(x, ctx):
    files = [[f.field, f.filename, f.content_type, f.size, f.sha256, f.read_bytes().decode()] for f in ctx.files]
    return {"input": x, "files": files, "result_path": isinstance(ctx.result_path, str)}


def same_file(path):
    return offload.File(path)


def written_in_place(times, ctx):
    with open(ctx.result_path, "wb") as f:
        f.write(b"written in place. " * times)
    return offload.File(ctx.result_path, "text/plain")


def missing(x):
    return offload.File("/nonexistent/offload-test-result.bin")


def numbered(x):
    path = "element-%d.txt" % x
    with open(path, "w") as f:
        f.write("element %d" % x)
    return offload.File(path)
'''

TABLES = """
[tasks.sha]
command = ["sha256sum"]
content_type = "text/plain"
accept = ["*/*"]

[tasks.cat]
command = ["cat"]
content_type = "application/octet-stream"
accept = ["*/*"]

[tasks.images]
command = ["cat"]
content_type = "application/octet-stream"
accept = ["image/*"]

[tasks.tiny]
command = ["cat"]
content_type = "application/octet-stream"
accept = ["*/*"]
max_input = "1KiB"
""" + "".join([
    python_task("argument", "files:argument", workers=1, accept=["*/*"]),
    python_task("argument_bytes", "files:argument", workers=1, accept=["*/*"], python_input="bytes"),
    python_task("keywords", "files:keywords", workers=1, accept=["*/*"], call="kwargs"),
    python_task("inspect", "files:inspect", workers=1, accept=["*/*"]),
    python_task("same_file", "files:same_file", workers=1, accept=["*/*"], content_type="application/octet-stream"),
    python_task("written_in_place", "files:written_in_place", workers=1, content_type="application/octet-stream"),
    python_task("missing", "files:missing", workers=1, content_type="application/octet-stream"),
    python_task("numbered", "files:numbered", workers=1, content_type="application/octet-stream"),
])
FILES_SETTINGS = 'max_memory_result = "64KiB"\n'
WAIT = 30  # seconds a submit lets the server hold its answer for the job to finish


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def start_files_server(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "files.py"), "w") as f:
        f.write(USER_MODULE)
    return Server(folder, BASE_SETTINGS + FILES_SETTINGS + BASE_TASKS + TABLES)


@pytest.fixture(scope="module")
def files_server(tmp_path_factory):
    s = start_files_server(str(tmp_path_factory.mktemp("files")))
    yield s
    s.stop()


@pytest.fixture
def client(connect, files_server):
    return connect(files_server.url, timeout=60)


def done(job):
    assert job.status == "succeeded", job
    return job


# ---- uploads ------------------------------------------------------------------------

def test_a_path_goes_as_the_body_with_the_type_its_name_suggests(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"some notes\n")
    job = done(client.submit("sha", file=str(path), wait=WAIT))
    assert job.files == [{"field": "body", "filename": "", "content_type": "text/plain", "size": 11,
                          "sha256": sha256(b"some notes\n")}]
    assert client.result(job.id) == (sha256(b"some notes\n") + "  -\n").encode()
    job = done(client.submit("sha", file=path, content_type="image/png", wait=WAIT))  # A PathLike.
    assert job.files[0]["content_type"] == "image/png"


def test_bytes_go_as_the_body_as_application_octet_stream(client):
    job = done(client.submit("cat", bytes=b"\x00\x01 raw", wait=WAIT, priority=3))
    assert job.priority == 3
    assert job.files == [{"field": "body", "filename": "", "content_type": "application/octet-stream",
                          "size": 6, "sha256": sha256(b"\x00\x01 raw")}]
    assert client.result(job.id) == b"\x00\x01 raw"


def test_an_empty_file_is_a_file(client):
    job = done(client.submit("cat", bytes=b"", wait=WAIT))
    assert job.files == [{"field": "body", "filename": "", "content_type": "application/octet-stream", "size": 0,
                          "sha256": sha256(b"")}]


def test_a_file_object_is_sent_from_where_it_stands(client):
    f = io.BytesIO(b"skip:the rest")
    f.seek(5)
    job = done(client.submit("cat", file=f, wait=WAIT))
    assert client.result(job.id) == b"the rest"
    assert job.files[0]["filename"] == ""


def test_a_pipe_goes_chunked(client):
    read, write = os.pipe()
    os.write(write, b"from a pipe")
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        job = done(client.submit("cat", file=pipe, wait=WAIT))
    assert client.result(job.id) == b"from a pipe"


def test_input_and_file_go_as_a_form(client, tmp_path):
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    job = done(client.submit("inspect", {"rows": 2}, file=str(path), wait=WAIT))
    assert job.files == [{"field": "file", "filename": "report.csv", "content_type": "text/csv", "size": 8,
                          "sha256": sha256(b"a,b\n1,2\n")}]
    assert client.result(job.id) == {
        "input": {"rows": 2}, "result_path": True,
        "files": [["file", "report.csv", "text/csv", 8, sha256(b"a,b\n1,2\n"), "a,b\n1,2\n"]]}


def test_a_form_keeps_any_filename(client):
    name = 'r\u00e9sum\u00e9 "final" \\ v2.txt'
    job = done(client.submit("inspect", [1], bytes=b"cv", filename=name, wait=WAIT))
    assert job.files[0]["filename"] == name
    assert job.files[0]["content_type"] == "text/plain"


def test_a_json_file_without_input_goes_as_a_form(client):
    # As the body itself, application/json would be the submit request.
    job = done(client.submit("argument", bytes=b'{"not": "the request"}', filename="data.json", wait=WAIT))
    assert [(f["field"], f["content_type"]) for f in job.files] == [("file", "application/json")]
    assert client.result(job.id) == {"kind": "path", "content": '{"not": "the request"}'}


def test_run_with_a_file(client, tmp_path):
    assert client.run("sha", bytes=b"abc") == (sha256(b"abc") + "  -\n").encode()
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 10)
    assert client.run("cat", file=str(path)) == bytes(range(256)) * 10
    assert client.run("inspect", {"k": 1}, bytes=b"x")["files"][0][5] == "x"


def test_options_of_a_file_without_one_are_refused(client):
    with pytest.raises(ValueError):
        client.submit("cat", {"x": 1}, content_type="image/png")
    with pytest.raises(ValueError):
        client.submit("cat", file=__file__, bytes=b"x")
    with pytest.raises(TypeError):
        client.submit("cat", file=b"contents, not a path")
    with pytest.raises(TypeError):
        with open(__file__) as text:
            client.submit("cat", file=text)
    with pytest.raises(ValueError):
        client.submit("cat", bytes=b"x", content_type="text/plain\r\nX-Injected: 1")


# ---- refusals -----------------------------------------------------------------------

def test_a_type_the_task_does_not_accept_is_unsupported_media_type(client):
    with pytest.raises(offload.UnsupportedMediaType) as e:
        client.submit("images", bytes=b"text", content_type="text/plain")
    assert e.value.status == 415 and isinstance(e.value, offload.Refused)
    assert "image/*" in e.value.detail
    with pytest.raises(offload.UnsupportedMediaType) as e:
        client.submit("images", {"x": 1}, bytes=b"text", content_type="text/plain")
    assert "part \"file\"" in e.value.detail
    with pytest.raises(offload.UnsupportedMediaType):
        client.run("noop", bytes=b"\x89PNG", content_type="image/png")
    with pytest.raises(offload.UnsupportedMediaType):
        client.submit("noop", {"x": 1}, bytes=b"\x89PNG", content_type="image/png")
    with pytest.raises(offload.InvalidInput) as e:
        client.submit("no-such-task", bytes=b"x")
    assert e.value.field == "task"
    assert client.health() == {"status": "ok"}


def test_a_refusal_while_a_large_form_is_sent_is_the_answer(client, tmp_path):
    # The server refuses the part when its header comes and stops reading: the client,
    # still sending 8 MB, sees the answer, not a broken pipe.
    path = tmp_path / "large.txt"
    path.write_bytes(b"x" * (8 << 20))
    with pytest.raises(offload.UnsupportedMediaType):
        client.submit("images", {"x": 1}, file=str(path))
    assert client.health() == {"status": "ok"}


def test_a_file_over_max_input_is_payload_too_large(client, tmp_path):
    with pytest.raises(offload.PayloadTooLarge) as e:
        client.submit("tiny", bytes=b"x" * 2048)
    assert "max_input" in e.value.detail
    path = tmp_path / "large.bin"
    path.write_bytes(b"x" * (8 << 20))
    with pytest.raises(offload.PayloadTooLarge):
        client.submit("tiny", file=str(path))
    read, write = os.pipe()
    os.write(write, b"y" * 4096)
    os.close(write)
    with os.fdopen(read, "rb") as pipe, pytest.raises(offload.PayloadTooLarge):
        client.submit("tiny", file=pipe)
    assert client.health() == {"status": "ok"}


def test_an_upload_is_bounded_by_max_input_not_max_body(start_server, connect, tmp_path):
    server = start_server(settings="max_body = 65536\n", tables=TABLES)
    client = connect(server.url)
    data = os.urandom(1 << 20)
    job = done(client.submit("cat", bytes=data, wait=WAIT))
    assert job.files[0]["size"] == 1 << 20 and job.files[0]["sha256"] == sha256(data)


# ---- what a python function gets -----------------------------------------------------

def test_a_file_without_input_is_the_argument_as_a_path_or_bytes(client):
    assert client.run("argument", bytes=b"file contents") == {"kind": "path", "content": "file contents"}
    assert client.run("argument_bytes", bytes=b"file contents") == {"kind": "bytes", "content": "file contents"}
    # With input, the input is the argument, whatever python_input says.
    assert client.run("argument_bytes", {"a": 1}, bytes=b"x") == {"kind": "json", "content": {"a": 1}}
    assert client.run("argument_bytes", 42) == {"kind": "json", "content": 42}


def test_with_call_kwargs_a_file_argument_is_positional(client):
    assert client.run("keywords", bytes=b"x") == {"path": True, "n": 0}
    assert client.run("keywords", {"n": 3}) == {"path": False, "n": 3}


def test_ctx_files_is_empty_without_files(client):
    assert client.run("inspect", 7) == {"input": 7, "files": [], "result_path": True}


# ---- results that are files ----------------------------------------------------------

def test_a_returned_file_is_the_result(client):
    data = os.urandom(200 * 1024)
    job = done(client.submit("same_file", bytes=data, wait=WAIT))
    assert job.result_type == "application/octet-stream"
    assert client.result(job.id) == data
    assert client.run("same_file", bytes=b"small") == b"small"


def test_a_file_written_at_result_path_is_the_result(client):
    assert client.run("written_in_place", 3) == b"written in place. " * 3


def test_a_returned_file_that_cannot_be_read_fails_the_job(client):
    job = client.submit("missing", 1, wait=WAIT)
    assert job.status == "failed" and job.error["type"] == "invalid_result", job
    assert "offload-test-result.bin" in job.error["message"]


def test_a_returned_file_in_a_map_is_its_bytes(client):
    results = client.map("numbered", [1, 2, 3], on_error="collect", wait_timeout=WAIT)
    assert [r["ok"] for r in results] == [
        {"content_type": "application/octet-stream",
         "base64": __import__("base64").b64encode(b"element %d" % i).decode()} for i in (1, 2, 3)]


# ---- downloads ----------------------------------------------------------------------

def test_result_to_a_path_streams_a_result_kept_on_disk(client, tmp_path):
    data = os.urandom(3 << 20)
    job = done(client.submit("cat", bytes=data, wait=WAIT))
    assert job.result_size == len(data) and job.result_sha256 == sha256(data)
    target = tmp_path / "out.bin"
    assert client.result(job.id, to=str(target)) == str(target)
    assert target.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]
    # A small (in-memory) result and a JSON one go to the file as they are.
    small = done(client.submit("cat", bytes=b"tiny", wait=WAIT))
    assert client.result(small.id, to=target) == str(target) and target.read_bytes() == b"tiny"
    inspected = done(client.submit("inspect", 5, wait=WAIT))
    client.result(inspected.id, to=target)
    assert __import__("json").loads(target.read_bytes()) == client.result(inspected.id)


def test_result_to_a_path_of_a_failed_job_raises_and_leaves_nothing(client, tmp_path):
    job = client.submit("missing", 1, wait=WAIT)
    with pytest.raises(offload.JobFailed) as e:
        client.result(job.id, to=str(tmp_path / "out.bin"))
    assert e.value.error["type"] == "invalid_result" and e.value.job.id == job.id
    assert os.listdir(tmp_path) == []


def test_a_download_cut_midway_resumes_with_range(connect, files_server, proxy_to, tmp_path):
    data = os.urandom(3 << 20)
    job = done(connect(files_server.url).submit("cat", bytes=data, wait=WAIT))
    proxy = proxy_to(files_server.port)
    proxy.cut(lambda line, headers: line.startswith("GET /v1/jobs/%s/result " % job.id), 1000000)
    client = connect(proxy.url)
    target = tmp_path / "out.bin"
    assert client.result(job.id, to=target) == str(target)
    assert target.read_bytes() == data
    gets = [h for line, h in proxy.requests if line.startswith("GET /v1/jobs/%s/result " % job.id)]
    assert len(gets) == 2 and "range" not in gets[0]
    assert gets[1]["range"] == "bytes=1000000-" and gets[1]["if-range"] == '"%s"' % sha256(data)


def test_a_download_that_does_not_match_its_etag_raises(connect, tmp_path):
    server = ScriptedServer([(200, {"Content-Type": "application/octet-stream",
                                    "ETag": '"%s"' % sha256(b"what it should be")}, b"what came")])
    try:
        client = connect(server.url)
        with pytest.raises(offload.OffloadError) as e:
            client.result("job1", to=tmp_path / "out.bin")
        assert "SHA-256" in str(e.value)
        assert os.listdir(tmp_path) == []
    finally:
        server.close()


# ---- retries --------------------------------------------------------------------------

def posts(proxy):
    return [h for line, h in proxy.requests if line.startswith("POST /v1/jobs?")]


def test_a_lost_answer_to_an_upload_is_sent_again_and_makes_one_job(start_server, connect, proxy_to, tmp_path):
    server = start_server(tables=TABLES)
    proxy = proxy_to(server.port)
    client = connect(proxy.url)
    path = tmp_path / "upload.bin"
    path.write_bytes(b"sent twice")
    f = io.BytesIO(b"---sent twice too")
    f.seek(3)
    for source in (str(path), f):
        proxy.drop(lambda line, headers: line.startswith("POST /v1/jobs?"))
        job = client.submit("cat", file=source, wait=WAIT)
        assert client.result(done(job).id) == b"sent twice" + (b" too" if source is f else b"")
    sent = posts(proxy)
    assert len(sent) == 4
    assert sent[0]["idempotency-key"] == sent[1]["idempotency-key"] != sent[2]["idempotency-key"]
    assert sent[2]["idempotency-key"] == sent[3]["idempotency-key"]
    assert len(list(connect(server.url).list(task="cat"))) == 2


def test_a_lost_answer_to_a_pipe_upload_is_not_sent_again(start_server, connect, proxy_to):
    server = start_server(tables=TABLES)
    proxy = proxy_to(server.port)
    client = connect(proxy.url)
    proxy.drop(lambda line, headers: line.startswith("POST /v1/jobs?"))
    read, write = os.pipe()
    os.write(write, b"once only")
    os.close(write)
    with os.fdopen(read, "rb") as pipe, pytest.raises(offload.NetworkError) as e:
        client.submit("cat", file=pipe)
    assert "not sent again" in str(e.value)
    assert len(posts(proxy)) == 1
