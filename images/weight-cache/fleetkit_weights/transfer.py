"""Parallel ranged downloads into preallocated .part files, with a resume journal and
streaming sha256 verification.

Each file is split into ``part_size`` byte ranges. Worker threads GET ranges (with
If-Match on the object's ETag), pwrite them at their offset in ``<path>.part`` and mark
them done. Every finished (for chunked files: verified) range is made durable at once
(fdatasync of the .part, then an fsynced append to ``<path>.part.journal``; ranges that
finish while another thread is checkpointing the file go into its next batch), so a killed
process resumes and fetches again at most the ranges that were in flight. The sha256 runs in file order behind the
"contiguous done" frontier, reading back the just-written (page-cached) bytes, so the
digest is ready a moment after the last range lands. A verified file is fsynced and
renamed from ``.part`` to its real name; a mismatching one is deleted and reported.

With per-chunk digests in the manifest (what ``publish`` writes) the unit above is the
chunk, and one GET covers as many whole chunks as fit in ``part_size`` (at least one).
Every chunk is hashed from the socket buffer as it arrives and counts as done (and is
journaled) the moment it verifies; a corrupt chunk drops the GET, which is asked for
again from that chunk. Data is written with O_DIRECT where the filesystem allows: no
copy into the page cache and no dirty pages left for the final fsync, which on our test
VM made the durable cold sync 2.2x faster (see benchmarks/weights.py). Once fsynced, a
file's remaining page-cache pages are dropped (posix_fadvise DONTNEED; POSIX:
https://pubs.opengroup.org/onlinepubs/9799919799/functions/posix_fadvise.html).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import json
import mmap
import os
import threading
import time
from pathlib import Path
from typing import Callable

from fleetkit_weights.errors import IntegrityError, S3Error, WeightsError
from fleetkit_weights.hashing import HASH_CHUNK, chunk_hasher
from fleetkit_weights.manifest import FileEntry
from fleetkit_weights.progress import Progress
from fleetkit_weights.retry import RetriesExhausted, RetryPolicy, RetryStats, describe, is_transient
from fleetkit_weights.s3 import LowSpeed, ObjectSizeMismatch, S3Client, S3Location

# socket -> hash -> pwrite granularity. With direct writes 4 MiB took ~12% less CPU than
# 1 MiB; through the page cache 4 MiB took twice the CPU and time of 1 MiB (16 workers).
DIRECT_CHUNK = 4 << 20
BUFFERED_CHUNK = 1 << 20
DIRECT_ALIGN = 4096  # O_DIRECT offset/length alignment that every Linux block device accepts
JOURNAL_VERSION = 1


class Cancelled(Exception):
    pass


class DeadlineExceeded(WeightsError):
    pass


class _BadChunk(Exception):
    """A chunk of a multi-chunk range failed its digest; the GET is dropped and resumed at the chunk."""

    def __init__(self, idx: int, digest: str):
        super().__init__(idx, digest)
        self.idx, self.digest = idx, digest


class TransferStats:
    def __init__(self) -> None:
        self.bytes_fetched = 0
        self.resumed_bytes = 0
        self.refetched_files = 0


class FileJob:
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


class Transfer:
    def __init__(
        self,
        client: S3Client,
        loc: S3Location,
        jobs: list[FileJob],
        concurrency: int,
        policy: RetryPolicy,
        progress: Progress,
        log: Callable[[str], None],
        durable: bool = True,
        fallocate: bool = False,
        direct: bool = True,
        deadline: float | None = None,
        deadline_seconds: float | None = None,
    ):
        self.fallocate = fallocate
        # Direct I/O only where every byte is verified as it streams by (per-chunk digests):
        # whole-file digests are computed by reading the .part back, which wants the page cache.
        self.direct = direct and hasattr(os, "O_DIRECT")
        self.client = client
        self.loc = loc
        self.jobs = jobs
        self.concurrency = max(1, concurrency)
        self.policy = policy
        self.progress = progress
        self.log = log
        self.durable = durable
        self.deadline = deadline  # time.monotonic() after which the transfer stops (DeadlineExceeded)
        self.deadline_seconds = deadline_seconds
        self.retry_stats = RetryStats()
        self.stats = TransferStats()
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[FileJob, int, int]] = collections.deque()
        self._unfinished = 0
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._local = threading.local()

    # ------------------------------------------------------------------ setup
    def _open_job(self, job: FileJob) -> None:
        job.final.parent.mkdir(parents=True, exist_ok=True)
        self._open_data(job)
        if self.direct and job.chunked:
            try:
                job.dfd = os.open(job.part, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                job.dfd = -1  # the filesystem has no direct I/O (tmpfs on older kernels, some FUSE)

    def _open_data(self, job: FileJob) -> None:
        resumed = read_journal(job.journal, job.entry, job.etag) if job.part.exists() else None
        if resumed is not None and job.part.stat().st_size == job.entry.size:
            part_size, done = resumed
            if part_size != job.part_size:
                job.part_size = part_size
                job.reset_state()
            job.fd = os.open(job.part, os.O_RDWR)
            job.jfd = os.open(job.journal, os.O_WRONLY | os.O_APPEND)
            for idx in done:
                job.done[idx] = 1
                job.remaining -= 1
                job.resumed_bytes += job.range_of(idx)[1]
            while job.frontier < job.nparts and job.done[job.frontier]:
                job.frontier += 1
            if job.resumed_bytes:
                self.log(
                    f"resuming {job.entry.path}: {job.resumed_bytes} of {job.entry.size} bytes already downloaded"
                )
        else:
            self._create_part(job)

    def _create_part(self, job: FileJob) -> None:
        for p in (job.part, job.journal):
            p.unlink(missing_ok=True)
        job.fd = os.open(job.part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        # The .part gets its final size up front (ranges are pwritten at their offsets). By
        # default it is sparse: on ext4, blocks reserved with fallocate are "unwritten" extents
        # that out-of-order range writes then split and convert, which cost ~1.5x the kernel
        # time of the whole download in our measurements. --fallocate reserves them anyway
        # (free space is checked before the download either way).
        try:
            if not self.fallocate:
                raise OSError(95, "sparse")
            os.posix_fallocate(job.fd, 0, job.entry.size)
        except OSError as exc:
            if exc.errno == 28:
                raise WeightsError(
                    f"no space left on device allocating {job.entry.size} bytes for {job.entry.path} in {job.part.parent}"
                ) from None
            os.ftruncate(job.fd, job.entry.size)
        job.jfd = os.open(job.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(job.jfd, job.header())
        if self.durable:
            os.fsync(job.jfd)

    def _close_job(self, job: FileJob) -> None:
        with job.ckpt_lock:  # never close under a checkpoint running in another thread
            self._close_fds(job)

    def _close_fds(self, job: FileJob) -> None:
        for attr in ("fd", "jfd", "dfd"):
            fd = getattr(job, attr)
            if fd >= 0:
                os.close(fd)
                setattr(job, attr, -1)

    # ------------------------------------------------------------------ run
    def run(self) -> TransferStats:
        try:
            for job in self.jobs:
                self._open_job(job)
                self.stats.resumed_bytes += job.resumed_bytes
            with self._cond:
                self._unfinished += len(self.jobs)
                self._queue.extend(self._schedule())
            # Files whose ranges were all done before a crash only need hashing.
            for job in self.jobs:
                if job.remaining == 0:
                    if job.chunked:
                        job.finishing = True
                        self._finish_ok(job)
                    else:
                        self._advance_hash(job)
            threads = [
                threading.Thread(target=self._worker, name=f"fetch-{i}", daemon=True)
                for i in range(min(self.concurrency, max(1, len(self._queue))))
            ]
            for t in threads:
                t.start()
            try:
                with self._cond:
                    while self._unfinished and self._error is None:
                        self._cond.wait(0.5)
                        if self.deadline is not None and time.monotonic() > self.deadline and self._unfinished:
                            self._error = DeadlineExceeded(
                                f"deadline of {self.deadline_seconds:g}s exceeded while downloading {self.loc} "
                                f"({self.progress.done} bytes fetched this run); verified parts are kept and the "
                                "next sync resumes them; nothing was published"
                            )
                            self._cancel.set()
            except BaseException as exc:  # KeyboardInterrupt / SystemExit from a signal
                self._set_error(Cancelled(str(exc) or type(exc).__name__))
                self.client.abort()
                for t in threads:
                    t.join(timeout=10)
                raise
            if self._error is not None:
                self.client.abort()
            for t in threads:
                t.join()
            if self._error is not None:
                raise self._error
            self.stats.bytes_fetched = self.progress.done
            return self.stats
        finally:
            for job in self.jobs:
                if job.fd >= 0:
                    try:
                        self._checkpoint(job, force=True)
                    except OSError:
                        pass
                self._close_job(job)
                if job.corrupt:
                    for p in (job.part, job.journal):
                        p.unlink(missing_ok=True)

    def _schedule(self) -> list[tuple[FileJob, int, int]]:
        """Ranges still to fetch, (job, first unit, units), round-robin across files.

        A range is a run of at most ``job.span`` consecutive units not done yet.

        Concurrent pwrites into one file contend on its inode lock (the kernel spins on it);
        spreading the workers over the files measured ~25% less kernel time for the same
        bytes, and it spreads requests over more objects on the store side too.
        """
        per_file = []
        for job in self.jobs:
            runs, i = [], 0
            while i < job.nparts:
                if job.done[i]:
                    i += 1
                    continue
                n = 1
                while n < job.span and i + n < job.nparts and not job.done[i + n]:
                    n += 1
                runs.append((job, i, n))
                i += n
            per_file.append(runs)
        out: list[tuple[FileJob, int, int]] = []
        for k in range(max((len(p) for p in per_file), default=0)):
            out.extend(p[k] for p in per_file if k < len(p))
        return out

    def _set_error(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cancel.set()
            self._cond.notify_all()

    def _next(self) -> tuple[FileJob, int, int] | None:
        with self._cond:
            while True:
                if self._error is not None:
                    return None
                if self._queue:
                    return self._queue.popleft()
                if not self._unfinished:
                    return None
                self._cond.wait(0.5)

    def _worker(self) -> None:
        # Anonymous mmap memory is page-aligned, as O_DIRECT writes from it must be.
        buf = memoryview(mmap.mmap(-1, DIRECT_CHUNK))
        while True:
            task = self._next()
            if task is None:
                return
            job, idx, count = task
            try:
                self._fetch(job, idx, count, buf)
            except Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - reported by run()
                self._set_error(exc)
                return

    # ------------------------------------------------------------------ ranges
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

    def _range_done(self, job: FileJob, idx: int) -> None:
        with job.lock:
            job.done[idx] = 1
            job.remaining -= 1
            job.pending.append(idx)
            while job.frontier < job.nparts and job.done[job.frontier]:
                job.frontier += 1
            last = job.remaining == 0
            finish = last and job.chunked and not job.finishing
            if finish:
                job.finishing = True
        self._checkpoint(job, force=last)
        if finish:
            self._finish_ok(job)  # every chunk was verified as it arrived
        elif not job.chunked:
            self._advance_hash(job)

    def _checkpoint(self, job: FileJob, force: bool) -> None:
        """Make the file's finished ranges durable and journal them (group commit).

        Whoever holds ckpt_lock drains job.pending, so ranges finishing during a checkpoint are
        recorded in the next batch; a thread that finds the lock taken leaves its range to the
        holder (``force`` waits for the lock instead: the last range, and shutdown)."""
        while True:
            if not job.ckpt_lock.acquire(blocking=force):
                return
            try:
                while True:
                    with job.lock:
                        pending, job.pending = job.pending, []
                    if not pending or job.jfd < 0 or job.fd < 0:
                        break
                    if self.durable:
                        os.fdatasync(job.fd)  # data first, then the record that says it is there
                    os.write(job.jfd, "".join(f"{i}\n" for i in pending).encode())
                    if self.durable:
                        os.fdatasync(job.jfd)
            finally:
                job.ckpt_lock.release()
            with job.lock:  # a range may have been added after the last drain, before the release
                if not job.pending or job.jfd < 0:
                    return

    # ------------------------------------------------------------------ hashing
    def _advance_hash(self, job: FileJob) -> None:
        """Hash newly contiguous bytes; whoever holds hash_lock does the work."""
        hbuf = getattr(self._local, "hbuf", None)
        if hbuf is None:
            hbuf = self._local.hbuf = bytearray(HASH_CHUNK)
        view = memoryview(hbuf)
        size = job.entry.size
        while True:
            if not job.hash_lock.acquire(blocking=False):
                return
            try:
                while True:
                    with job.lock:
                        limit = min(job.frontier * job.part_size, size)
                    if job.hashed >= limit:
                        break
                    n = os.preadv(job.fd, [view[: min(HASH_CHUNK, limit - job.hashed)]], job.hashed)
                    if n <= 0:
                        raise WeightsError(f"reading back {job.part}: unexpected end of file")
                    job.sha.update(view[:n])
                    job.hashed += n
            finally:
                job.hash_lock.release()
            with job.lock:
                limit = min(job.frontier * job.part_size, size)
                if job.hashed < limit:
                    continue  # frontier moved while we were releasing the lock
                finish = job.hashed == size and job.remaining == 0 and not job.finishing
                if finish:
                    job.finishing = True
            if finish:
                self._finish(job)
            return

    def _finish(self, job: FileJob) -> None:
        digest = job.sha.hexdigest()
        if digest != job.entry.sha256:
            if job.resumed_bytes and not job.fresh_retry_done:
                # The resumed bytes may predate a power loss; fetch the whole file once more.
                self.log(f"sha256 mismatch for {job.entry.path} after resume; downloading it again from scratch")
                with self._cond:
                    self._close_job(job)
                    job.fresh_retry_done = True
                    job.reset_state()
                    self._create_part(job)
                    self.stats.refetched_files += 1
                    self._queue.extendleft((job, i, 1) for i in reversed(range(job.nparts)))
                    self._cond.notify_all()
                return
            self._close_job(job)
            for p in (job.part, job.journal):
                p.unlink(missing_ok=True)
            raise IntegrityError(
                f"corrupt data: sha256 of '{job.entry.path}' (s3://{self.loc.bucket}/{job.key}) is {digest}, "
                f"the manifest says {job.entry.sha256}; the file was discarded and nothing was published"
            )
        self._finish_ok(job)

    def _finish_ok(self, job: FileJob) -> None:
        if self.durable:
            os.fsync(job.fd)
            # Its pages are clean now: drop them. A model is read once, by its server; kept here
            # they only push other data out (with --buffered-io, 8 GB measured 639 -> 999 MB/s).
            if hasattr(os, "posix_fadvise"):
                with contextlib.suppress(OSError):  # only a hint
                    os.posix_fadvise(job.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        self._close_job(job)
        os.rename(job.part, job.final)
        job.journal.unlink(missing_ok=True)
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()
