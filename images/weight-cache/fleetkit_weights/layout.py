"""Cache naming and the cheap checks on a published entry, shared by the full sync (cache.py,
sync.py) and the warm fast path (fastpath.py). Imports only os and the C sha256.

See cache.py for the layout of CACHE_DIR.
"""

from __future__ import annotations

import fcntl
import os

from fleetkit_weights.s3req import sha256

TYPE_CHECKING = False  # typing is not imported at run time (see fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterable

    from fleetkit_weights.options import S3Location

META = ".fleetkit-weights"
DIGEST_FIELD = "digest"  # the manifest's own canonical digest ("sha256:<hex>"), see manifest_digest()
_SLUG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def slug(loc: S3Location) -> str:
    """A file-name-safe id of a source: readable part (runs of other characters become one
    "_", at most 80 characters) plus 8 hex of sha256 of its URI."""
    out: list[str] = []
    in_run = False  # inside a run of characters that are replaced
    for ch in f"{loc.bucket}_{loc.prefix}".strip("_"):
        if ch in _SLUG_CHARS:
            out.append(ch)
            in_run = False
        elif not in_run:
            out.append("_")
            in_run = True
    return f"{''.join(out)[:80]}-{sha256(str(loc).encode()).hexdigest()[:8]}"


def written_before_reboot(meta: dict) -> bool:
    """True for an entry (or staging dir) written without fsync during an earlier boot: the page
    cache it was written to may not have reached the disk, so it must be verified again."""
    return not meta.get("durable", True) and meta.get("boot_id") != boot_id()


def model_link(root: str | os.PathLike[str], loc: S3Location) -> str:
    """CACHE_DIR/<bucket>/<prefix>: the symlink a reader opens."""
    return os.path.join(root, loc.bucket, loc.prefix) if loc.prefix else os.path.join(root, loc.bucket)


def flock_held(path: str | os.PathLike[str]) -> bool:
    """True if another open file holds a flock on path (False if path does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def entry_id(loc: S3Location, manifest_digest: str) -> str:
    return f"{slug(loc)}.{manifest_digest[:16]}"


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def touch(path: str | os.PathLike[str]) -> None:
    """Record a use. Best effort: a reader may see the cache through a read-only mount."""
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
        except OSError:
            pass
    except OSError:
        pass


def linked_entry(link: str | os.PathLike[str]) -> str | None:
    """Entry id that a model link (CACHE_DIR/<bucket>/<prefix> -> .../store/<id>/files) points at."""
    try:
        target = os.readlink(link)
    except OSError:
        return None
    head, name = os.path.split(target.rstrip("/"))
    if name != "files":
        return None
    return os.path.basename(head) or None


def files_problems(files_dir: str | os.PathLike[str], files: Iterable[tuple[str, int]]) -> list[str]:
    """Cheap structural check of a published entry: every (path, size) exists with that size."""
    problems = []
    for rel, size in files:
        try:
            have = os.stat(os.path.join(files_dir, rel)).st_size
        except OSError:
            problems.append(f"{rel} is missing")
            continue
        if have != size:
            problems.append(f"{rel} has {have} bytes, expected {size}")
    return problems


def canonical_json(doc: object) -> bytes:
    """The canonical bytes of a parsed manifest: RFC 8785 (JSON Canonicalization Scheme) for the
    values a manifest holds (objects with ASCII keys, strings, integers, arrays): members sorted
    by key, no insignificant whitespace, strings as UTF-8 with only the escapes JSON requires.
    Python's C encoder with these settings writes exactly that for such values
    (https://www.rfc-editor.org/rfc/rfc8785#section-3.2), and it needs no ``json`` import."""
    import _json  # noqa: PLC0415 - C module, part of the interpreter

    # typeshed wants a callable `default`; the C encoder calls it only for a value JSON cannot encode (a
    # manifest has none), and None makes that a TypeError, as json.dumps without `default` does
    encode = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",", True, False, False)  # type: ignore[arg-type]
    return "".join(encode(doc, 0)).encode("utf-8")


def manifest_digest(doc: dict) -> str:
    """sha256 hex of the canonical JSON of a manifest without its own ``digest`` member. The same
    model content gives the same digest whatever the whitespace or member order of the stored bytes."""
    return sha256(canonical_json({k: v for k, v in doc.items() if k != DIGEST_FIELD})).hexdigest()
