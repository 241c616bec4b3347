"""GET, stream and verify: ranged GETs of one file's units, written at their offsets as they arrive.

A :class:`RangeFetcher` fetches a run of consecutive units (ranges, or chunks when the manifest has
per-chunk digests) of one :class:`~fleetkit_weights.journal.FileJob` in one GET (If-Match on the
object's ETag), pwrites every socket buffer at its offset (whole aligned blocks with O_DIRECT where
the filesystem allows), hashes each chunk from the buffer as it arrives and hands every finished unit
to :meth:`RangeFetcher._range_done` — the transfer (``fleetkit_weights.transfer``) journals it and
verifies the file. Transient failures are retried with the transfer's backoff policy, resuming the GET
at the first byte (chunk) not yet written (verified).
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Callable

from fleetkit_weights.errors import IntegrityError, S3Error, WeightsError
from fleetkit_weights.hashing import chunk_hasher
from fleetkit_weights.journal import FileJob
from fleetkit_weights.progress import Progress
from fleetkit_weights.retry import RetriesExhausted, RetryPolicy, RetryStats, describe, is_transient
from fleetkit_weights.s3 import LowSpeed, ObjectSizeMismatch, S3Client, S3Location

# socket -> hash -> pwrite granularity. With direct writes 4 MiB took ~12% less CPU than
# 1 MiB; through the page cache 4 MiB took twice the CPU and time of 1 MiB (16 workers).
DIRECT_CHUNK = 4 << 20
BUFFERED_CHUNK = 1 << 20
DIRECT_ALIGN = 4096  # O_DIRECT offset/length alignment that every Linux block device accepts


class Cancelled(Exception):
    pass


class _BadChunk(Exception):
    """A chunk of a multi-chunk range failed its digest; the GET is dropped and resumed at the chunk."""

    def __init__(self, idx: int, digest: str):
        super().__init__(idx, digest)
        self.idx, self.digest = idx, digest


class RangeFetcher:
    """Fetches units of files from one S3 location into their ``.part`` files (see the module docstring).

    A subclass says what happens to a unit once it is on disk (and verified): :meth:`_range_done`.
    """

    def __init__(
        self,
        client: S3Client,
        loc: S3Location,
        policy: RetryPolicy,
        progress: Progress,
        log: Callable[[str], None],
    ):
        self.client = client
        self.loc = loc
        self.policy = policy
        self.progress = progress
        self.log = log
        self.retry_stats = RetryStats()
        self._cancel = threading.Event()

    def _range_done(self, job: FileJob, idx: int) -> None:
        """Unit ``idx`` of ``job`` is written (chunked files: and verified)."""
        raise NotImplementedError

    def _fetch(self, job: FileJob, idx: int, count: int, buf: memoryview) -> None:
        """GET units idx..idx+count-1 in one request; each unit is marked done as soon as it is
        written (and, for chunked files, verified), so a range that fails half-way keeps its
        verified chunks and is asked for again from the first chunk not verified."""
        if job.dfd < 0 or not job.direct_ok:
            buf = buf[:BUFFERED_CHUNK]
        start = job.range_of(idx)[0]
        last_start, last_len = job.range_of(idx + count - 1)
        length = last_start + last_len - start
        got = 0
        what = f"{self.loc.key(job.entry.path)} bytes {start}-{start + length - 1}"
        if not job.chunked:

            def sink_whole(view: memoryview) -> None:
                nonlocal got
                if self._cancel.is_set():
                    raise Cancelled()
                self._write(job, view, start + got)
                got += len(view)
                self.progress.add(len(view))

            self._fetch_loop(job, start, length, lambda: got, sink_whole, buf, what)
            self._range_done(job, idx)
            return
        # A chunk counts as done only when sink() sees its last byte, and sink() sees a full buffer
        # at a time: chunks smaller than the buffer get a buffer of their size (a kill loses at
        # most one chunk per connection, as when each GET was one chunk).
        buf = buf[: min(len(buf), job.part_size)]
        new_hash = chunk_hasher(job.entry.chunk_hash)
        cur, in_chunk, chunk_hash = idx, 0, new_hash()  # the chunk being received, its bytes so far
        bad_digests: dict[int, int] = {}

        def sink(view: memoryview) -> None:
            nonlocal got, cur, in_chunk, chunk_hash
            if self._cancel.is_set():
                raise Cancelled()
            self._write(job, view, start + got)
            got += len(view)
            self.progress.add(len(view))
            pos = 0
            while pos < len(view):  # streaming verification straight from the socket buffer
                clen = job.range_of(cur)[1]
                take = min(len(view) - pos, clen - in_chunk)
                chunk_hash.update(view[pos : pos + take])
                pos += take
                in_chunk += take
                if in_chunk == clen:
                    digest = chunk_hash.hexdigest()
                    if digest != job.entry.chunks[cur]:
                        raise _BadChunk(cur, digest)
                    self._range_done(job, cur)
                    cur, in_chunk, chunk_hash = cur + 1, 0, new_hash()

        while True:
            try:
                self._fetch_loop(job, start, length, lambda: got, sink, buf, what)
                return
            except _BadChunk as bad:
                cstart, clen = job.range_of(bad.idx)
                bad_digests[bad.idx] = bad_digests.get(bad.idx, 0) + 1
                if bad_digests[bad.idx] >= 2:
                    # The file's other, verified chunks stay in its .part and journal: a later sync
                    # fetches only this range again.
                    raise IntegrityError(
                        f"corrupt data: bytes {cstart}-{cstart + clen - 1} of '{job.entry.path}' "
                        f"(s3://{self.loc.bucket}/{job.key}) have {job.entry.chunk_hash} {bad.digest}, the manifest "
                        f"says {job.entry.chunks[bad.idx]}; the file's verified chunks are kept, nothing was published"
                    ) from None
                self.log(
                    f"{job.entry.chunk_hash} mismatch in {self.loc.key(job.entry.path)} bytes "
                    f"{cstart}-{cstart + clen - 1}; fetching that range again"
                )
                got, cur, in_chunk, chunk_hash = cstart - start, bad.idx, 0, new_hash()

    def _write(self, job: FileJob, view: memoryview, off: int) -> None:
        """pwrite view at off: whole aligned blocks through O_DIRECT, any remainder buffered.

        Direct writes go from the socket buffer to the device without a copy into the page
        cache, and leave no dirty pages for the final fsync to write back; a model is read
        once by its server, so caching it here would only evict other data.
        """
        try:
            dfd = job.dfd
            if dfd >= 0 and job.direct_ok and off % DIRECT_ALIGN == 0:
                n = len(view) - len(view) % DIRECT_ALIGN
                if n:
                    try:
                        self._pwrite_all(dfd, view[:n], off)
                    except OSError as exc:
                        if exc.errno != errno.EINVAL:
                            raise
                        job.direct_ok = False  # alignment this filesystem refuses: page cache from now on
                        n = 0
                    view, off = view[n:], off + n
            if len(view):
                self._pwrite_all(job.fd, view, off)
        except OSError as exc:
            raise WeightsError(f"writing {job.part}: {exc.strerror or exc}") from None

    @staticmethod
    def _pwrite_all(fd: int, view: memoryview, off: int) -> None:
        written = os.pwrite(fd, view, off)
        while written < len(view):
            written += os.pwrite(fd, view[written:], off + written)

    def _fetch_loop(self, job: FileJob, start: int, length: int, got_fn: Callable[[], int],
                    sink: Callable[[memoryview], None], buf: memoryview, what: str) -> None:
        failures = 0
        while (got := got_fn()) < length:
            if self._cancel.is_set():
                raise Cancelled()
            before = got
            try:
                self.client.get_range_into(
                    self.loc.bucket, job.key, start + got, length - got, sink, buf, job.etag or None,
                    object_size=job.entry.size,
                )
            except (Cancelled, WeightsError) as exc:
                if isinstance(exc, ObjectSizeMismatch):
                    job.corrupt = True
                    raise IntegrityError(
                        f"corrupt model: '{job.entry.path}' is {exc.size} bytes in the bucket "
                        f"(s3://{self.loc.bucket}/{job.key}) but {job.entry.size} in the manifest; nothing was published"
                    ) from None
                if isinstance(exc, S3Error) and exc.status == 404:
                    raise WeightsError(
                        f"'{job.entry.path}' is listed in the manifest but missing from the bucket "
                        f"(s3://{self.loc.bucket}/{job.key})"
                    ) from None
                if isinstance(exc, S3Error):
                    if exc.status == 412:
                        raise WeightsError(
                            f"{job.entry.path}: the object changed in the bucket during the download "
                            f"(ETag is no longer {job.etag}); run sync again"
                        ) from None
                    if exc.retryable:
                        failures = self._backoff(exc, got_fn() > before, failures, what)
                        continue
                raise
            except Exception as exc:  # noqa: BLE001 - classified
                if self._cancel.is_set():
                    raise Cancelled() from None
                if not is_transient(exc):
                    raise
                # A connection below the low-speed limit made some progress, but it counts as a
                # failed attempt: a trickling server must not hold the range forever.
                progressed = got_fn() > before and not isinstance(exc, LowSpeed)
                failures = self._backoff(exc, progressed, failures, what)

    def _backoff(self, exc: BaseException, progressed: bool, failures: int, what: str) -> int:
        failures = 1 if progressed else failures + 1
        if failures >= self.policy.max_attempts:
            raise RetriesExhausted(f"GET {what}", failures, exc)
        self.retry_stats.add()
        delay = self.policy.delay(failures)
        if failures >= 3:
            self.log(f"retrying {what} in {delay:.1f}s after {describe(exc)} (attempt {failures})")
        if self._cancel.wait(delay):
            raise Cancelled()
        return failures
