"""Both clients against a server with [auth]: the token sent with every request (a
submit, a long poll, an upload, a download, a cancel), never in a URL, taken from
$OFFLOAD_TOKEN when no token= is given; 401 and 403 as Unauthorized and Forbidden;
another tenant's job as the NotFound of an unknown id; the job's ``tenant``; and the
token kept out of reprs and exception messages; a quota as QuotaExceeded, naming it.

The module's server reads its tokens from tokens.toml beside its config, made with
`offload token create NAME --scopes ... --json` as an operator would. Each test runs
once per client (conftest's ``connect``).
"""

import json
import os
import subprocess

import pytest

import offload
from offload import _core
from conftest import BASE_SETTINGS, BASE_TASKS, Server, offload_binary
from support import job_json, problem

# name -> scopes of the module's tokens.
TOKENS = {
    "alice": "submit,read,cancel",
    "bob": "submit,read,cancel",
    "reader": "read",
}
TABLES = """
[tasks.cat]
command = ["cat"]
content_type = "application/octet-stream"
accept = ["*/*"]
"""
WAIT = 30  # seconds a wait or a submit's Prefer: wait may take


def create_token(name, scopes):
    """What `offload token create NAME --scopes SCOPES --json` prints, decoded."""
    out = subprocess.run([offload_binary(), "token", "create", name, "--scopes", scopes, "--json"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                         check=True)
    made = json.loads(out.stdout)
    assert made["name"] == name and made["scopes"] == scopes.split(",")
    assert made["token"] and len(made["sha256"]) == 64
    return made


def tokens_file(made):
    """A tokens file of [[tokens]] tables, one per token made."""
    tables = []
    for t in made:
        tables.append("[[tokens]]\nname = %s\nsha256 = %s\nscopes = %s\n"
                      % (json.dumps(t["name"]), json.dumps(t["sha256"]), json.dumps(t["scopes"])))
    return "\n".join(tables)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A server with [auth] and the TOKENS; ``tokens`` maps each name to its token."""
    folder = str(tmp_path_factory.mktemp("auth"))
    made = [create_token(name, scopes) for name, scopes in TOKENS.items()]
    with open(os.path.join(folder, "tokens.toml"), "w") as f:
        f.write(tokens_file(made))
    s = Server(folder, BASE_SETTINGS + '[auth]\ntokens_file = "tokens.toml"\n' + BASE_TASKS + TABLES)
    s.tokens = {t["name"]: t["token"] for t in made}
    yield s
    s.stop()


def transport_of(c):
    """The client object behind the connect fixture's wrapper."""
    return getattr(c, "async_client", c)


# ---- a token that works --------------------------------------------------------

def test_submit_and_wait_with_a_token(connect, auth_server):
    c = connect(auth_server.url, token=auth_server.tokens["alice"])
    job = c.submit("noop", {"n": 1})
    assert job.tenant == "alice"
    done = c.wait(job.id, timeout=WAIT)
    assert done.succeeded and done.tenant == "alice"
    assert c.get(job.id).tenant == "alice"
    assert job.id in [j.id for j in c.list(limit=50)]
    assert c.health()["status"] == "ok"


def test_every_request_carries_the_token_and_no_url_does(connect, auth_server, proxy_to, tmp_path):
    token = auth_server.tokens["alice"]
    proxy = proxy_to(auth_server.port)
    c = connect(proxy.url, token=token)
    upload = c.submit("cat", bytes=b"the bytes of a file", content_type="text/plain")  # A streamed body.
    assert upload.tenant == "alice"
    assert c.wait(upload.id, timeout=WAIT).succeeded
    to = str(tmp_path / "result.bin")
    assert c.result(upload.id, to=to) == to  # A download.
    with open(to, "rb") as f:
        assert f.read() == b"the bytes of a file"
    assert c.result(upload.id) == b"the bytes of a file"
    assert c.map("noop", [1, 2, 3]) == [None, None, None]
    assert c.run("noop", 1) is None
    long = c.submit("sleep", {"ms": 60000})
    assert c.cancel(long.id).status == "canceled"
    lines = [line for line, _ in proxy.requests]
    assert any(line.startswith("POST /v1/jobs?") for line in lines)  # The upload went through the proxy.
    assert any(line.startswith("GET /v1/jobs/%s?wait=" % upload.id) for line in lines)
    assert any(line.startswith("DELETE ") for line in lines)
    for line, headers in proxy.requests:
        assert headers.get("authorization") == "Bearer " + token, line
        assert token not in line


# ---- no token, an unknown one, one without the scope --------------------------

def test_no_token_is_unauthorized(connect, auth_server):
    c = connect(auth_server.url)
    with pytest.raises(offload.Unauthorized) as e:
        c.submit("noop", 1)
    assert e.value.status == 401 and e.value.name == "unauthorized"
    assert "Authorization: Bearer" in e.value.detail
    with pytest.raises(offload.Unauthorized):
        c.get("no-such-job")
    assert c.health()["status"] == "ok"  # /healthz needs none.


def test_an_unknown_token_is_unauthorized_and_not_shown(connect, auth_server):
    wrong = "ofl_not-a-token-this-server-knows"
    c = connect(auth_server.url, token=wrong)
    with pytest.raises(offload.Unauthorized) as e:
        c.submit("noop", 1)
    assert e.value.status == 401 and "no token this server knows" in e.value.detail
    for text in (str(e.value), repr(e.value), json.dumps(e.value.body), repr(transport_of(c)),
                 repr(transport_of(c)._settings)):
        assert wrong not in text


def test_a_read_only_token_submitting_is_forbidden(connect, auth_server):
    c = connect(auth_server.url, token=auth_server.tokens["reader"])
    with pytest.raises(offload.Forbidden) as e:
        c.submit("noop", 1)
    assert e.value.status == 403 and e.value.name == "insufficient-scope"
    assert e.value.scope == "submit" and '"reader"' in e.value.detail
    assert auth_server.tokens["reader"] not in str(e.value)
    assert c.tasks()  # What its scope allows still works.


# ---- tenants -------------------------------------------------------------------

def test_another_tenants_job_is_not_found(connect, auth_server):
    alice = connect(auth_server.url, token=auth_server.tokens["alice"])
    bob = connect(auth_server.url, token=auth_server.tokens["bob"])
    job = alice.submit("noop", 1, wait=WAIT)
    assert job.succeeded and job.tenant == "alice"
    with pytest.raises(offload.NotFound) as unknown:
        bob.get("no-such-job")
    with pytest.raises(offload.NotFound) as theirs:
        bob.get(job.id)
    assert theirs.value.status == unknown.value.status == 404
    assert theirs.value.name == unknown.value.name == "not-found"
    with pytest.raises(offload.NotFound):
        bob.result(job.id)
    with pytest.raises(offload.NotFound):
        bob.cancel(job.id)
    assert job.id not in [j.id for j in bob.list(limit=1000)]
    assert alice.get(job.id) == job  # Bob's attempts changed nothing.


# ---- $OFFLOAD_TOKEN --------------------------------------------------------------

def test_the_token_comes_from_the_environment(connect, auth_server, monkeypatch):
    monkeypatch.setenv("OFFLOAD_TOKEN", auth_server.tokens["bob"])
    c = connect(auth_server.url)
    job = c.submit("noop", 1)
    assert job.tenant == "bob"
    assert c.wait(job.id, timeout=WAIT).tenant == "bob"
    assert auth_server.tokens["bob"] not in repr(transport_of(c))


def test_token_given_wins_over_the_environment(connect, auth_server, monkeypatch):
    monkeypatch.setenv("OFFLOAD_TOKEN", auth_server.tokens["bob"])
    assert connect(auth_server.url, token=auth_server.tokens["alice"]).submit("noop", 1).tenant == "alice"
    with pytest.raises(offload.Unauthorized):
        connect(auth_server.url, token="").submit("noop", 1)  # "": none at all.


def test_the_environment_is_read_when_the_client_is_made(connect, scripted, monkeypatch):
    fake = scripted([(200, {"Content-Type": "application/json"}, {"tasks": []})] * 2)
    monkeypatch.setenv("OFFLOAD_TOKEN", "ofl_from-the-environment")
    c = connect(fake.url)
    monkeypatch.setenv("OFFLOAD_TOKEN", "ofl_changed-later")
    c.tasks()
    monkeypatch.setenv("OFFLOAD_TOKEN", "")
    connect(fake.url).tasks()  # Empty: no token.
    assert fake.requests[0][1]["authorization"] == "Bearer ofl_from-the-environment"
    assert "authorization" not in fake.requests[1][1]


# ---- what never shows the token ----------------------------------------------------

def test_a_401_from_a_scripted(connect, scripted):
    fake = scripted([(401, {"Content-Type": "application/problem+json",
                                   "WWW-Authenticate": 'Bearer realm="offload"'},
                             problem(401, "unauthorized", "send Authorization: Bearer TOKEN")),
                            (200, {"Content-Type": "application/json"}, job_json("j1"))])
    c = connect(fake.url, token="ofl_s3cret")
    with pytest.raises(offload.Unauthorized) as e:
        c.get("j1")
    assert e.value.detail == "send Authorization: Bearer TOKEN" and "ofl_s3cret" not in str(e.value)
    assert c.get("j1").tenant is None  # A job without the member (a server without [auth]).


def test_reprs_do_not_show_the_token(connect):
    c = transport_of(connect("http://127.0.0.1:9", token="ofl_s3cret"))
    assert "ofl_s3cret" not in repr(c) and "token=<set>" in repr(c)
    assert "ofl_s3cret" not in repr(c._settings)
    assert "token=None" in repr(transport_of(connect("http://127.0.0.1:9")))


@pytest.mark.parametrize("token", ["ofl_two\r\nX-Injected: 1", "ofl_ spaced", "ofl_é"])
def test_a_token_that_cannot_be_a_header_is_refused_unseen(token, monkeypatch):
    with pytest.raises(ValueError) as e:
        _core.Settings("http://127.0.0.1:9", token, 1.0, 0, 0.0)
    assert token not in str(e.value) and "token=" in str(e.value)
    monkeypatch.setenv("OFFLOAD_TOKEN", token)
    with pytest.raises(ValueError) as e:
        _core.Settings("http://127.0.0.1:9", None, 1.0, 0, 0.0)
    assert token not in str(e.value) and "$OFFLOAD_TOKEN" in str(e.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/?access_token=ofl_s3cret",
                                 "http://user:ofl_s3cret@127.0.0.1:9", "http://127.0.0.1:9/#ofl_s3cret"])
