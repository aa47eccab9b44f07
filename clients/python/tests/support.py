"""Test helpers: waiting for a condition with a deadline, two stand-ins on the
network (a proxy that drops or cuts answers, a server that answers from a script),
and the config table of a python task."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def until(predicate, timeout=10.0, what="the condition", interval=0.01):
    """Polls ``predicate`` until it returns a true value, which is returned; fails the
    test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(interval)


def stop_process(proc):
    """Stops a server started by a test, by its pid: SIGTERM, then SIGKILL if it has not
    exited within 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def python_task(name, target, **settings):
    """A [tasks.NAME] table for `python = TARGET` with the tests' defaults (2 workers,
    kill_grace 2s, no .pyc files left behind, this Python) and ``settings`` (TOML
    values as Python literals: strings, ints, lists of strings)."""
    values = {"python": target, "interpreter": sys.executable, "workers": 2, "kill_grace": "2s"}
    values.update(settings)
    lines = ["", "[tasks.%s]" % name]
    lines += ["%s = %s" % (key, json.dumps(value)) for key, value in values.items()]
    lines.append('env = { PYTHONDONTWRITEBYTECODE = "1" }')
    return "\n".join(lines) + "\n"


def _chunked_length(data):
    """The length of the whole chunked body at the start of ``data`` (no trailers, as
    the clients send), or None while it is not all there."""
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2 + size + 2
        if len(data) < pos:
            return None
        if size == 0:
            return pos


def read_request(sock):
    """One HTTP request from ``sock``: (request line, {lower-case name: value}, body),
    or None at EOF. A chunked body is returned as it came, framing and all, so that a
    proxy relays it as it is."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    length = int(headers.get("content-length", "0"))
    while (_chunked_length(body) is None) if chunked else len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return lines[0], headers, body


def read_response(sock):
    """One HTTP response (Content-Length framed, as offload sends): its raw bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        body += chunk
    return head + b"\r\n\r\n" + body


class _Listener:
    """A thread serving connections on 127.0.0.1:0 with ``self._serve(conn)``, one
    thread per connection; ``close()`` stops it and joins the threads."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._stopping = False
        self._threads = []
        self._open = []  # Accepted connections, shut down by close().
        self._lock = threading.Lock()
        self.connections = 0
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self):
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            t = threading.Thread(target=self._serve_and_close, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve_and_close(self, conn):
        try:
            self._serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stopping = True
        self._accepter.join(timeout=5)
        self._sock.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # Closed already.
        for t in self._threads:
            t.join(timeout=5)


class DroppingProxy(_Listener):
    """Relays HTTP requests to ``upstream_port``, one upstream connection per client
    connection, and records each request as (request line, headers).

    ``drop(predicate)``: the next request for which ``predicate(line, headers)`` is
    true is relayed and its whole answer read from the server, and then the client's
    connection is closed without that answer: the client sees a connection closed
    before a response, after the server did the work.

    ``cut(predicate, keep)``: as drop, but the client gets the answer's head and the
    first ``keep`` bytes of its body before the connection closes: an answer broken
    off midway.
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.requests = []
        self._cuts = []  # (predicate, body bytes to keep, or None for nothing at all)
        super().__init__()

    def drop(self, predicate):
        with self._lock:
            self._cuts.append((predicate, None))

    def cut(self, predicate, keep):
        with self._lock:
            self._cuts.append((predicate, keep))

    def _take_cut(self, line, headers):
        """(True, bytes of the body to keep or None) for a request to cut, else (False, None)."""
        with self._lock:
            for i, (predicate, keep) in enumerate(self._cuts):
                if predicate(line, headers):
                    del self._cuts[i]
                    return True, keep
        return False, None

    def _serve(self, conn):
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        try:
            while True:
                request = read_request(conn)
                if request is None:
                    return
                line, headers, body = request
                with self._lock:
                    self.requests.append((line, headers))
                raw = [line] + ["%s: %s" % kv for kv in headers.items()]
                upstream.sendall(("\r\n".join(raw) + "\r\n\r\n").encode("latin-1") + body)
                answer = read_response(upstream)
                cut, keep = self._take_cut(line, headers)
                if cut:
                    if keep is not None:
                        conn.sendall(answer[:answer.index(b"\r\n\r\n") + 4 + keep])
                    return
                conn.sendall(answer)
        finally:
            upstream.close()


class ScriptedServer(_Listener):
    """Answers each request with the next of ``answers``: (status, headers dict, body
    bytes or a JSON value), a whole response as bytes, or None to close the
    connection without an answer. Records the requests as (request line, headers,
    body)."""

    def __init__(self, answers):
        self._answers = list(answers)
        self.requests = []
        super().__init__()

    def _serve(self, conn):
        while True:
            request = read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                answer = self._answers.pop(0)
            if answer is None:
                return
            if isinstance(answer, bytes):
                conn.sendall(answer)
                continue
            status, headers, body = answer
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            lines = ["HTTP/1.1 %d X" % status, "Content-Length: %d" % len(body)]
            lines += ["%s: %s" % kv for kv in headers.items()]
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def job_json(job_id, task="noop", status="queued"):
    """A job object as the server writes it, for ScriptedServer's answers."""
    return {"id": job_id, "task": task, "status": status, "priority": 0, "position": 0, "attempts": 0,
            "created_at": "2026-01-01T00:00:00.000Z", "started_at": None, "finished_at": None,
            "result": None, "error": None, "progress": None}


def problem(status, name, detail="detail"):
    return {"type": "urn:offload:problem:" + name, "title": name, "status": status, "detail": detail}
