"""A minimal HTTP/1.1 client connection: keep-alive, Content-Length and chunked bodies,
readinto() straight into the caller's buffer.

It exists instead of http.client because a warm `sync` is a handful of milliseconds of
work, and importing http.client (with the email package behind it) would cost more than
the whole request. For the same reason it uses the C `_socket` module (the `socket` module
pulls in enum, selectors and array) and imports ssl only for https endpoints.
"""

from __future__ import annotations

import _socket
import io
from time import monotonic as _monotonic

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Callable

    from _typeshed import WriteableBuffer

_NO_BODY_STATUSES = (204, 304)


class ProtocolError(ConnectionError):
    """The peer sent something that is not HTTP/1.x, or hung up mid-response (retryable)."""


class Headers(dict):
    """Response headers, looked up case-insensitively (stored lower-cased)."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response:
    def __init__(self, conn: "Connection", method: str):
        self._conn = conn
        rfile = conn.rfile
        if rfile is None:
            raise ProtocolError("the connection is closed")
        self._rfile = rfile
        while True:
            line = rfile.readline(65537)
            if not line:
                raise ProtocolError("connection closed before a response arrived")
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"malformed status line {line[:80]!r}")
            self.status = int(parts[1])
            self.version = parts[0]
            self.headers = Headers()
            while True:
                h = rfile.readline(65537)
                if not h:
                    raise ProtocolError("connection closed inside the response headers")
                if h in (b"\r\n", b"\n"):
                    break
                name, sep, value = h.decode("latin-1").partition(":")
                if not sep:
                    raise ProtocolError(f"malformed header line {h[:80]!r}")
                key = name.strip().lower()
                value = value.strip()
                self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
            if not 100 <= self.status < 200:
                break  # skip interim responses (100 Continue)
        connection = (self.headers.get("connection") or "").lower()
        self.will_close = "close" in connection or (self.version == b"HTTP/1.0" and "keep-alive" not in connection)
        self.chunked = "chunked" in (self.headers.get("transfer-encoding") or "").lower()
        self._chunk_left = 0
        self._eof = False
        if method == "HEAD" or self.status in _NO_BODY_STATUSES:
            self.length: int | None = 0
            self.chunked = False
        elif self.chunked:
            self.length = None
        elif self.headers.get("content-length") is not None:
            try:
                self.length = int(self.headers["content-length"])
            except ValueError:
                raise ProtocolError("malformed Content-Length") from None
        else:
            self.length = None  # body runs until the server closes the connection
            self.will_close = True
        self.reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def complete(self) -> bool:
        return self.length == 0 or self._eof

    def readinto(self, b: memoryview | bytearray) -> int:
        """Read up to len(b) body bytes into b; 0 means the body (or the connection) ended."""
        if self.chunked:
            return self._readinto_chunked(b)
        if self.length is not None:
            if self.length == 0:
                return 0
            if len(b) > self.length:
                b = memoryview(b)[: self.length]
        n = self._rfile.readinto(b)
        if self.length is not None:
            self.length -= n
        elif not n:
            self._eof = True
        return n

    def _readinto_chunked(self, b: memoryview | bytearray) -> int:
        if self._eof:
            return 0
        rfile = self._rfile
        if self._chunk_left == 0:
            line = rfile.readline(1024)
            if not line:
                return 0
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"malformed chunk size {line[:40]!r}") from None
            if self._chunk_left == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._eof = True
                return 0
        view = memoryview(b)[: min(len(b), self._chunk_left)]
        n = rfile.readinto(view)
        if not n:
            return 0
        self._chunk_left -= n
        if self._chunk_left == 0:
            rfile.readline(3)  # CRLF after the chunk
        return n

    def read(self) -> bytes:
        """The rest of the body. Raises ProtocolError if it ends early."""
        out = bytearray()
        buf = bytearray(64 * 1024)
        view = memoryview(buf)
        while not self.complete:
            n = self.readinto(view)
            if not n:
                if self.length is None and not self.chunked:
                    break  # read-until-close body
                raise ProtocolError(f"response body ended early ({len(out)} bytes read)")
            out += view[:n]
        return bytes(out)


def tls_context() -> ssl.SSLContext:
    """The TLS context for https endpoints: system CAs, or $AWS_CA_BUNDLE (ssl imported only here)."""
    import os  # noqa: PLC0415
    import ssl  # noqa: PLC0415

    return ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)


class LowSpeed(TimeoutError):
    """A response body arrived below the low-speed limit for the low-speed time (curl's
    --speed-limit / --speed-time): the caller drops the connection and asks again (retryable)."""


class _SocketReader(io.RawIOBase):
    """Unbuffered reads from a socket, for io.BufferedReader (what socket.makefile does).

    While armed with a low-speed limit, every receive is counted: when a window of ``window``
    seconds ends with fewer than ``limit`` bytes/s, LowSpeed is raised. It is checked here, per
    receive, because BufferedReader.readinto keeps receiving until the caller's buffer is full."""

    def __init__(self, sock: _socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.limit = 0
        self.window = 0.0
        self._t0 = 0.0
        self._got = 0

    def arm(self, limit: int, window: float) -> None:
        self.limit, self.window = (limit, window) if limit and window > 0 else (0, 0.0)
        self._t0, self._got = _monotonic(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        n = self._sock.recv_into(b)
        if self.limit:
            self._got += n
            now = _monotonic()
            if now - self._t0 >= self.window:
                if self._got < self.limit * (now - self._t0):
                    rate = self._got / (now - self._t0)
                    self.limit = 0
                    raise LowSpeed(f"{rate:.0f} B/s for {now - self._t0:.1f}s, below the low-speed limit")
                self._t0, self._got = now, 0
        return n


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """Like socket.create_connection: try each address getaddrinfo returns, first success wins."""
    err: OSError | None = None
    # An ASCII host is passed as bytes: a str would make getaddrinfo import the idna codec.
    name = host.encode("ascii") if host.isascii() else host
    for family, type_, proto, _canon, addr in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            err = exc
            sock.close()
    raise err if err is not None else OSError(f"getaddrinfo returned no addresses for {host}")


class Connection:
    def __init__(self, host: str, port: int, tls_context: ssl.SSLContext | None = None,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0):
        self.host, self.port = host, port
        self.tls_context = tls_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.sock: _socket.socket | None = None
        self.reader: _SocketReader | None = None
        self.rfile: io.BufferedReader | None = None

    def connect(self) -> None:
        try:
            sock = _connect(self.host, self.port, self.connect_timeout)
        except OSError as exc:
            # same type (retry classification keeps working), message naming the endpoint
            url = f"{'https' if self.tls_context is not None else 'http'}://{self.host}:{self.port}"
            raise type(exc)(exc.errno, f"{exc.strerror or exc} (endpoint {url})") from exc
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self.tls_context is not None:
                import socket  # noqa: PLC0415 - ssl needs a socket.socket (and imports socket anyway)

                sock = socket.socket(fileno=sock.detach())
                sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = _SocketReader(sock)
        self.rfile = io.BufferedReader(self.reader, 256 * 1024)

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None = None,
        body_writer: Callable[["Connection"], None] | None = None,
    ) -> Response:
        if self.sock is None:
            self.connect()
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        assert self.sock is not None
        if body:
            self.sock.sendall(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                self.sock.sendall(body)
        else:
            self.sock.sendall(head)
            if body_writer is not None:
                body_writer(self)
        return Response(self, method)

    def send(self, data: bytes | memoryview) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def close(self) -> None:
        if self.rfile is not None:
            try:
                self.rfile.close()
            except OSError:
                pass
            self.rfile = None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def abort(self) -> None:
        """Wake a thread blocked reading this connection (used when cancelling)."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
