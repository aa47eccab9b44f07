#!/usr/bin/env python3
"""bench/connections.py: the connection figures of issue 9, against one offload binary.

  fdcap  The server under `ulimit -n 1024` (soft and hard), 1,100 idle connections held
         for 10 s: the server's CPU (utime+stime over wall time), the log lines it wrote
         in that window, whether a new client is answered meanwhile, and whether one is
         answered after the idle connections close.
  rss    A command task writes 5 MB to stdout as image/png; 500 clients GET its result
         and never read. RSS added 2 s after the requests (under write_timeout), and
         again after write_timeout has passed.

  bench/connections.py --offload build/src/offload [--only fdcap,rss] [--store memory|sqlite]
                       [--rcvbuf BYTES]

Each server listens on 127.0.0.1 port 0 in a temporary folder and is stopped by its pid
(SIGTERM, then SIGKILL after 30 s). Every loop is bounded in count and in time.
"""
import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, offload, config, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="offload-bench-conn-")
        path = os.path.join(self.dir, "offload.toml")
        with open(path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "wb")

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [offload, "serve", "--listen", "127.0.0.1:0", "--threads", "2", "--config", path],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            preexec_fn=limits)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.port is None:
            m = re.search(rb"listening on http://[0-9.]+:(\d+)", open(self.log_path, "rb").read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start: " + open(self.log_path).read())

    def log_lines(self):
        with open(self.log_path, "rb") as f:
            return f.read().count(b"\n")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def request(port, method, target, body=b"", timeout=5.0):
    """One request on a new connection; returns (status or None, body, seconds)."""
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split()[1]) if head.startswith(b"HTTP/") else None
        return status, rest, time.monotonic() - start
    except (socket.timeout, ConnectionError):
        return None, b"", time.monotonic() - start
    finally:
        s.close()


def connect_many(port, n, deadline_s=30, rcvbuf=0):
    conns = []
    until = time.monotonic() + deadline_s
    for _ in range(n):
        if time.monotonic() > until:
            break
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            conns.append(s)
        except OSError:
            pass
    return conns


def fdcap(args):
    server = Server(args.offload, f'store = "{args.store_spec}"\nshutdown_grace = "1s"\n', nofile=1024)
    try:
        pid = server.proc.pid
        conns = connect_many(server.port, 1100)
        time.sleep(1)  # Settle: let the server accept what it will.
        lines0, cpu0, t0 = server.log_lines(), cpu_seconds(pid), time.monotonic()
        time.sleep(10)  # The measurement window.
        cpu, wall, lines = cpu_seconds(pid) - cpu0, time.monotonic() - t0, server.log_lines() - lines0
        during = request(server.port, "GET", "/healthz", timeout=3)
        for s in conns:
            s.close()
        after = (None, b"", 0.0)
        until = time.monotonic() + 10
        while time.monotonic() < until:
            after = request(server.port, "GET", "/healthz", timeout=2)
            if after[0] == 200:
                break
        return {"connections_opened": len(conns),
                "cpu_percent": round(100 * cpu / wall, 1), "log_lines_in_10s": lines,
                "new_client_while_saturated": during[0] if during[0] else "timeout",
                "new_client_after_close": after[0] if after[0] else "timeout"}
    finally:
        server.stop()


def rss(args):
    config = (f'store = "{args.store_spec}"\nshutdown_grace = "1s"\n'
              '[tasks.png5]\ncommand = ["head", "-c", "5000000", "/dev/zero"]\ncontent_type = "image/png"\n')
    server = Server(args.offload, config)
    try:
        pid = server.proc.pid
        status, body, _ = request(server.port, "POST", "/v1/jobs?", json.dumps({"task": "png5"}).encode())
        job = json.loads(body)
        for _ in range(100):  # Up to 10 s.
            status, body, _ = request(server.port, "GET", f"/v1/jobs/{job['id']}?wait=1", timeout=5)
            if json.loads(body)["status"] == "succeeded":
                break
        request(server.port, "GET", f"/v1/jobs/{job['id']}/result", timeout=10)  # Warm the path once.
        time.sleep(0.5)
        base = rss_bytes(pid)
        conns = connect_many(server.port, 500, rcvbuf=args.rcvbuf)
        req = f"GET /v1/jobs/{job['id']}/result HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        for s in conns:
            s.sendall(req)
        time.sleep(2)  # Under write_timeout (10 s): every response is still held.
        held = rss_bytes(pid)
        fds_held = open_fds(pid)
        time.sleep(10)  # Past write_timeout.
        later = rss_bytes(pid)
        fds_later = open_fds(pid)
        for s in conns:
            s.close()
        mib = 1024 * 1024
        return {"clients": len(conns), "rss_base_mib": round(base / mib, 1),
                "rss_added_at_2s_mib": round((held - base) / mib, 1),
                "rss_added_at_12s_mib": round((later - base) / mib, 1),
                "server_fds_at_2s": fds_held, "server_fds_at_12s": fds_later}
    finally:
        server.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--offload", required=True)
    p.add_argument("--only", default="fdcap,rss")
    p.add_argument("--store", default="memory", choices=["memory", "sqlite"])
    p.add_argument("--rcvbuf", type=int, default=0,
                   help="SO_RCVBUF of the rss clients (0: the kernel's default; 4096 keeps the "
                        "kernel from absorbing the result, as a far client with a small window)")
    args = p.parse_args()
    args.offload = os.path.abspath(args.offload)
    args.store_spec = "memory" if args.store == "memory" else "sqlite:./offload.db"
    # The client holds 1,100 sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    out = {"offload": args.offload, "store": args.store, "rcvbuf": args.rcvbuf}
    for name in args.only.split(","):
        out[name] = {"fdcap": fdcap, "rss": rss}[name](args)
        print(json.dumps({name: out[name]}), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
