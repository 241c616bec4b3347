"""The model manifest: which files make a model, their sizes and sha256 digests.

Format (JSON, UTF-8, stored as ``<prefix>/fleetkit-manifest.json``)::

    {
      "format": "fleetkit-weights-manifest",
      "format_version": 1,
      "created_at": "2025-01-01T00:00:00Z",
      "created_by": "fleetkit-weights 0.1.0",
      "total_bytes": 123,
      "files": [{"path": "model.safetensors", "size": 123, "sha256": "<64 hex>",
                 "chunk_size": 16777216, "chunks": ["<64 hex>", ...]}]
    }

``chunk_size``/``chunks`` are optional: the digest of each consecutive ``chunk_size``
slice of the file (the last one may be shorter). With them, `sync` verifies every
ranged GET on its own as it streams in (in parallel, and a bad range is refetched);
without them it verifies the whole-file ``sha256`` in order behind the download.
``chunk_hash`` (format_version 2) names the chunks' algorithm: ``sha256`` (the default, and
the only one in format_version 1) or ``blake3`` (32-byte BLAKE3, https://github.com/BLAKE3-team/BLAKE3-specs,
several times faster than SHA-256 on the same core: what `publish` writes by default). The
whole-file ``sha256`` is kept in either case for provenance (it is the Hugging Face LFS object id
of the file). `publish --chunk-hash sha256` writes format_version 1 manifests, which agents from
before format_version 2 read.

``path`` is relative to the prefix, '/'-separated, never absolute, never containing
'.' or '..' segments. Readers accept any format_version <= FORMAT_VERSION and refuse
newer ones with a clear error (they may carry semantics we would silently ignore).

The manifest's *digest* (``sha256:<hex>``) is the sha256 of its canonical JSON (layout.canonical_json:
RFC 8785 for these values) without the ``digest`` member. It identifies the model version (the cache
entry id), it is what a stack spec pins next to the model's revision, and `publish` stores it in the
manifest as ``"digest"``, so a reader detects a manifest damaged in transit
(a flipped bit over plain HTTP) and fetches it again. Manifests without the member (written by
earlier agents) stay valid; only a pin protects those. The member is optional within
format_version 1, so earlier agents read format 1 manifests that have it too (they ignore unknown
members). This
reader refuses members it does not know (a flipped bit in a member name must not pass as an
unknown member): a future member comes with a new format_version.
"""

from __future__ import annotations

import json
import re
import time
from typing import NamedTuple

from fleetkit_weights import MANIFEST_NAME, __version__
from fleetkit_weights.errors import IntegrityError
from fleetkit_weights.layout import DIGEST_FIELD, manifest_digest

FORMAT = "fleetkit-weights-manifest"
FORMAT_VERSION = 2  # 2 adds "chunk_hash": "blake3"; a manifest without it is written as format_version 1
CHUNK_HASHES = ("sha256", "blake3")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
PIN = re.compile(r"^sha256:[0-9a-f]{64}$")
_MEMBERS = frozenset({"format", "format_version", "created_at", "created_by", "total_bytes", "files", DIGEST_FIELD})
_FILE_MEMBERS = frozenset({"path", "size", "sha256", "chunk_size", "chunks", "chunk_hash"})


class ManifestCorrupt(IntegrityError):
    """The manifest bytes are not what was published (bad JSON, or its own digest does not match):
    most likely damaged in transit, so the reader fetches it again."""


class FileEntry(NamedTuple):
    path: str
    size: int
    sha256: str
    chunk_size: int = 0
    chunks: tuple[str, ...] = ()
    chunk_hash: str = "sha256"  # the algorithm of ``chunks`` (``sha256`` stays the whole file's)

    def to_json(self) -> dict:
        doc: dict = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.chunk_size:
            if self.chunk_hash != "sha256":
                doc["chunk_hash"] = self.chunk_hash
            doc["chunk_size"] = self.chunk_size
            doc["chunks"] = list(self.chunks)
        return doc


class Manifest(NamedTuple):
    files: tuple[FileEntry, ...]
    raw: bytes  # exact bytes as stored
    created_at: str = ""
    digest: str = ""  # sha256 hex of the canonical JSON (without the digest member): the model version
    self_checked: bool = False  # the manifest carried its own digest and it matched

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def pin(self) -> str:
        """The digest as a stack spec pins it: ``sha256:<hex>``."""
        return f"sha256:{self.digest}"


def check_rel_path(path: object) -> str | None:
    """Return a problem description if ``path`` is not a safe relative file path."""
    if not isinstance(path, str) or not path:
        return "empty path"
    if path.startswith("/") or "\\" in path or "\0" in path:
        return f"unsafe path {path!r}"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"unsafe path {path!r}"
    if parts[0].startswith(".fleetkit") or path == MANIFEST_NAME:
        return f"reserved path {path!r}"
    if any(p.endswith((".part", ".journal")) for p in parts[-1:]):
        return f"reserved file suffix in {path!r}"
    return None