def test_a_url_with_a_credential_or_query_is_refused_unseen(url):
    for cls in (offload.Client, offload.AsyncClient):
        with pytest.raises(ValueError) as e:
            cls(url)
        assert "ofl_s3cret" not in str(e.value) and "token=" in str(e.value)


# ---- quotas ---------------------------------------------------------------------

def test_a_quota_is_quota_exceeded_naming_it(connect, scripted):
    fake = scripted([(429, {"Content-Type": "application/problem+json", "Retry-After": "1"},
                      problem(429, "quota-max-queued", 'tenant "alice" already has 10 jobs queued'))])
    c = connect(fake.url, token="ofl_s3cret")
    with pytest.raises(offload.QuotaExceeded) as e:
        c.submit("noop", {"n": 1})
    assert isinstance(e.value, offload.TooManyRequests)
    assert e.value.quota == "max_queued" and e.value.retry_after == 1.0


def test_a_tenant_past_its_submit_rate_gets_quota_exceeded(connect, tmp_path):
    made = create_token("alice", "submit,read")
    s = Server(str(tmp_path), BASE_SETTINGS + '[auth]\ntokens = [{name = "alice", sha256 = "%s", '
               'scopes = ["submit", "read"], submit_rate = "1/m"}]\n' % made["sha256"] + BASE_TASKS)
    try:
        c = connect(s.url, token=made["token"])
        first = c.submit("noop", {"n": 1})
        with pytest.raises(offload.QuotaExceeded) as e:
            c.submit("noop", {"n": 2})
        assert e.value.quota == "submit_rate" and e.value.retry_after >= 1
        assert c.get(first.id).tenant == "alice"  # Reading is not submitting.
    finally:
        s.stop()
