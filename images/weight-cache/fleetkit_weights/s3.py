"""A small S3 client on the standard library: SigV4 signing, keep-alive connections
per thread, ranged streaming GETs, single and multipart PUTs.

Only credential *discovery* beyond environment variables uses botocore (lazily), so
that IRSA / EKS Pod Identity / IMDS / shared-config credentials work in a pod.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple

from fleetkit_weights.errors import S3Error, TruncatedBody, WeightsError
from fleetkit_weights.httpc import Connection, Headers, LowSpeed, Response, tls_context  # noqa: F401
from fleetkit_weights.options import S3Location, parse_s3_uri  # noqa: F401 - re-exported
from fleetkit_weights.s3req import (  # noqa: F401 - some are re-exported
    EMPTY_SHA256,
    UNSIGNED,
    Credentials,
    default_region,
    encode_target,
    env_credentials,
    object_target,
    sign_v4,
)

if TYPE_CHECKING:
    import ssl

def validate_endpoint_url(url: str) -> str:
    """``url`` without a trailing slash if it is ``http(s)://host[:port][/path]``; ValueError saying why not."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"invalid endpoint URL {url!r} (expected http(s)://host[:port])")
    if any(c.isspace() for c in url):
        raise ValueError(f"invalid endpoint URL {url!r}: it contains whitespace")
    if "@" in parsed.netloc:
        raise ValueError(
            f"invalid endpoint URL {url!r}: no user or password in the URL "
            "(credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS chain)"
        )
    if parsed.query or parsed.fragment:
        raise ValueError(f"invalid endpoint URL {url!r}: no query or fragment (expected http(s)://host[:port])")
    host = parsed.hostname
    if not host.startswith("[") and ":" not in host and not all(c.isalnum() or c in ".-_" for c in host):
        raise ValueError(f"invalid host {host!r} in endpoint URL {url!r}")
    try:
        parsed.port
    except ValueError:
        raise ValueError(f"invalid port in endpoint URL {url!r}") from None
    return url.rstrip("/")


def endpoint_parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, base path) of a validated endpoint URL."""
    u = urllib.parse.urlsplit(url)
    return u.scheme, u.hostname or "", u.port or (443 if u.scheme == "https" else 80), u.path.rstrip("/")


# --------------------------------------------------------------------------- credentials


class CredentialResolver:
    """Environment first (cheap); otherwise botocore's full provider chain, refreshed as needed."""

    def __init__(self, anonymous: bool = False):
        self.anonymous = anonymous
        self._lock = threading.Lock()
        self._botocore_creds = None
        self._resolved = False

    def get(self) -> Credentials | None:
        if self.anonymous:
            return None
        creds = env_credentials()
        if creds is not None:
            return creds
        with self._lock:
            if not self._resolved:
                self._botocore_creds = _botocore_credentials()
                self._resolved = True
            creds = self._botocore_creds
        if creds is None:
            raise WeightsError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (e.g. from a "
                "Kubernetes Secret), use IRSA / EKS Pod Identity / instance profile, or pass --no-sign-request"
            )
        frozen = creds.get_frozen_credentials()  # refreshes temporary credentials when due
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def _botocore_credentials() -> Any:  # botocore's Credentials (botocore has no type hints)
    try:
        import botocore.session  # noqa: PLC0415 - deliberately lazy
    except ImportError:
        return None
    return botocore.session.get_session().get_credentials()


# --------------------------------------------------------------------------- client


class ObjectInfo(NamedTuple):
    size: int
    etag: str


class ObjectSizeMismatch(WeightsError):
    def __init__(self, size: int):
        self.size = size
        super().__init__(f"object is {size} bytes")


