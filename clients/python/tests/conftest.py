"""Fixtures that run the real offload binary for the Python package's tests.

The binary is $OFFLOAD_BIN, else <repo>/build/src/offload. Each server listens on
127.0.0.1 port 0 (the port is read from its log line "offload listening on
http://127.0.0.1:PORT"), keeps its config, log and store under the test's tmp_path,
and is stopped by its pid: SIGTERM, then SIGKILL if it has not exited within 10 s.

The package itself is imported from this checkout (clients/python), not from an
installed copy, so that the tests see the code next to them.
"""

import asyncio
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
sys.path.insert(0, PACKAGE_ROOT)

from support import DroppingProxy, ScriptedServer, stop_process  # noqa: E402  (beside this file, which pytest puts on sys.path)

LISTENING = re.compile(r"offload listening on http://([0-9.]+):([0-9]+) ")

# What every test server has: its top-level settings, then tasks beyond the built-in
# ones (noop, sleep, cpu, mandelbrot).
BASE_SETTINGS = """
store = "memory"
shutdown_grace = "1s"
"""
BASE_TASKS = """
[tasks.fail]                  # a job that fails when it runs, not at submit
command = ["/bin/sh", "-c", "echo boom >&2; exit 3"]

[tasks.once]                  # a task no other test submits to: counts are exact
run = "builtin:noop"
"""


def offload_binary():
    path = os.path.abspath(os.environ.get("OFFLOAD_BIN") or os.path.join(REPO, "build", "src", "offload"))
    if not os.access(path, os.X_OK):
        pytest.fail("no offload binary at %s: build it (scripts/build.sh) or set OFFLOAD_BIN" % path)
    return path


class Server:
    """One running offload: ``url``, ``port``, ``pid``; ``log()`` reads its log so far.
    It runs in ``cwd``, by default its config's folder."""

    def __init__(self, folder, config_text, cwd=None):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.config_path = os.path.join(folder, "offload.toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.log_path = os.path.join(folder, "offload.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [offload_binary(), "serve", "--config", self.config_path, "--listen", "127.0.0.1:0"],
            cwd=cwd or folder, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.port = self._await_port(time.monotonic() + 30)
        self.url = "http://127.0.0.1:%d" % self.port

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _await_port(self, deadline):
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log())
            if m:
                return int(m.group(2))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        pytest.fail("offload did not start (exit status %s); its log:\n%s" % (self.proc.returncode, self.log()))

    def stop(self):
        stop_process(self.proc)
        self._log.close()


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch):
    """The clients take $OFFLOAD_TOKEN when no token= is given: one in the shell that
    runs the tests must not reach them. A test that wants it sets it (monkeypatch)."""
    monkeypatch.delenv("OFFLOAD_TOKEN", raising=False)


@pytest.fixture
def start_server(tmp_path):
    """start_server(settings="", tables="", base=True, files=None) -> Server: top-level
    ``settings`` after BASE_SETTINGS (left out with base=False), then BASE_TASKS, then
    ``tables``; ``files`` ({name: text}) are written beside its config first. Every
    server is stopped when the test ends."""
    servers = []

    def start(settings="", tables="", base=True, files=None):
        folder = os.path.join(str(tmp_path), "server%d" % len(servers))
        os.makedirs(folder)
        for name, content in (files or {}).items():
            with open(os.path.join(folder, name), "w") as f:
                f.write(content)
        text = (BASE_SETTINGS if base else "") + settings + BASE_TASKS + tables
        servers.append(Server(folder, text))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with the base config, shared by the tests of a module."""
    s = Server(str(tmp_path_factory.mktemp("offload")), BASE_SETTINGS + BASE_TASKS)
    yield s
    s.stop()


class AsyncAsSync:
    """An offload.AsyncClient called as offload.Client is: each coroutine runs to its
    end on this object's own event loop, and ``list`` is a plain iterator. Lets one
    test body check both clients."""

    def __init__(self, async_client):
        self.async_client = async_client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name):
        attr = getattr(self.async_client, name)
        if name == "list":
            return lambda *a, **kw: self._iterate(attr(*a, **kw))
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **kw: self.loop.run_until_complete(attr(*a, **kw))
        return attr

    def _iterate(self, pages):
        while True:
            try:
                yield self.loop.run_until_complete(pages.__anext__())
            except StopAsyncIteration:
                return

    def close(self):
        self.loop.run_until_complete(self.async_client.close())
        self.loop.close()


@pytest.fixture(params=["sync", "async"])
def connect(request):
    """connect(url, **kw) -> an offload.Client, or an offload.AsyncClient behind
    AsyncAsSync: the test runs once with each. Closed when the test ends."""
    import offload

    clients = []

    def make(url, **kw):
        if request.param == "sync":
            clients.append(offload.Client(url, **kw))
        else:
            clients.append(AsyncAsSync(offload.AsyncClient(url, **kw)))
        return clients[-1]

    make.kind = request.param
    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(connect, server):
    """A client of each kind (see connect) of the module's server."""
    return connect(server.url)


@pytest.fixture
def proxy_to():
    """proxy_to(port) -> a DroppingProxy in front of a server's port, recording what it
    relays; closed when the test ends."""
    proxies = []

    def make(port):
        proxies.append(DroppingProxy(port))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()


@pytest.fixture
def scripted():
    """scripted(answers) -> a ScriptedServer that gives those answers; closed when the
    test ends."""
    servers = []

    def make(answers):
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield make
    for s in servers:
        s.close()
