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

``chunk_size``/``chunks`` are optional: the sha256 of each consecutive ``chunk_size``
slice of the file (the last one may be shorter). With them, `sync` verifies every
ranged GET on its own as it streams in (in parallel, and a bad range is refetched);
without them it verifies the whole-file ``sha256`` in order behind the download.

``path`` is relative to the prefix, '/'-separated, never absolute, never containing
'.' or '..' segments. Readers accept any format_version <= FORMAT_VERSION and refuse
newer ones with a clear error (they may carry semantics we would silently ignore).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import NamedTuple

from fleetkit_weights import MANIFEST_NAME, __version__
from fleetkit_weights.errors import IntegrityError

FORMAT = "fleetkit-weights-manifest"
FORMAT_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FileEntry(NamedTuple):
    path: str
    size: int
    sha256: str
    chunk_size: int = 0
    chunks: tuple[str, ...] = ()

    def to_json(self) -> dict:
        doc: dict = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.chunk_size:
            doc["chunk_size"] = self.chunk_size
            doc["chunks"] = list(self.chunks)
        return doc


class Manifest(NamedTuple):
    files: tuple[FileEntry, ...]
    raw: bytes  # exact bytes as stored; their sha256 identifies this model version
    created_at: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def check_rel_path(path: str) -> str | None:
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
        "format_version": FORMAT_VERSION,
        "created_at": created,
        "created_by": f"fleetkit-weights {__version__}",
        "total_bytes": sum(f.size for f in files),
        "files": [f.to_json() for f in files],
    }
    raw = (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode()
    return parse(raw, "new manifest")


def parse(raw: bytes, where: str) -> Manifest:
    """Parse and validate manifest bytes; raise IntegrityError naming every problem."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{where}: manifest must be a JSON object")
    if doc.get("format") != FORMAT:
        raise IntegrityError(f"{where}: not a fleetkit-weights manifest (format={doc.get('format')!r})")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise IntegrityError(f"{where}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise IntegrityError(
            f"{where}: manifest format_version {version} is newer than this agent supports "
            f"({FORMAT_VERSION}); upgrade fleetkit-weights"
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
        path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
        bad = check_rel_path(path)
        if bad:
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
        files.append(FileEntry(path, size, sha, chunk_size, tuple(chunks)))
    clash = sorted(seen & dirs)
    if clash:
        problems.append(f"paths used both as file and directory: {', '.join(clash)}")
    if isinstance(doc.get("total_bytes"), int) and not problems:
        if doc["total_bytes"] != sum(f.size for f in files):
            problems.append("total_bytes does not equal the sum of file sizes")
    if problems:
        raise IntegrityError(f"{where}: invalid manifest: " + "; ".join(problems))
    return Manifest(tuple(files), raw, str(doc.get("created_at", "")))