def build(files: list[FileEntry]) -> Manifest:
    files = sorted(files, key=lambda f: f.path)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc = {
        "format": FORMAT,
        "format_version": 2 if any(f.chunk_hash != "sha256" for f in files) else 1,
        "created_at": created,
        "created_by": f"fleetkit-weights {__version__}",
        "total_bytes": sum(f.size for f in files),
        "files": [f.to_json() for f in files],
    }
    doc[DIGEST_FIELD] = f"sha256:{manifest_digest(doc)}"
    raw = (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode()
    return parse(raw, "new manifest")


def parse(raw: bytes, where: str) -> Manifest:
    """Parse and validate manifest bytes; raise IntegrityError naming every problem."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestCorrupt(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestCorrupt(f"{where}: manifest must be a JSON object")
    if doc.get("format") != FORMAT:
        raise IntegrityError(f"{where}: not a fleetkit-weights manifest (format={doc.get('format')!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError(f"{where}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise IntegrityError(
            f"{where}: manifest format_version {version} is newer than this agent supports "
            f"({FORMAT_VERSION}); upgrade fleetkit-weights"
        )
    unknown = sorted(set(doc) - _MEMBERS)
    if unknown:  # each format_version has exactly these members; a new one comes with a new version
        raise ManifestCorrupt(f"{where}: unknown manifest member(s) {', '.join(map(repr, unknown))[:200]}")
    digest = manifest_digest(doc)
    own = doc.get(DIGEST_FIELD)
    if own is not None and own != f"sha256:{digest}":
        raise ManifestCorrupt(
            f"{where}: the manifest does not match its own digest ({str(own)[:80]!r}, content sha256:{digest}): "
            "damaged in transit or edited by hand"
        )
    items = doc.get("files")
    if not isinstance(items, list) or not items:
        raise IntegrityError(f"{where}: manifest has no files")
    problems: list[str] = []
    files: list[FileEntry] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"files[{i}] is not an object")
            continue
        if set(item) - _FILE_MEMBERS:
            problems.append(f"files[{i}]: unknown member(s) {', '.join(map(repr, sorted(set(item) - _FILE_MEMBERS)))}")
            continue
        path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
        bad = check_rel_path(path)
        if bad or not isinstance(path, str):  # a path that is not a string is one check_rel_path rejects
            problems.append(f"files[{i}]: {bad}")
            continue
        if path in seen:
            problems.append(f"files[{i}]: duplicate path {path!r}")
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"files[{i}] ({path}): invalid size {size!r}")
            continue
        if not isinstance(sha, str) or not _HEX64.match(sha):
            problems.append(f"files[{i}] ({path}): invalid sha256 {sha!r}")
            continue
        chunk_size, chunks = item.get("chunk_size"), item.get("chunks")
        chunk_hash = item.get("chunk_hash", "sha256")
        if chunk_hash not in CHUNK_HASHES or (chunk_hash != "sha256" and (version < 2 or chunks is None)):
            problems.append(f"files[{i}] ({path}): invalid chunk_hash {chunk_hash!r} (format_version {version})")
            continue
        if chunk_size is not None or chunks is not None:
            if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
                problems.append(f"files[{i}] ({path}): invalid chunk_size {chunk_size!r}")
                continue
            want = (size + chunk_size - 1) // chunk_size
            if not isinstance(chunks, list) or len(chunks) != want:
                problems.append(f"files[{i}] ({path}): expected {want} chunk digests")
                continue
            if not all(isinstance(c, str) and _HEX64.match(c) for c in chunks):
                problems.append(f"files[{i}] ({path}): invalid chunk digest")
                continue
        else:
            chunk_size, chunks = 0, []
        seen.add(path)
        parts = path.split("/")
        for j in range(1, len(parts)):
            dirs.add("/".join(parts[:j]))
        files.append(FileEntry(path, size, sha, chunk_size, tuple(chunks), chunk_hash))
    clash = sorted(seen & dirs)
    if clash:
        problems.append(f"paths used both as file and directory: {', '.join(clash)}")
    if isinstance(doc.get("total_bytes"), int) and not problems:
        if doc["total_bytes"] != sum(f.size for f in files):
            problems.append("total_bytes does not equal the sum of file sizes")
    if problems:
        raise IntegrityError(f"{where}: invalid manifest: " + "; ".join(problems))
    return Manifest(tuple(files), raw, str(doc.get("created_at", "")), digest, own is not None)
