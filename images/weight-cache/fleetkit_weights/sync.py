"""`sync`: make CACHE_DIR/<bucket>/<prefix> an exact, verified copy of a published model."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, NamedTuple

from fleetkit_weights import MANIFEST_NAME, __version__
from fleetkit_weights import manifest as manifest_mod
from fleetkit_weights.cache import (
    Cache,
    boot_id,
    fsync_dir,
    load_entry_manifest,
    touch,
    write_atomic,
)
from fleetkit_weights.errors import IntegrityError, S3Error, WeightsError
from fleetkit_weights.manifest import Manifest
from fleetkit_weights.layout import files_problems, written_before_reboot
from fleetkit_weights.progress import Progress, fmt_bytes
from fleetkit_weights.result import SyncResult
from fleetkit_weights.retry import RetriesExhausted, RetryPolicy, call_with_retry, is_transient
from fleetkit_weights.s3 import ObjectInfo, S3Client, S3Location
from fleetkit_weights.hashing import hash_file
from fleetkit_weights.journal import FileJob
from fleetkit_weights.transfer import Transfer

MiB = 1 << 20


class SyncOptions(NamedTuple):
    concurrency: int = 16
    part_size: int = 64 * MiB
    max_cache_bytes: int | None = None
    evict_min_idle: float = 300.0
    lock_timeout: float | None = None
    durable: bool = True
    progress_interval: float | None = None
    quiet: bool = False
    allow_stale: bool = False
    retry: RetryPolicy | None = None  # None: RetryPolicy.from_env()
    fallocate: bool = False
    direct_io: bool = True
    manifest_digest: str | None = None  # the pinned "sha256:<hex>"; the manifest must have exactly this digest
    deadline: float | None = None  # seconds for the whole sync; the download checkpoints and stops after it


MANIFEST_ATTEMPTS = 5  # fetches of a manifest that arrives damaged (or unlike its pin) before giving up


def fetch_manifest(client: S3Client, loc: S3Location, policy: RetryPolicy, pin: str | None = None,
                   log: Callable[[str], None] | None = None) -> Manifest:
    """GET and parse the manifest; a damaged one (bad JSON, own digest wrong) or one that differs from
    ``pin`` ("sha256:<hex>") is fetched again a few times before it is refused (exit 3)."""
    key = loc.key(MANIFEST_NAME)
    where = f"s3://{loc.bucket}/{key}"
    attempt = 0
    while True:
        attempt += 1
        try:
            raw, _etag = call_with_retry(lambda: client.get_bytes(loc.bucket, key), policy, f"GET {where}")
        except S3Error as exc:
            if exc.status == 404:
                raise WeightsError(
                    f"no manifest at {where}: publish the model first (fleetkit-weights publish DIR {loc})"
                ) from None
            raise
        try:
            man = manifest_mod.parse(raw, where)
            if pin is not None and man.pin != pin:
                raise IntegrityError(
                    f"{where}: the manifest's digest is {man.pin} but the pinned digest is {pin}; the bucket holds "
                    "other content than the stack pins (re-publish, or pin what `fleetkit-weights publish` printed); "
                    "nothing was published"
                )
            return man
        except IntegrityError as exc:
            if attempt >= min(MANIFEST_ATTEMPTS, policy.max_attempts):
                raise
            if log is not None:
                log(f"fetching the manifest again: {exc}")
            time.sleep(policy.delay(attempt))


def _entry_files_ok(entry_dir: Path, man: Manifest) -> list[str]:
    """Cheap structural check (sizes only) of a published entry."""
    return files_problems(entry_dir / "files", ((f.path, f.size) for f in man.files))


def verify_entry(entry_dir: Path, man: Manifest, workers: int = 4, progress: Progress | None = None) -> list[str]:
    """Full re-hash of a cached model against its manifest. Returns problems (empty = ok)."""
    problems = _entry_files_ok(entry_dir, man)
    if problems:
        return problems

    def check(f: manifest_mod.FileEntry) -> str | None:
        digest = hash_file(entry_dir / "files" / f.path, progress)
        return None if digest == f.sha256 else f"{f.path}: sha256 {digest}, expected {f.sha256}"

    import concurrent.futures as cf  # noqa: PLC0415 - keep the warm path's imports small

    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [p for p in pool.map(check, man.files) if p]


def _fsync_tree(root: Path, files: bool) -> None:
    for dirpath, _dirs, names in os.walk(root, topdown=False):
        if files:
            for name in names:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(dirpath))


class Syncer:
    def __init__(self, client: S3Client, cache: Cache, opts: SyncOptions, log: Callable[[str], None]):
        self.client = client
        self.cache = cache
        self.retry = opts.retry if opts.retry is not None else RetryPolicy.from_env()
        self.opts = opts if opts.retry is not None else opts._replace(retry=self.retry)
        self.log = log

    # ------------------------------------------------------------------ entry points
    def sync(self, loc: S3Location) -> SyncResult:
        t0 = time.monotonic()
        deadline = t0 + self.opts.deadline if self.opts.deadline else None
        cache = self.cache
        cache.ensure()
        link = cache.link_path(loc)
        try:
            man = fetch_manifest(self.client, loc, self.retry, self.opts.manifest_digest, self.log)
        except (RetriesExhausted, OSError) as exc:
            if not self.opts.allow_stale:
                raise
            return self._stale(loc, t0, exc)
        except S3Error as exc:
            if not (self.opts.allow_stale and is_transient(exc)):
                raise
            return self._stale(loc, t0, exc)
        eid = cache.entry_id(loc, man.digest)
        res = SyncResult(str(loc), str(link), eid, files=len(man.files), total_bytes=man.total_bytes)
        if any(f.chunk_hash != "sha256" for f in man.files):
            res.verified_with = "blake3+sha256" if any(not f.chunks for f in man.files if f.size) else "blake3"

        if self._warm_hit(loc, eid, man, res):
            res.seconds = time.monotonic() - t0
            return res

        lock_timeout = self.opts.lock_timeout
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            lock_timeout = left if lock_timeout is None else min(lock_timeout, left)
        with cache.source_lock(loc, lock_timeout, self.log) as waited:
            res.waited = waited
            if self._warm_hit(loc, eid, man, res):  # another process finished it meanwhile
                res.seconds = time.monotonic() - t0
                return res
            self._recover_unmarked(loc, eid, man)
            if not cache.is_complete(eid):
                with cache.global_lock():
                    # Room check and reservation in one step: the staging directory (with the model's
                    # size in its meta.json) is what every other sync's room check counts, so it is
                    # created before the node lock is released.
                    res.evicted = cache.make_room(
                        man.total_bytes,
                        self.opts.max_cache_bytes,
                        protect={eid},
                        min_idle=self.opts.evict_min_idle,
                        log=self.log,
                        staging_id=eid,
                    )
                    self._prepare_staging(loc, eid, man, cache.staging / eid)
                self._download(loc, eid, man, res, deadline)
                self._publish(loc, eid)
            with cache.global_lock():
                cache.ensure_link(loc, eid, self.opts.durable)
                touch(cache.entry_dir(eid) / "last_use")
                cache.gc_stale(loc, eid, self.log)
        # The model is published and usable from here on: the limit is still enforced (idle entries
        # are evicted), but a limit that cannot be met now is a warning, not a failed sync.
        res.evicted += self._enforce_limit(eid)
        res.seconds = time.monotonic() - t0
        return res

    def _enforce_limit(self, eid: str) -> list[str]:
        """Evict idle, unleased entries while the cache is over --max-cache-bytes (never ``eid``)."""
        if self.opts.max_cache_bytes is None:
            return []
        with self.cache.global_lock():
            return self.cache.make_room(0, self.opts.max_cache_bytes, {eid}, self.opts.evict_min_idle, self.log,
                                        strict=False)

    def _stale(self, loc: S3Location, t0: float, exc: BaseException) -> SyncResult:
        pin = self.opts.manifest_digest
        # With a pin, only the pinned version may serve, whatever the link points at now.
        eid = self.cache.entry_id(loc, pin[7:]) if pin else self.cache.link_target(loc)
        if not eid or not self.cache.is_complete(eid):
            what = f"the pinned version {pin}" if pin else "nothing"
            raise WeightsError(f"cannot reach the object store for {loc} and {what} is cached: {exc}") from None
        man = load_entry_manifest(self.cache.entry_dir(eid))
        if pin and man.pin != pin:
            raise IntegrityError(f"cached copy {eid} of {loc} has manifest digest {man.pin}, not the pinned {pin}")
        self.log(f"warning: cannot fetch the manifest of {loc} ({exc}); using the cached version {eid}")
        if self.cache.link_target(loc) != eid:
            with self.cache.global_lock():
                self.cache.ensure_link(loc, eid, self.opts.durable)
        touch(self.cache.entry_dir(eid) / "last_use")
        return SyncResult(
            str(loc), str(self.cache.link_path(loc)), eid, files=len(man.files), total_bytes=man.total_bytes,
            skipped_files=len(man.files), cached=True, stale=True, seconds=time.monotonic() - t0,
        )

    # ------------------------------------------------------------------ warm path
    def _warm_hit(self, loc: S3Location, eid: str, man: Manifest, res: SyncResult) -> bool:
        cache = self.cache
        entry = cache.entry_dir(eid)
        marker = cache.read_complete(eid)
        if not marker:
            return False
        if written_before_reboot(marker):
            # Written without fsync before a reboot: the page cache may not have reached disk.
            return self._reverify(loc, eid, man, res)
        problems = _entry_files_ok(entry, man)
        if problems:
            self.log(f"cached copy {eid} is damaged ({'; '.join(problems[:3])}); fetching it again")
            with cache.global_lock():
                entries = [e for e in cache.entries() if e.id == eid]
                if entries and not cache.try_evict(entries[0]):
                    raise WeightsError(f"cached copy {eid} of {loc} is damaged and in use; stop its readers first")
            return False
        if cache.link_target(loc) != eid:
            with cache.global_lock():
                cache.ensure_link(loc, eid, self.opts.durable)
                cache.gc_stale(loc, eid, self.log)
        touch(entry / "last_use")
        res.cached = True
        res.skipped_files = len(man.files)
        res.evicted += self._enforce_limit(eid)
        return True

    def _reverify(self, loc: S3Location, eid: str, man: Manifest, res: SyncResult) -> bool:
        with self.cache.source_lock(loc, self.opts.lock_timeout, self.log):
            marker = self.cache.read_complete(eid)
            entry = self.cache.entry_dir(eid)
            if marker and written_before_reboot(marker):
                self.log(f"re-verifying {eid}: it was cached without fsync before the last reboot")
                problems = verify_entry(entry, man, self.opts.concurrency)
                if problems:
                    self.log(f"cached copy {eid} failed verification ({'; '.join(problems[:3])}); fetching it again")
                    with self.cache.global_lock():
                        entries = [e for e in self.cache.entries() if e.id == eid]
                        if entries and not self.cache.try_evict(entries[0]):
                            raise IntegrityError(f"cached copy {eid} of {loc} is corrupt and in use; stop its readers")
                    return False
                _fsync_tree(entry / "files", files=True)
                self._write_marker(entry, durable=True)
        return self._warm_hit(loc, eid, man, res)

    def _recover_unmarked(self, loc: S3Location, eid: str, man: Manifest) -> None:
        """A store entry without COMPLETE means a crash between rename and marker."""
        entry = self.cache.entry_dir(eid)
        if entry.is_dir() and not self.cache.is_complete(eid):
            self.log(f"found {eid} without a completion marker; verifying it")
            if verify_entry(entry, man, self.opts.concurrency):
                with self.cache.global_lock():
                    self.cache._discard(entry)
            else:
                self._write_marker(entry, durable=self.opts.durable)

    # ------------------------------------------------------------------ cold path
    def _download(self, loc: S3Location, eid: str, man: Manifest, res: SyncResult,
                  deadline: float | None = None) -> None:
        cache = self.cache
        staging = cache.staging / eid
        files_dir = staging / "files"
        reuse = self._reusable_files(loc, eid)
        todo: list[manifest_mod.FileEntry] = []
        for f in man.files:
            final = files_dir / f.path
            try:
                if final.stat().st_size == f.size and not final.is_symlink():
                    res.skipped_files += 1  # verified and renamed by an earlier, interrupted run
                    continue
            except OSError:
                pass
            src = reuse.get((f.path, f.size, f.sha256)) or reuse.get(("", f.size, f.sha256))
            if src is not None:
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, final)
                    res.skipped_files += 1
                    continue
                except OSError:
                    pass
            if f.size == 0:
                final.parent.mkdir(parents=True, exist_ok=True)
                if f.sha256 != hashlib.sha256(b"").hexdigest():
                    raise IntegrityError(f"corrupt manifest entry: '{f.path}' has size 0 but a non-empty sha256")
                final.touch()
                res.downloaded_files += 1
                continue
            todo.append(f)
        # Chunked files are verified range by range against the manifest (and each response's
        # Content-Range total against its size), so they need no HEAD; whole-file-digest files
        # are HEADed for their ETag, used as If-Match so one object version fills the file.
        infos = self._head_all(loc, [f for f in todo if not f.chunks])
        self._check_space(staging, todo)
        jobs = [
            FileJob(f, loc.key(f.path), files_dir / f.path, infos[f.path].etag if f.path in infos else "",
                    self.opts.part_size)
            for f in todo
        ]
        progress = Progress(
            str(loc),
            sum(f.size for f in todo),
            interval=self.opts.progress_interval,
            enabled=not self.opts.quiet,
        )
        transfer = Transfer(
            self.client, loc, jobs, self.opts.concurrency, self.retry, progress, self.log, self.opts.durable,
            fallocate=self.opts.fallocate, direct=self.opts.direct_io, deadline=deadline,
            deadline_seconds=self.opts.deadline,
        )
        progress.start()
        try:
            stats = transfer.run()
        finally:
            progress.stop()
            res.retries = transfer.retry_stats.retries
            res.fetched_bytes = progress.done
        res.resumed_bytes = stats.resumed_bytes
        res.downloaded_files += len(jobs)

    def _prepare_staging(self, loc: S3Location, eid: str, man: Manifest, staging: Path) -> None:
        meta_path = staging / "meta.json"
        if staging.is_dir():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {}
            stale_boot = written_before_reboot(meta)
            if meta.get("manifest_sha256") != man.digest or stale_boot:
                import shutil  # noqa: PLC0415

                shutil.rmtree(staging)
        if not staging.is_dir():
            (staging / "files").mkdir(parents=True)
            write_atomic(staging / "manifest.json", man.raw, self.opts.durable)
            (staging / "lease").touch()
        meta = {
            "source": str(loc),
            "link": str(self.cache.link_path(loc).relative_to(self.cache.root)),
            "endpoint": self.client.custom_endpoint or "aws",
            "manifest_sha256": man.digest,  # canonical digest (see manifest.py), hex
            "total_bytes": man.total_bytes,
            "files": len(man.files),
            "agent": f"fleetkit-weights {__version__}",
            "durable": self.opts.durable,
            "boot_id": boot_id(),
        }
        write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode(), self.opts.durable)

    def _reusable_files(self, loc: S3Location, eid: str) -> dict[tuple[str, int, str], Path]:
        """Files with identical content in other complete entries (hardlinked instead of fetched)."""
        found: dict[tuple[str, int, str], Path] = {}
        for e in self.cache.entries():
            if e.id == eid or not e.complete:
                continue
            try:
                other = load_entry_manifest(e.path)
            except (OSError, WeightsError):
                continue
            for f in other.files:
                p = e.path / "files" / f.path
                found.setdefault((f.path, f.size, f.sha256), p)
                if f.size >= MiB:
                    found.setdefault(("", f.size, f.sha256), p)
        return found

    def _head_all(self, loc: S3Location, files: list[manifest_mod.FileEntry]) -> dict[str, ObjectInfo]:
        if not files:
            return {}

        def head(f: manifest_mod.FileEntry) -> tuple[str, ObjectInfo]:
            key = loc.key(f.path)
            try:
                info = call_with_retry(
                    lambda: self.client.head(loc.bucket, key), self.retry, f"HEAD s3://{loc.bucket}/{key}"
                )
            except S3Error as exc:
                if exc.status == 404:
                    raise WeightsError(
                        f"'{f.path}' is listed in the manifest but missing from the bucket (s3://{loc.bucket}/{key})"
                    ) from None
                raise
            if info.size != f.size:
                raise IntegrityError(
                    f"corrupt model: '{f.path}' is {info.size} bytes in the bucket (s3://{loc.bucket}/{key}) but "
                    f"{f.size} in the manifest; nothing was published"
                )
            return f.path, info

        import concurrent.futures as cf  # noqa: PLC0415

        with cf.ThreadPoolExecutor(max_workers=min(self.opts.concurrency, len(files), 32)) as pool:
            return dict(pool.map(head, files))

    def _check_space(self, staging: Path, files: list[manifest_mod.FileEntry]) -> None:
        need = 0
        for f in files:
            part = staging / "files" / (f.path + ".part")
            if not part.exists():
                need += f.size
        st = os.statvfs(staging)
        free = st.f_bavail * st.f_frsize
        if need > free:
            raise WeightsError(
                f"not enough disk space in {self.cache.root}: need {fmt_bytes(need)}, {fmt_bytes(free)} free"
            )

    def _publish(self, loc: S3Location, eid: str) -> None:
        staging = self.cache.staging / eid
        entry = self.cache.entry_dir(eid)
        if self.opts.durable:
            _fsync_tree(staging / "files", files=False)  # files were fsynced when verified
            fsync_dir(staging)
        with self.cache.global_lock():  # room checks see the model in staging or in the store, never neither
            os.rename(staging, entry)
        if self.opts.durable:
            fsync_dir(self.cache.store)
            fsync_dir(self.cache.staging)
        self._write_marker(entry, self.opts.durable)
        touch(entry / "last_use")

    def _write_marker(self, entry: Path, durable: bool) -> None:
        marker = {
            "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "verified": "sha256",
            "durable": durable,
            "boot_id": boot_id(),
            "agent": f"fleetkit-weights {__version__}",
        }
        write_atomic(entry / "COMPLETE", (json.dumps(marker) + "\n").encode(), durable=True)
