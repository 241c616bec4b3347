"""Command-line values: S3 locations, sizes, endpoints, and the checks every command shares.

The warm fast path (fastpath.py) checks a `sync` command line with these same functions
before it answers, so a bad value is reported in the same way (by the full CLI) whether or
not the model is already cached. For that reason this module imports nothing heavy: no re,
pathlib, typing, urllib or argparse.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at run time (see the docstring)
if TYPE_CHECKING:
    import argparse

    from fleetkit_weights.fastpath import SyncArgs

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_HOST_CHARS = frozenset(_ALNUM + ".-")

# `sync` and `warm` defaults (argparse shows them in --help; the fast path starts from them too).
SYNC_DEFAULTS = {
    "concurrency": "16",
    "part_size": "64Mi",
    "max_attempts": None,
    "progress_interval": None,
    "evict_min_idle": "300",
    "lock_timeout": None,
    "addressing_style": "auto",
    "speed_limit": "100K",
    "speed_time": "30",
    "deadline": None,
    "manifest_digest": None,
}
ADDRESSING_STYLES = ("auto", "path", "virtual")
MAX_CACHE_BYTES_ENV = "FLEETKIT_WEIGHTS_MAX_CACHE_BYTES"


# --------------------------------------------------------------------------- S3 locations


class S3Location(tuple):
    """(bucket, prefix): prefix has no leading or trailing slash; "" means the bucket root."""

    __slots__ = ()

    def __new__(cls, bucket: str, prefix: str) -> "S3Location":
        return tuple.__new__(cls, (bucket, prefix))

    def __getnewargs__(self) -> tuple[str, str]:
        return (self[0], self[1])

    @property
    def bucket(self) -> str:
        return self[0]

    @property
    def prefix(self) -> str:
        return self[1]

    def key(self, rel: str) -> str:
        return f"{self[1]}/{rel}" if self[1] else rel

    def __str__(self) -> str:
        return f"s3://{self[0]}/{self[1]}" if self[1] else f"s3://{self[0]}"

    def __repr__(self) -> str:
        return f"S3Location(bucket={self[0]!r}, prefix={self[1]!r})"


def bucket_problem(bucket: str) -> str:
    """Why ``bucket`` cannot be a bucket name in any S3-compatible store; "" when it can.

    The rules every store shares: 3-63 characters (GCS allows up to 222 when the name has dots),
    lowercase letters, digits, '.' and '-' (and '_', which GCS allows), starting and ending with a
    letter or digit, no '..', and not an IPv4 address. (AWS S3 "Bucket naming rules";
    Google Cloud Storage "Bucket names"; Cloudflare R2 and MinIO follow the S3 rules.)
    """
    longest = 222 if "." in bucket else 63
    if not 3 <= len(bucket) <= longest:
        return f"a bucket name has 3 to {longest} characters, this one {len(bucket)}"
    if bucket != bucket.lower():
        return "bucket names are lowercase"
    bad = sorted({c for c in bucket if c not in _BUCKET_CHARS})
    if bad:
        return "a bucket name has only lowercase letters, digits, '.', '-' and '_', not " + " ".join(
            repr(c) for c in bad
        )
    if bucket[0] not in _LOWER_ALNUM or bucket[-1] not in _LOWER_ALNUM:
        return "a bucket name starts and ends with a letter or digit"
    if ".." in bucket:
        return "a bucket name has no '..'"
    parts = bucket.split(".")
    if len(parts) == 4 and all(p.isdecimal() for p in parts):
        return "a bucket name is not an IP address"
    return ""


def parse_s3_uri(uri: str) -> S3Location:
    """Parse ``s3://bucket[/prefix]``; raise a one-line ValueError on anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"missing bucket name in {uri!r}")
    why = bucket_problem(bucket)
    if why:
        raise ValueError(f"invalid bucket name {bucket!r} in {uri!r}: {why}")
    prefix = prefix.strip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise ValueError(f"invalid prefix in {uri!r} (empty, '.' or '..' path segment)")
    if any(ch in prefix for ch in "\0\r\n"):
        raise ValueError(f"invalid characters in {uri!r}")
    return S3Location(bucket, prefix)


def plain_endpoint(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, "") for ``http(s)://host[:port][/]`` with a plain DNS name or IPv4
    host; None for anything else (IPv6 literals, user info, paths), which the full client
    parses with urllib."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    rest = rest[:-1] if rest.endswith("/") else rest
    host, colon, port_text = rest.partition(":")
    if not host or not all(c in _HOST_CHARS for c in host):
        return None
    if colon:
        if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
            return None
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    return scheme, host, port, ""


# --------------------------------------------------------------------------- sizes

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50}


def parse_size(text: str) -> int:
    """'800Gi' -> 858993459200, '1.5T' -> 1500000000000, '12345' -> 12345, '64MiB' -> 67108864."""
    s = text.strip()
    end = 0
    while end < len(s) and s[end].isdecimal():
        end += 1
    if end and end < len(s) and s[end] == ".":
        frac = end + 1
        while frac < len(s) and s[frac].isdecimal():
            frac += 1
        end = frac if frac > end + 1 else 0  # "1." is not a number
    number, rest = s[:end], s[end:].lstrip()
    unit = ""
    if rest[:1] in ("k", "K", "m", "M", "g", "G", "t", "T", "p", "P"):
        unit, rest = rest[0].lower(), rest[1:]
        if rest[:1] == "i":
            unit, rest = unit + "i", rest[1:]
    if rest[:1] in ("b", "B"):
        rest = rest[1:]
    if not number or rest:
        raise ValueError(f"invalid size {text!r} (examples: 500Gi, 1.5T, 1048576)")
    return int(float(number) * _UNITS[unit])


