"""Digests of local files: a whole file's sha256 (`verify`, recovery) and, for `publish`, its sha256
plus one digest per chunk in a single read pass; the chunk digest algorithms of the manifest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Protocol

from fleetkit_weights.errors import WeightsError
from fleetkit_weights.progress import Progress

HASH_CHUNK = 4 << 20  # bytes read and hashed at a time


class ChunkDigest(Protocol):
    """A running chunk digest: hashlib's sha256 object or blake3's."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def chunk_hasher(name: str) -> Callable[[], ChunkDigest]:
    """The constructor of a chunk digest (manifest ``chunk_hash``): hashlib's sha256 or BLAKE3."""
    if name == "sha256":
        return hashlib.sha256
    try:
        from blake3 import blake3  # noqa: PLC0415 - third-party, needed only for blake3 manifests
    except ImportError:
        raise WeightsError("this manifest has BLAKE3 chunk digests: install the blake3 package "
                           "(a dependency of fleetkit-weights)") from None
    return blake3


def hash_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while True:
            n = os.preadv(fd, [view], off)
            if not n:
                break
            h.update(view[:n])
            off += n
            if progress is not None:
                progress.add(n)
    finally:
        os.close(fd)
    return h.hexdigest()


def hash_file_chunks(path: Path, chunk_size: int, progress: Progress | None = None,
                     chunk_hash: str = "sha256") -> tuple[str, list[str]]:
    """(whole-file sha256, ``chunk_hash`` digest of each chunk_size slice) in one read pass."""
    new_part = chunk_hasher(chunk_hash)
    whole = hashlib.sha256()
    chunks: list[str] = []
    buf = bytearray(min(HASH_CHUNK, chunk_size))
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        part = new_part()
        in_part = 0
        while True:
            n = os.preadv(fd, [view[: min(len(buf), chunk_size - in_part)]], off)
            if not n:
                break
            whole.update(view[:n])
            part.update(view[:n])
            in_part += n
            off += n
            if in_part == chunk_size:
                chunks.append(part.hexdigest())
                part, in_part = new_part(), 0
            if progress is not None:
                progress.add(n)
        if in_part:
            chunks.append(part.hexdigest())
    finally:
        os.close(fd)
    return whole.hexdigest(), chunks
