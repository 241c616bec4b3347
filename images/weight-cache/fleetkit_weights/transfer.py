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

Three modules: ``journal`` (a file's .part, its journal and its ranges done), ``fetch`` (ranged
GETs streamed to disk, chunks verified as they arrive) and this one (scheduling the ranges over
worker threads, hashing whole files, finishing or failing them, the deadline).
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import threading
import time
from typing import Callable

from fleetkit_weights.errors import IntegrityError, WeightsError
from fleetkit_weights.fetch import DIRECT_CHUNK, Cancelled, RangeFetcher
from fleetkit_weights.hashing import HASH_CHUNK
from fleetkit_weights.journal import FileJob
from fleetkit_weights.progress import Progress
from fleetkit_weights.retry import RetryPolicy
from fleetkit_weights.s3 import S3Client, S3Location


class DeadlineExceeded(WeightsError):
    pass


class TransferStats:
    def __init__(self) -> None:
        self.bytes_fetched = 0
        self.resumed_bytes = 0
        self.refetched_files = 0


class Transfer(RangeFetcher):
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
        super().__init__(client, loc, policy, progress, log)
        self.jobs = jobs
        self.concurrency = max(1, concurrency)
        self.durable = durable
        self.deadline = deadline  # time.monotonic() after which the transfer stops (DeadlineExceeded)
        self.deadline_seconds = deadline_seconds
        self.stats = TransferStats()
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[FileJob, int, int]] = collections.deque()
        self._unfinished = 0
        self._error: BaseException | None = None
        self._local = threading.local()

    # ------------------------------------------------------------------ setup
    def _open_job(self, job: FileJob) -> None:
        job.final.parent.mkdir(parents=True, exist_ok=True)
        job.open_or_resume(fallocate=self.fallocate, durable=self.durable, log=self.log)
        if self.direct and job.chunked:
            try:
                job.dfd = os.open(job.part, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                job.dfd = -1  # the filesystem has no direct I/O (tmpfs on older kernels, some FUSE)

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
                        job.checkpoint(force=True, durable=self.durable)
                    except OSError:
                        pass
                job.close()
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
        job.checkpoint(force=last, durable=self.durable)
        if finish:
            self._finish_ok(job)  # every chunk was verified as it arrived
        elif not job.chunked:
            self._advance_hash(job)

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
                    job.close()
                    job.fresh_retry_done = True
                    job.reset_state()
                    job.create_part(fallocate=self.fallocate, durable=self.durable)
                    self.stats.refetched_files += 1
                    self._queue.extendleft((job, i, 1) for i in reversed(range(job.nparts)))
                    self._cond.notify_all()
                return
            job.close()
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
        job.close()
        os.rename(job.part, job.final)
        job.journal.unlink(missing_ok=True)
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()