# --------------------------------------------------------------------------- validation


class Problems:
    """Collects every problem with a command line, so all of them are reported at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def int_(self, value: str | int, name: str, lo: int, hi: int) -> int:
        try:
            v = int(value)
        except (TypeError, ValueError):
            self.add(f"{name} must be an integer, got {value!r}")
            return lo
        if not lo <= v <= hi:
            self.add(f"{name} must be between {lo} and {hi}, got {v}")
        return v

    def float_(self, value: str | None, name: str, allow_none: bool = True) -> float | None:
        if value is None and allow_none:
            return None
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.add(f"{name} must be a number of seconds, got {value!r}")
            return 0.0
        if v != v or v in (float("inf"), float("-inf")):  # nan compares false with everything: a wait that never ends
            self.add(f"{name} must be a finite number of seconds, got {value!r}")
            return 0.0
        if v < 0:
            self.add(f"{name} must not be negative, got {value}")
        return v

    def size(self, value: str | None, name: str, minimum: int = 0) -> int | None:
        if value is None:
            return None
        try:
            v = parse_size(str(value))
        except ValueError as exc:
            self.add(f"{name}: {exc}")
            return None
        if v < minimum:
            self.add(f"{name} must be at least {minimum} bytes, got {value}")
        return v

    def raise_if_any(self) -> None:
        if self.items:
            from fleetkit_weights.errors import UsageError  # noqa: PLC0415

            raise UsageError(self.items)

    def s3(self, value: str, name: str) -> S3Location | None:
        try:
            return parse_s3_uri(value)
        except ValueError as exc:
            self.add(f"{name}: {exc}")
            return None

    def cache_dir(self, path: str, create: bool, write: bool | None = None) -> str:
        """CACHE_DIR must be a directory, writable when ``write`` (default: ``create``), or creatable
        (its parent exists and is writable) when ``create``."""
        write = create if write is None else write
        if os.path.exists(path):
            if not os.path.isdir(path):
                self.add(f"CACHE_DIR {path} exists but is not a directory")
            elif write and not os.access(path, os.W_OK | os.X_OK):
                self.add(f"CACHE_DIR {path} is not writable by uid {os.getuid()}")
        elif not create:
            self.add(f"CACHE_DIR {path} does not exist")
        else:
            parent = os.path.dirname(os.path.normpath(path)) or "."
            if not os.path.isdir(parent):
                self.add(f"CACHE_DIR {path} does not exist and neither does its parent {parent}")
            elif not os.access(parent, os.W_OK | os.X_OK):  # the same usage error as an existing read-only dir
                self.add(f"CACHE_DIR {path} cannot be created: {parent} is not writable by uid {os.getuid()}")
        return path

    def retry_env(self) -> None:
        """The retry settings read from the environment (retry.RetryPolicy.from_env) must be numbers."""
        for var, lo, hi, whole in (("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", 1, 100, True),
                                   ("FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS", 0, 3600, False),
                                   ("FLEETKIT_WEIGHTS_RETRY_MAX_SECONDS", 0, 3600, False)):
            text = os.environ.get(var)
            if text is None:
                continue
            try:
                value = int(text) if whole else float(text)
            except ValueError:
                self.add(f"${var} must be {'an integer' if whole else 'a number of seconds'}, got {text!r}")
                continue
            if not lo <= value <= hi:
                self.add(f"${var} must be between {lo} and {hi}, got {text}")

    def transfer_values(self, args: argparse.Namespace | SyncArgs) -> dict:
        """--concurrency, --part-size, --progress-interval, --max-attempts (validated), and the retry environment."""
        self.retry_env()
        attempts = args.max_attempts
        return {
            "concurrency": self.int_(args.concurrency, "--concurrency", 1, 512),
            "part_size": self.size(args.part_size, "--part-size", 64 * 1024),
            "progress_interval": self.float_(args.progress_interval, "--progress-interval"),
            "max_attempts": self.int_(attempts, "--max-attempts", 1, 100) if attempts is not None else None,
        }

    def sync_values(self, args: argparse.Namespace | SyncArgs) -> dict:
        """transfer_values plus the cache options of `sync` and `warm` (validated)."""
        out = self.transfer_values(args)
        if args.max_cache_bytes is not None:
            out["max_cache_bytes"] = self.size(args.max_cache_bytes, "--max-cache-bytes", 1)
        else:  # the default comes from the environment: its mistakes are the variable's
            out["max_cache_bytes"] = self.size(os.environ.get(MAX_CACHE_BYTES_ENV), f"${MAX_CACHE_BYTES_ENV}", 1)
        out["evict_min_idle"] = self.float_(args.evict_min_idle, "--evict-min-idle", False) or 0.0
        out["lock_timeout"] = self.float_(args.lock_timeout, "--lock-timeout")
        out["speed_limit"] = self.size(args.speed_limit, "--speed-limit", 0) or 0
        out["speed_time"] = self.float_(args.speed_time, "--speed-time", False) or 0.0
        out["deadline"] = self.float_(args.deadline, "--deadline")
        if out["deadline"] == 0:
            self.add("--deadline must be more than 0 seconds")
        out["manifest_digest"] = self.digest(args.manifest_digest, "--manifest-digest")
        return out

    def digest(self, value: str | None, name: str) -> str | None:
        """A pinned manifest digest: sha256:<64 lowercase hex>."""
        if value is None:
            return None
        hexpart = value[7:] if value.startswith("sha256:") else ""
        if len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            self.add(f"{name} must be sha256:<64 lowercase hex digits> (as `publish` prints it), got {value!r}")
            return None
        return value
