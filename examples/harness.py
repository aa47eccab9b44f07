"""What the examples' tests share: the real offload binary started with an example's
own offload.toml, and the example's FastAPI app served by uvicorn, both on 127.0.0.1
port 0, as the examples' READMEs run them by hand.

- The binary is $OFFLOAD_BIN (CTest sets it), else <repo>/build/src/offload. It runs in
  a temporary folder, so the SQLite store of the example's config (its default,
  ./offload-data) is created there; the config is read where it is, so its tasks run
  in the example's folder as they do from the README. Its port is read from its log
  line "offload listening on http://127.0.0.1:PORT".
- The app is imported from the example's app.py under a name of its own (three
  examples, three modules called app), with OFFLOAD_URL pointing at that server, and
  served by uvicorn on a thread of the test process, on a socket bound beforehand.
- Both are stopped when the test module ends: offload by its pid (SIGTERM, then
  SIGKILL after 10 s), uvicorn by its should_exit flag.

The offload package comes from this checkout (clients/python), so that the examples
run against the code beside them, installed or not.
"""

import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(EXAMPLES)
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
sys.path.insert(0, os.path.join(REPO, "clients", "python", "tests"))
from support import stop_process, until  # noqa: E402  (the client's test helpers)

LISTENING = re.compile(r"offload listening on http://([0-9.]+):([0-9]+) ")


class Offload:
    """The offload binary serving ``config`` (a path), run in ``folder``: ``url``,
    ``pid``, ``log()``. ``env``: variables added to its environment (its workers
    inherit them)."""

    def __init__(self, config, folder, env=None):
        binary = os.path.abspath(os.environ.get("OFFLOAD_BIN") or os.path.join(REPO, "build", "src", "offload"))
        if not os.access(binary, os.X_OK):
            raise RuntimeError("no offload binary at %s: build it (scripts/build.sh release) or set OFFLOAD_BIN"
                               % binary)
        self.log_path = os.path.join(folder, "offload.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
            cwd=folder, env=dict(os.environ, **(env or {})),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        try:
            port = until(self._port, timeout=30, what="offload to listen")
        except AssertionError:
            self.stop()
            raise AssertionError("offload did not start (exit status %s); its log:\n%s"
                                 % (self.proc.returncode, self.log()))
        self.url = "http://127.0.0.1:%d" % port

    def _port(self):
        m = LISTENING.search(self.log())
        if m:
            return int(m.group(2))
        if self.proc.poll() is not None:
            raise AssertionError("offload exited with status %s; its log:\n%s" % (self.proc.returncode, self.log()))
        return None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        stop_process(self.proc)
        self._log.close()


def load_app(example, offload_url):
    """Imports ``example``/app.py as the module ``<example>_app``, with OFFLOAD_URL set
    to ``offload_url`` while it is imported (the app reads it once), and the example's
    folder first on sys.path for the app's own imports."""
    folder = os.path.join(EXAMPLES, example)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = example.replace("-", "_") + "_app"
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "app.py"))
    module = importlib.util.module_from_spec(spec)
    saved = os.environ.get("OFFLOAD_URL")
    os.environ["OFFLOAD_URL"] = offload_url
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["OFFLOAD_URL"]
        else:
            os.environ["OFFLOAD_URL"] = saved
    sys.modules[name] = module
    return module


class Uvicorn:
    """An ASGI app served by uvicorn on a thread: ``url``; ``stop()`` ends it.

    The socket is bound here, on port 0, and handed to uvicorn, so there is no race
    for a port. It is made with IPPROTO_TCP named, as `uvicorn --port` makes its own:
    asyncio sets TCP_NODELAY only on such sockets, and without it a response written
    in two parts waits for the client's delayed ACK (40 ms per request on a kept-alive
    connection). uvicorn installs no signal handlers off the main thread.
    """

    def __init__(self, app):
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="uvicorn", daemon=True)
        self._thread.start()
        until(lambda: self._server.started or not self._thread.is_alive(), timeout=30, what="uvicorn to start")
        if not self._server.started:
            raise AssertionError("uvicorn did not start")

    def stop(self):
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
