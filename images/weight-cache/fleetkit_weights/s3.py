"""A small S3 client on the standard library: SigV4 signing, keep-alive connections
per thread, ranged streaming GETs, single and multipart PUTs.

Only credential *discovery* beyond environment variables uses botocore (lazily), so
that IRSA / EKS Pod Identity / IMDS / shared-config credentials work in a pod.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import threading
import time
import urllib.parse
from typing import Callable, Iterable, Mapping, NamedTuple

from fleetkit_weights.errors import S3Error, TruncatedBody, WeightsError
from fleetkit_weights.httpc import Connection, Headers, Response

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_DNS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


# --------------------------------------------------------------------------- URIs


class S3Location(NamedTuple):
    bucket: str
    prefix: str  # no leading/trailing slash; "" means bucket root

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_s3_uri(uri: str) -> S3Location:
    """Parse ``s3://bucket[/prefix]``; raise a one-line ValueError on anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r} (expected s3://bucket/prefix)")
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"missing bucket name in {uri!r}")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(f"invalid bucket name {bucket!r} in {uri!r}")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid prefix in {uri!r} (empty, '.' or '..' path segment)")
    if any(ch in prefix for ch in "\0\r\n"):
        raise ValueError(f"invalid characters in {uri!r}")
    return S3Location(bucket, prefix)


def validate_endpoint_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"invalid endpoint URL {url!r} (expected http(s)://host[:port])")
    try:
        parsed.port
    except ValueError:
        raise ValueError(f"invalid port in endpoint URL {url!r}") from None
    return url.rstrip("/")


# --------------------------------------------------------------------------- credentials


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None


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
        ak, sk = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if ak and sk:
            return Credentials(ak, sk, os.environ.get("AWS_SESSION_TOKEN") or None)
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


def _botocore_credentials():
    try:
        import botocore.session  # noqa: PLC0415 - deliberately lazy
    except ImportError:
        return None
    return botocore.session.get_session().get_credentials()


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


# --------------------------------------------------------------------------- SigV4


def _quote(value: str, safe: str = "/") -> str:
    return urllib.parse.quote(value, safe=safe + "~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


_key_cache: dict[tuple[str, str, str], bytes] = {}


def _signing_key(secret: str, date: str, region: str) -> bytes:
    cached = _key_cache.get((secret, date, region))
    if cached is None:
        k = _hmac(("AWS4" + secret).encode(), date)
        k = _hmac(k, region)
        k = _hmac(k, "s3")
        cached = _hmac(k, "aws4_request")
        _key_cache[(secret, date, region)] = cached
    return cached


def sign_v4(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    creds: Credentials,
    region: str,
    now: float | None = None,
) -> None:
    """Add x-amz-date, x-amz-content-sha256, (x-amz-security-token) and Authorization to headers."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    date = amz_date[:8]
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_sha256
    if creds.token:
        headers["x-amz-security-token"] = creds.token
    signed = {"host": host}
    for k, v in headers.items():
        lk = k.lower()
        if lk.startswith("x-amz-") or lk in ("range", "content-md5", "if-match"):
            signed[lk] = " ".join(str(v).strip().split())
    names = sorted(signed)
    canonical_query = "&".join(
        f"{_quote(k, '')}={_quote(v, '')}" for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [
            method,
            _quote(path),
            canonical_query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    sig = hmac.new(_signing_key(creds.secret_key, date, region), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={sig}"
    )


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
    ):
        endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        self.custom_endpoint = validate_endpoint_url(endpoint_url) if endpoint_url else None
        self.region = region or default_region()
        self.addressing_style = addressing_style
        self.creds = CredentialResolver(anonymous)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._bucket_region: dict[str, str] = {}
        self._local = threading.local()
        self._ssl_ctx = None  # ssl is imported only for https endpoints
        self._all_conns: list[Connection] = []
        self._conns_lock = threading.Lock()

    # -- addressing ---------------------------------------------------------
    def _target(self, bucket: str, key: str) -> tuple[str, str, int, str, str]:
        """(scheme, host, port, host_header, path) for an object (key may be '')."""
        region = self._bucket_region.get(bucket, self.region)
        if self.custom_endpoint:
            u = urllib.parse.urlsplit(self.custom_endpoint)
            scheme, host = u.scheme, u.hostname or ""
            port = u.port or (443 if scheme == "https" else 80)
            base = u.path.rstrip("/")
            virtual = self.addressing_style == "virtual"
        else:
            scheme, host, port, base = "https", f"s3.{region}.amazonaws.com", 443, ""
            virtual = self.addressing_style == "virtual" or (
                self.addressing_style == "auto" and bool(_DNS_BUCKET_RE.match(bucket))
            )
        if virtual:
            host = f"{bucket}.{host}"
            path = f"{base}/{key}"
        else:
            path = f"{base}/{bucket}/{key}" if key else f"{base}/{bucket}"
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        return scheme, host, port, host_header, path

    def _conn(self, scheme: str, host: str, port: int) -> Connection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (scheme, host, port)
        conn = conns.get(key)
        if conn is None:
            if scheme == "https":
                import ssl  # noqa: PLC0415

                if self._ssl_ctx is None:
                    self._ssl_ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
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
            url = _quote(path)
            if query:
                url += "?" + "&".join(
                    f"{_quote(k, '')}={_quote(v, '')}" if v != "" else _quote(k, "") for k, v in sorted(query.items())
                )
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

    def request(self, method: str, bucket: str, key: str = "", **kw) -> tuple[int, Headers, bytes]:
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
            while remaining:
                want = min(remaining, len(buf))
                filled = 0
                while filled < want:
                    n = resp.readinto(view[filled:want])
                    if not n:
                        if filled:
                            sink(view[:filled])  # keep what arrived; the caller resumes after it
                        got = length - remaining + filled
                        raise TruncatedBody(f"{what}: connection closed after {got} of {length} bytes")
                    filled += n
                sink(view[:want])
                remaining -= want
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
