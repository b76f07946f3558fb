"""Real servers for the tests: redis-server (or $BRISK_TEST_SERVER, e.g. valkey-server) on free
loopback ports, each in its own directory, and a listener that never answers. Waiting is
polling with a deadline, never a bare sleep."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple


def server_program() -> str:
    return os.environ.get("BRISK_TEST_SERVER") or "redis-server"


def cli_program() -> str:
    return os.environ.get("BRISK_TEST_CLI") or "redis-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Server:
    """One server process; ``stop()`` kills it and removes its directory."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.dir = tempfile.mkdtemp(prefix="brisk-py-")
        for _ in range(5):  # a port picked free may be taken before the server binds it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [server_program(), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", self.dir, "--save", "", "--appendonly", "no",
                 "--logfile", os.path.join(self.dir, "server.log"), *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                wait_until(lambda: self.proc.poll() is not None or self._answers(), 10,
                           f"{server_program()} on port {self.port}")
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
                continue
            if self.proc.poll() is None:
                return
        raise RuntimeError(f"could not start {server_program()} (see {self.dir}/server.log)")

    def _answers(self) -> bool:
        try:
            return "PONG" in self.cli("PING")
        except Exception:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run([cli_program(), "-h", "127.0.0.1", "-p", str(self.port), *args],
                             capture_output=True, text=True, timeout=30)
        return out.stdout

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """Three primaries (no replicas), made with ``redis-cli --cluster create``."""

    def __init__(self) -> None:
        self.nodes: List[Server] = []
        try:
            for _ in range(3):
                self.nodes.append(Server(["--cluster-enabled", "yes",
                                          "--cluster-config-file", "nodes.conf",
                                          "--cluster-node-timeout", "1000"]))
            out = subprocess.run(
                [cli_program(), "--cluster", "create",
                 *[f"127.0.0.1:{n.port}" for n in self.nodes],
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"--cluster create failed: {out.stdout}{out.stderr}")
            wait_until(lambda: all("cluster_state:ok" in n.cli("CLUSTER", "INFO") and
                                   "cluster_known_nodes:3" in n.cli("CLUSTER", "INFO")
                                   for n in self.nodes), 60, "a healthy cluster")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


class SilentServer:
    """Accepts connections and never answers (for timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: List[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
            except OSError:
                continue

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=10)
        for c in self.accepted:
            c.close()
        self.sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_port()


def header_path() -> Optional[str]:
    """brisk.h of the repository the tests run from, if they do."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "brisk.h")
    return path if os.path.exists(path) else None


def otlp_receiver_script() -> Optional[str]:
    """ctests/otlp_receiver.py of the repository the tests run from, if they do."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "ctests", "otlp_receiver.py")
    return path if os.path.exists(path) else None


class OtlpReceiver:
    """The repository's OTLP/HTTP receiver (ctests/otlp_receiver.py) on a free loopback port:
    it answers every POST with 200 and logs "<path> <content-type> <bytes>" per request."""

    def __init__(self, script: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="brisk-py-otlp-")
        self.port_file = os.path.join(self.dir, "port")
        self.log_file = os.path.join(self.dir, "log")
        self.proc = subprocess.Popen([sys.executable, script, self.port_file, self.log_file],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: self.proc.poll() is not None or os.path.exists(self.port_file),
                       30, "otlp_receiver.py to write its port")
            if self.proc.poll() is not None:
                raise RuntimeError(f"otlp_receiver.py exited with {self.proc.returncode}")
            with open(self.port_file, encoding="utf-8") as f:
                self.port = int(f.read())
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> List[Tuple[str, str, int]]:
        """(path, content type, body bytes) of every POST so far."""
        if not os.path.exists(self.log_file):
            return []
        with open(self.log_file, encoding="utf-8") as f:
            rows = [line.split() for line in f if line.strip()]
        return [(r[0], r[1], int(r[2])) for r in rows if len(r) == 3]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class OtlpBodyRecorder:
    """An OTLP/HTTP receiver in this process that keeps every request's body (otlp_receiver.py
    logs only sizes), for checking what an export carries."""

    def __init__(self) -> None:
        import http.server

        bodies: List[Tuple[str, bytes]] = []
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    bodies.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._bodies, self._lock = bodies, lock
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, path: str) -> List[bytes]:
        with self._lock:
            return [b for p, b in self._bodies if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