def _error_from_response(status: int, body: bytes, what: str) -> S3Error:
    import xml.etree.ElementTree as ET  # noqa: PLC0415 - only on the error path

    code, message = "", ""
    if body:
        try:
            root = ET.fromstring(body)
            for el in root.iter():
                tag = el.tag.rsplit("}", 1)[-1]
                if tag == "Code" and not code:
                    code = (el.text or "").strip()
                elif tag == "Message" and not message:
                    message = (el.text or "").strip()
        except ET.ParseError:
            message = body[:200].decode("utf-8", "replace").strip()
    if not code:
        code = {404: "NoSuchKey", 403: "AccessDenied", 412: "PreconditionFailed", 503: "SlowDown"}.get(status, "")
    return S3Error(status, code, message, what)


class S3Client:
    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        anonymous: bool = False,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        speed_limit: int = 0,
        speed_time: float = 0.0,
    ):
        endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        self.custom_endpoint = validate_endpoint_url(endpoint_url) if endpoint_url else None
        self._endpoint = endpoint_parts(self.custom_endpoint) if self.custom_endpoint else None
        self.region = region or default_region()
        self.addressing_style = addressing_style
        self.creds = CredentialResolver(anonymous)
        self.connect_timeout = connect_timeout
        # Low-speed limit of ranged GETs (curl's semantics): abandon a response that delivers fewer
        # than speed_limit bytes/s averaged over speed_time seconds. A read that gets nothing at all
        # for speed_time is below any limit, so the socket timeout is at most speed_time then.
        self.speed_limit = speed_limit if speed_time > 0 else 0
        self.speed_time = speed_time
        self.read_timeout = min(read_timeout, speed_time) if self.speed_limit else read_timeout
        self._bucket_region: dict[str, str] = {}
        self._local = threading.local()
        self._ssl_ctx: ssl.SSLContext | None = None  # ssl is imported only for https endpoints
        self._all_conns: list[Connection] = []
        self._conns_lock = threading.Lock()

    # -- addressing ---------------------------------------------------------
    def _target(self, bucket: str, key: str) -> tuple[str, str, int, str, str]:
        """(scheme, host, port, host_header, path) for an object (key may be '')."""
        return object_target(self._endpoint, self._bucket_region.get(bucket, self.region), self.addressing_style,
                             bucket, key)

    def _conn(self, scheme: str, host: str, port: int) -> Connection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (scheme, host, port)
        conn = conns.get(key)
        if conn is None:
            if scheme == "https":
                if self._ssl_ctx is None:
                    self._ssl_ctx = tls_context()
                conn = Connection(host, port, self._ssl_ctx, self.connect_timeout, self.read_timeout)
            else:
                conn = Connection(host, port, None, self.connect_timeout, self.read_timeout)
            conns[key] = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def _drop_conn(self, scheme: str, host: str, port: int) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop((scheme, host, port), None)
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """Shut down every open connection (wakes threads blocked in recv)."""
        with self._conns_lock:
            conns = list(self._all_conns)
        for c in conns:
            c.abort()

    def close(self) -> None:
        with self._conns_lock:
            for c in self._all_conns:
                c.close()
            self._all_conns.clear()

    # -- core request -------------------------------------------------------
    def _open(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        payload_sha256: str | None = None,
        body_writer: Callable[[Connection], None] | None = None,
        content_length: int | None = None,
        what: str = "",
    ) -> tuple[Response, tuple[str, str, int]]:
        """Send a request and return the (unread) response. Raises S3Error for error statuses."""
        for _redirect in range(2):
            scheme, host, port, host_header, path = self._target(bucket, key)
            query = dict(query or {})
            hdrs = {"Host": host_header}
            hdrs.update(headers or {})
            if body is not None:
                content_length = len(body)
                if payload_sha256 is None:
                    payload_sha256 = hashlib.sha256(body).hexdigest()
            if content_length is not None:
                hdrs["Content-Length"] = str(content_length)
            creds = self.creds.get()
            if creds is not None:
                sign_v4(
                    method,
                    host_header,
                    path,
                    query,
                    hdrs,
                    payload_sha256 or (EMPTY_SHA256 if body_writer is None else UNSIGNED),
                    creds,
                    self._bucket_region.get(bucket, self.region),
                )
            url = encode_target(path, query)
            conn = self._conn(scheme, host, port)
            ckey = (scheme, host, port)
            try:
                resp = conn.request(method, url, hdrs, body, body_writer)
            except BaseException:
                self._drop_conn(*ckey)
                raise
            if resp.status < 300 or resp.status == 304:
                return resp, ckey
            try:
                err_body = resp.read()
            except BaseException:
                self._drop_conn(*ckey)
                raise
            region = resp.getheader("x-amz-bucket-region")
            if (
                resp.status in (301, 307, 400)
                and region
                and region != self._bucket_region.get(bucket, self.region)
                and not self.custom_endpoint
            ):
                self._bucket_region[bucket] = region
                continue
            if resp.will_close:
                self._drop_conn(*ckey)
            raise _error_from_response(resp.status, err_body, what or f"{method} s3://{bucket}/{key}")
        raise WeightsError(f"{what}: too many region redirects")

    def request(self, method: str, bucket: str, key: str = "", **kw: Any) -> tuple[int, Headers, bytes]:
        resp, ckey = self._open(method, bucket, key, **kw)
        try:
            data = resp.read()
        except BaseException:
            self._drop_conn(*ckey)
            raise
        if resp.will_close:
            self._drop_conn(*ckey)
        return resp.status, resp.headers, data

    # -- operations ---------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        _, headers, data = self.request("GET", bucket, key, what=f"GET s3://{bucket}/{key}")
        expected = headers.get("Content-Length")
        if expected is not None and int(expected) != len(data):
            raise TruncatedBody(f"GET s3://{bucket}/{key}: got {len(data)} of {expected} bytes")
        return data, (headers.get("ETag") or "").strip('"')

    def head(self, bucket: str, key: str) -> ObjectInfo:
        _, headers, _ = self.request("HEAD", bucket, key, what=f"HEAD s3://{bucket}/{key}")
        return ObjectInfo(int(headers.get("Content-Length") or 0), (headers.get("ETag") or "").strip('"'))

    def get_range_into(
        self,
        bucket: str,
        key: str,
        start: int,
        length: int,
        sink: Callable[[memoryview], None],
        buf: bytearray | memoryview,
        etag: str | None = None,
        object_size: int | None = None,
    ) -> None:
        """GET bytes [start, start+length) and feed them to sink() in buffer-sized chunks.

        sink() is called with a memoryview over ``buf`` that is reused afterwards. Raises
        TruncatedBody if the connection ends early; partial data already passed to sink()
        stays valid (callers track how much they received and resume from there).
        """
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        if etag:
            headers["If-Match"] = f'"{etag}"'
        what = f"GET s3://{bucket}/{key} bytes {start}-{start + length - 1}"
        resp, ckey = self._open("GET", bucket, key, headers=headers, what=what)
        try:
            if object_size is not None:
                total = (resp.getheader("Content-Range") or "").rpartition("/")[2]
                if resp.status == 206 and total.isdigit() and int(total) != object_size:
                    raise ObjectSizeMismatch(int(total))
                if resp.status == 200 and resp.length is not None and resp.length != object_size:
                    raise ObjectSizeMismatch(resp.length)
            if resp.status == 200 and not (start == 0 and resp.length == length):
                raise S3Error(resp.status, "RangeIgnored", "server ignored the Range header", what)
            if resp.length is not None and resp.length != length:
                raise S3Error(resp.status, "BadRange", f"expected {length} bytes, server sends {resp.length}", what)
            # The buffer is filled completely before sink() sees it, so every sink() call but
            # the last of a range is len(buf) bytes at a buffer-aligned offset (what O_DIRECT
            # writes need, and fewer, larger pwrites in any case).
            view = memoryview(buf)
            remaining = length
            reader = resp._conn.reader
            if self.speed_limit and reader is not None:
                reader.arm(self.speed_limit, self.speed_time)
            while remaining:
                want = min(remaining, len(buf))
                filled = 0
                while filled < want:
                    try:
                        n = resp.readinto(view[filled:want])
                    except TimeoutError as exc:
                        if filled:
                            sink(view[:filled])  # keep what arrived; the caller resumes after it
                        if isinstance(exc, LowSpeed):
                            raise LowSpeed(f"{what}: {exc}") from None
                        if self.speed_limit:
                            raise LowSpeed(f"{what}: no data for {self.speed_time:g}s, below the low-speed "
                                           f"limit of {self.speed_limit} B/s") from None
                        raise
                    if not n:
                        if filled:
                            sink(view[:filled])  # keep what arrived; the caller resumes after it
                        got = length - remaining + filled
                        raise TruncatedBody(f"{what}: connection closed after {got} of {length} bytes")
                    filled += n
                sink(view[:want])
                remaining -= want
            if reader is not None:
                reader.arm(0, 0.0)
        except BaseException:
            self._drop_conn(*ckey)
            raise
        if resp.will_close:
            self._drop_conn(*ckey)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        _, headers, _ = self.request(
            "PUT", bucket, key, body=data, headers={"Content-Type": content_type}, what=f"PUT s3://{bucket}/{key}"
        )
        return (headers.get("ETag") or "").strip('"')

    def put_file_range(
        self, bucket: str, key: str, fd: int, offset: int, length: int, query: Mapping[str, str] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> str:
        """PUT ``length`` bytes of ``fd`` from ``offset`` (streamed, UNSIGNED-PAYLOAD)."""

        def writer(conn: Connection) -> None:
            pos, end = offset, offset + length
            while pos < end:
                chunk = os.pread(fd, min(1 << 20, end - pos), pos)
                if not chunk:
                    raise WeightsError(f"local file shrank while uploading to s3://{bucket}/{key}")
                conn.send(chunk)
                pos += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))

        what = f"PUT s3://{bucket}/{key}" + (f" part {query['partNumber']}" if query and "partNumber" in query else "")
        _, headers, _ = self.request(
            "PUT",
            bucket,
            key,
            query=query,
            headers={"Content-Type": "application/octet-stream"},
            body_writer=writer,
            content_length=length,
            payload_sha256=UNSIGNED,
            what=what,
        )
        return (headers.get("ETag") or "").strip('"')

    def create_multipart(self, bucket: str, key: str) -> str:
        _, _, data = self.request("POST", bucket, key, query={"uploads": ""}, what=f"CreateMultipartUpload s3://{bucket}/{key}")
        import xml.etree.ElementTree as ET  # noqa: PLC0415

        root = ET.fromstring(data)
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == "UploadId":
                return (el.text or "").strip()
        raise WeightsError(f"CreateMultipartUpload s3://{bucket}/{key}: no UploadId in response")

    def complete_multipart(self, bucket: str, key: str, upload_id: str, etags: Iterable[tuple[int, str]]) -> None:
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{e}\"</ETag></Part>" for n, e in etags)
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        _, _, data = self.request(
            "POST", bucket, key, query={"uploadId": upload_id}, body=body,
            headers={"Content-Type": "application/xml"}, what=f"CompleteMultipartUpload s3://{bucket}/{key}",
        )
        # S3 can answer 200 with an <Error> document for CompleteMultipartUpload.
        if b"<Error>" in data[:512]:
            raise _error_from_response(500, data, f"CompleteMultipartUpload s3://{bucket}/{key}")

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self.request("DELETE", bucket, key, query={"uploadId": upload_id}, what=f"AbortMultipartUpload s3://{bucket}/{key}")

    def delete(self, bucket: str, key: str) -> None:
        self.request("DELETE", bucket, key, what=f"DELETE s3://{bucket}/{key}")
