"""The parts of an S3 request that need no network code: bucket addressing, SigV4 signing
and the encoded request target.

Both the full client (s3.py) and the warm fast path (fastpath.py) build requests with these
functions. This module imports only built-in and C modules: no hashlib (it loads OpenSSL
just to sign a few hundred bytes), hmac, urllib.parse or re.
"""

from __future__ import annotations

import os
import time

try:  # the small C sha256 that ships with CPython; hashlib's OpenSSL one is only needed for bulk data
    from _sha2 import sha256  # Python >= 3.12
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        from hashlib import sha256

UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = sha256(b"").hexdigest()

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNRESERVED = frozenset((_ALNUM + "-_.~").encode())
_DNS_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_safe_sets: dict[str, frozenset[int]] = {}


def quote(value: str, safe: str = "/") -> str:
    """Percent-encode UTF-8 bytes outside A-Z a-z 0-9 - _ . ~ (and ``safe``), as SigV4 requires."""
    ok = _safe_sets.get(safe)
    if ok is None:
        ok = _safe_sets[safe] = _UNRESERVED | frozenset(safe.encode())
    raw = value.encode()
    if all(b in ok for b in raw):
        return value
    return "".join(chr(b) if b in ok else f"%{b:02X}" for b in raw)


def encode_target(path: str, query: dict[str, str] | None = None) -> str:
    """The request target: quoted path plus the query in sorted order (``k`` alone for an empty value)."""
    target = quote(path)
    if query:
        target += "?" + "&".join(
            f"{quote(k, '')}={quote(v, '')}" if v != "" else quote(k, "") for k, v in sorted(query.items())
        )
    return target


# --------------------------------------------------------------------------- addressing


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def is_dns_bucket(bucket: str) -> bool:
    """True if the bucket name can be a DNS label (virtual-hosted addressing on AWS)."""
    return (
        3 <= len(bucket) <= 63
        and all(c in _DNS_BUCKET_CHARS for c in bucket)
        and bucket[0] != "-"
        and bucket[-1] != "-"
    )


def object_target(
    endpoint: tuple[str, str, int, str] | None, region: str, style: str, bucket: str, key: str
) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, host_header, path) of an object (key may be "").

    ``endpoint`` is (scheme, host, port, base path) of a custom endpoint, or None for AWS S3
    in ``region``. ``style`` is auto (virtual on AWS for DNS-safe names, path elsewhere),
    path or virtual.
    """
    if endpoint is not None:
        scheme, host, port, base = endpoint
        virtual = style == "virtual"
    else:
        scheme, host, port, base = "https", f"s3.{region}.amazonaws.com", 443, ""
        virtual = style == "virtual" or (style == "auto" and is_dns_bucket(bucket))
    if virtual:
        host = f"{bucket}.{host}"
        path = f"{base}/{key}"
    else:
        path = f"{base}/{bucket}/{key}" if key else f"{base}/{bucket}"
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    return scheme, host, port, host_header, path


# --------------------------------------------------------------------------- credentials


class Credentials:
    """Signing credentials; token is None for long-term keys."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None = None):
        self.access_key, self.secret_key, self.token = access_key, secret_key, token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (self.access_key, self.secret_key, self.token) == (
            other.access_key, other.secret_key, other.token)

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='***', token={'***' if self.token else None})"


def env_credentials() -> Credentials | None:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN], or None if not both set."""
    ak, sk = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (ak and sk):
        return None
    return Credentials(ak, sk, os.environ.get("AWS_SESSION_TOKEN") or None)


# --------------------------------------------------------------------------- SigV4

_TRANS_5C = bytes(x ^ 0x5C for x in range(256))
_TRANS_36 = bytes(x ^ 0x36 for x in range(256))


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = sha256(key.translate(_TRANS_36))
    inner.update(msg)
    outer = sha256(key.translate(_TRANS_5C))
    outer.update(inner.digest())
    return outer.digest()


_key_cache: dict[tuple[str, str, str], bytes] = {}


def signing_key(secret: str, date: str, region: str) -> bytes:
    cached = _key_cache.get((secret, date, region))
    if cached is None:
        k = hmac_sha256(("AWS4" + secret).encode(), date.encode())
        k = hmac_sha256(k, region.encode())
        k = hmac_sha256(k, b"s3")
        cached = hmac_sha256(k, b"aws4_request")
        _key_cache[(secret, date, region)] = cached
    return cached


def sign_v4(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    creds: Credentials,
    region: str,
    now: float | None = None,
) -> None:
    """Add x-amz-date, x-amz-content-sha256, (x-amz-security-token) and Authorization to headers.

    ``creds`` has access_key, secret_key and token (None for long-term keys).
    """
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
    canonical_query = "&".join(f"{quote(k, '')}={quote(v, '')}" for k, v in sorted(query.items()))
    canonical = "\n".join(
        [
            method,
            quote(path),
            canonical_query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, sha256(canonical.encode()).hexdigest()])
    sig = hmac_sha256(signing_key(creds.secret_key, date, region), to_sign.encode()).hex()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={sig}"
    )
