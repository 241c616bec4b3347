"""One file of a transfer on disk: its preallocated ``.part``, the resume journal beside it, and the
ranges done so far.

A :class:`FileJob` owns ``<path>.part`` and ``<path>.part.journal``. The journal's first line is a
JSON header naming the exact object (size, part size, ETag, sha256); every further line is the index
of a range that is on disk, appended only after the ``.part``'s data is fdatasync'd (group commit in
:meth:`FileJob.checkpoint`), so a killed process resumes from the journal and fetches again at most the
ranges that were in flight (:func:`read_journal`; a torn last line is ignored). Fetching the ranges
is ``fleetkit_weights.fetch``; scheduling them and verifying whole files is ``fleetkit_weights.transfer``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Callable

from fleetkit_weights.errors import WeightsError
from fleetkit_weights.manifest import FileEntry

JOURNAL_VERSION = 1


class FileJob:
    """One file to download: where it goes, its ``.part`` and journal, which units are done."""

    def __init__(self, entry: FileEntry, key: str, final: Path, etag: str, part_size: int):
        self.entry = entry
        self.key = key
        self.final = final
        self.part = final.with_name(final.name + ".part")
        self.journal = final.with_name(final.name + ".part.journal")
        self.etag = etag
        # With per-chunk digests in the manifest, the unit of verification, journal and resume is the
        # chunk (part_size below); one GET covers ``span`` consecutive chunks, about ``part_size`` bytes.
        self.chunked = bool(entry.chunks)
        self.part_size = entry.chunk_size if self.chunked else part_size
        self.span = max(1, part_size // entry.chunk_size) if self.chunked else 1
        self.fd = -1
        self.jfd = -1
        self.dfd = -1  # the same .part opened with O_DIRECT (chunked files), or -1
        self.direct_ok = True
        self.lock = threading.Lock()
        self.hash_lock = threading.Lock()
        self.ckpt_lock = threading.Lock()
        self.reset_state()
        self.fresh_retry_done = False
        self.corrupt = False

    def reset_state(self) -> None:
        size = self.entry.size
        self.nparts = (size + self.part_size - 1) // self.part_size
        self.done = bytearray(self.nparts)
        self.remaining = self.nparts
        self.frontier = 0  # index of the first range not done
        self.hashed = 0
        self.sha = hashlib.sha256()
        self.pending: list[int] = []
        self.resumed_bytes = 0
        self.finishing = False

    def range_of(self, idx: int) -> tuple[int, int]:
        start = idx * self.part_size
        return start, min(self.part_size, self.entry.size - start)

    def header(self) -> bytes:
        return (
            json.dumps(
                {
                    "v": JOURNAL_VERSION,
                    "size": self.entry.size,
                    "part_size": self.part_size,
                    "etag": self.etag,
                    "sha256": self.entry.sha256,
                },
                sort_keys=True,
            )
            + "\n"
        ).encode()

    def open_or_resume(self, *, fallocate: bool, durable: bool, log: Callable[[str], None]) -> None:
        """Open the .part and its journal where the journal belongs to this exact object and the
        .part has its full size (marking the journaled ranges done), else start a new .part."""
        resumed = read_journal(self.journal, self.entry, self.etag) if self.part.exists() else None
        if resumed is not None and self.part.stat().st_size == self.entry.size:
            part_size, done = resumed
            if part_size != self.part_size:
                self.part_size = part_size
                self.reset_state()
            self.fd = os.open(self.part, os.O_RDWR)
            self.jfd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
            for idx in done:
                self.done[idx] = 1
                self.remaining -= 1
                self.resumed_bytes += self.range_of(idx)[1]
            while self.frontier < self.nparts and self.done[self.frontier]:
                self.frontier += 1
            if self.resumed_bytes:
                log(
                    f"resuming {self.entry.path}: {self.resumed_bytes} of {self.entry.size} bytes already downloaded"
                )
        else:
            self.create_part(fallocate=fallocate, durable=durable)

    def create_part(self, *, fallocate: bool, durable: bool) -> None:
        """A new .part of the file's size and a new journal with only its header."""
        for p in (self.part, self.journal):
            p.unlink(missing_ok=True)
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        # The .part gets its final size up front (ranges are pwritten at their offsets). By
        # default it is sparse: on ext4, blocks reserved with fallocate are "unwritten" extents
        # that out-of-order range writes then split and convert, which cost ~1.5x the kernel
        # time of the whole download in our measurements. --fallocate reserves them anyway
        # (free space is checked before the download either way).
        try:
            if not fallocate:
                raise OSError(95, "sparse")
            os.posix_fallocate(self.fd, 0, self.entry.size)
        except OSError as exc:
            if exc.errno == 28:
                raise WeightsError(
                    f"no space left on device allocating {self.entry.size} bytes for {self.entry.path} in {self.part.parent}"
                ) from None
            os.ftruncate(self.fd, self.entry.size)
        self.jfd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(self.jfd, self.header())
        if durable:
            os.fsync(self.jfd)

    def close(self) -> None:
        with self.ckpt_lock:  # never close under a checkpoint running in another thread
            self._close_fds()

    def _close_fds(self) -> None:
        for attr in ("fd", "jfd", "dfd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)

    def checkpoint(self, force: bool, durable: bool) -> None:
        """Make the file's finished ranges durable and journal them (group commit).

        Whoever holds ckpt_lock drains self.pending, so ranges finishing during a checkpoint are
        recorded in the next batch; a thread that finds the lock taken leaves its range to the
        holder (``force`` waits for the lock instead: the last range, and shutdown)."""
        while True:
            if not self.ckpt_lock.acquire(blocking=force):
                return
            try:
                while True:
                    with self.lock:
                        pending, self.pending = self.pending, []
                    if not pending or self.jfd < 0 or self.fd < 0:
                        break
                    if durable:
                        os.fdatasync(self.fd)  # data first, then the record that says it is there
                    os.write(self.jfd, "".join(f"{i}\n" for i in pending).encode())
                    if durable:
                        os.fdatasync(self.jfd)
            finally:
                self.ckpt_lock.release()
            with self.lock:  # a range may have been added after the last drain, before the release
                if not self.pending or self.jfd < 0:
                    return


def read_journal(path: Path, entry: FileEntry, etag: str) -> tuple[int, set[int]] | None:
    """Return (part_size, done range indexes) if the journal belongs to this exact object."""
    try:
        lines = path.read_bytes().split(b"\n")
        header = json.loads(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if (
        not isinstance(header, dict)
        or header.get("v") != JOURNAL_VERSION
        or header.get("size") != entry.size
        or header.get("sha256") != entry.sha256
        or header.get("etag") != etag
        or not isinstance(header.get("part_size"), int)
        or header["part_size"] <= 0
    ):
        return None
    part_size = header["part_size"]
    nparts = (entry.size + part_size - 1) // part_size
    done = set()
    # Only newline-terminated records count: a torn final append (crash) is ignored.
    for line in lines[1:-1]:
        if line.isdigit() and 0 <= int(line) < nparts:
            done.add(int(line))
    return part_size, done
