"""Helpers for the weight-cache agent tests: a real S3-compatible HTTP server (moto's
standalone server on 127.0.0.1), a fault-injecting HTTP proxy in front of it, and
helpers to run the CLI in-process or as a subprocess. Everything is offline."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

AGENT_SRC = Path(__file__).resolve().parents[2] / "images" / "weight-cache"
if str(AGENT_SRC) not in sys.path:
    sys.path.insert(0, str(AGENT_SRC))

from fleetkit_weights.cli import main  # noqa: E402
from fleetkit_weights.fastpath import main as fast_main  # noqa: E402

CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # fast, bounded retries for tests
    "FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS": "0.02",
    "FLEETKIT_WEIGHTS_RETRY_MAX_SECONDS": "0.2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def make_model(root: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, bytes]:
    """Write files of the given sizes with deterministic pseudo-random content."""
    out = {}
    for i, (rel, size) in enumerate(sorted(sizes.items())):
        block = hashlib.sha256(f"{seed}:{i}:{rel}".encode()).digest() * 2048  # 64 KiB
        data = (block * (size // len(block) + 1))[:size]
        # make every 64 KiB block distinct so misplaced ranges are detected
        buf = bytearray(data)
        for off in range(0, size, len(block)):
            buf[off : off + 8] = (off + seed).to_bytes(8, "little")[: max(0, min(8, size - off))]
        data = bytes(buf)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[rel] = data
    return out


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@contextlib.contextmanager
def _swap_std():
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = old


class Result:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def cli(*argv: str) -> Result:
    """Run fleetkit_weights.cli.main in-process (as the kit does)."""
    with _swap_std() as (out, err):
        rc = main([str(a) for a in argv])
    return Result(rc, out.getvalue(), err.getvalue())


def fast(*argv: str) -> Result:
    """Run the console script's entry point (warm fast path, else the full CLI) in-process."""
    with _swap_std() as (out, err):
        rc = fast_main([str(a) for a in argv])
    return Result(rc, out.getvalue(), err.getvalue())


def agent_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "fleetkit_weights", *map(str, argv)]


def agent_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(AGENT_SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_agent(*argv: str, timeout: float = 120, **env: str) -> Result:
    proc = subprocess.run(agent_cmd(*argv), env=agent_env(**env), capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------- fault proxy


class FaultProxy:
    """An HTTP/1.1 proxy in front of the S3 server that can inject failures.

    ``plan(method, path, headers) -> fault | None`` picks a fault per request:
    "503" (SlowDown), "500" (InternalError), "reset" (TCP RST before any answer),
    "reset_mid" (RST after half the body), "truncate" (Content-Length promised, half
    sent, connection closed), "trickle" (the body at ``trickle_rate`` bytes/s), "flip"
    or "flip:BIT" (one bit of the body inverted: the middle one, or bit BIT counted from
    the first byte's least significant bit). ``rate`` throttles response bodies (bytes/s).
    Counts requests and body bytes sent for GETs of model data.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.plan: Callable[[str, str, dict], str | None] = lambda m, p, h: None
        self.rate: float | None = None
        self.trickle_rate = 20_000.0
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.data_bytes = 0  # body bytes of GETs excluding the manifest
        self.injected: dict[str, int] = {}
        self.generation = 0  # bytes of requests from before reset_counters() are not counted
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                self._proxy()

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

            def _reset(self):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _proxy(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                with proxy.lock:
                    gen = proxy.generation
                    proxy.requests.append((self.command, self.path))
                    fault = proxy.plan(self.command, self.path, headers)
                    if fault:
                        proxy.injected[fault] = proxy.injected.get(fault, 0) + 1
                if fault == "reset":
                    return self._reset()
                if fault in ("503", "500"):
                    code = "SlowDown" if fault == "503" else "InternalError"
                    payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                is_data = self.command == "GET" and "fleetkit-manifest.json" not in self.path and "?" not in self.path
                if fault in ("truncate", "reset_mid") and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    with proxy.lock:
                        if is_data and gen == proxy.generation:
                            proxy.data_bytes += len(data) // 2
                    if fault == "reset_mid":
                        return self._reset()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_WR)
                    return
                if fault and fault.startswith("flip") and data:
                    bit = int(fault.partition(":")[2] or len(data) // 2 * 8)
                    flipped = bytearray(data)
                    flipped[bit // 8] ^= 1 << (bit % 8)
                    data = bytes(flipped)
                step = 4096 if fault == "trickle" else 64 * 1024
                rate = proxy.trickle_rate if fault == "trickle" else proxy.rate
                for off in range(0, len(data), step):
                    piece = data[off : off + step]
                    self.wfile.write(piece)
                    if fault == "trickle":
                        self.wfile.flush()
                    if is_data:
                        with proxy.lock:
                            if gen == proxy.generation:
                                proxy.data_bytes += len(piece)
                    if rate:
                        time.sleep(len(piece) / rate)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # clients hanging up on injected faults are expected; keep stderr clean

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def data_gets(self) -> list[str]:
        with self.lock:
            return [p for m, p in self.requests if m == "GET" and "fleetkit-manifest.json" not in p and "?" not in p]

    def reset_counters(self) -> None:
        with self.lock:
            self.generation += 1
            self.requests.clear()
            self.data_bytes = 0
            self.injected.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
