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
from fleetkit_weights.transfer import FileJob, Transfer, hash_file

MiB = 1 << 20


class SyncOptions(NamedTuple):
    concurrency: int = 16
    part_size: int = 16 * MiB
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


def fetch_manifest(client: S3Client, loc: S3Location, policy: RetryPolicy) -> Manifest:
    key = loc.key(MANIFEST_NAME)
    try:
        raw, _etag = call_with_retry(lambda: client.get_bytes(loc.bucket, key), policy, f"GET s3://{loc.bucket}/{key}")
    except S3Error as exc:
        if exc.status == 404:
            raise WeightsError(
                f"no manifest at s3://{loc.bucket}/{key}: publish the model first (fleetkit-weights publish DIR {loc})"
            ) from None
        raise
    return manifest_mod.parse(raw, f"s3://{loc.bucket}/{key}")


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
        self.opts = opts if opts.retry is not None else opts._replace(retry=RetryPolicy.from_env())
        self.log = log

    # ------------------------------------------------------------------ entry points
    def sync(self, loc: S3Location) -> SyncResult:
        t0 = time.monotonic()
        cache = self.cache
        cache.ensure()
        link = cache.link_path(loc)
        try:
            man = fetch_manifest(self.client, loc, self.opts.retry)
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

        if self._warm_hit(loc, eid, man, res):
            res.seconds = time.monotonic() - t0
            return res

        with cache.source_lock(loc, self.opts.lock_timeout, self.log) as waited:
            res.waited = waited
            if self._warm_hit(loc, eid, man, res):  # another process finished it meanwhile
                res.seconds = time.monotonic() - t0
                return res
            self._recover_unmarked(loc, eid, man)
            if not cache.is_complete(eid):
                with cache.global_lock():
                    res.evicted = cache.make_room(
                        man.total_bytes,
                        self.opts.max_cache_bytes,
                        protect={eid},
                        min_idle=self.opts.evict_min_idle,
                        log=self.log,
                        staging_id=eid,
                    )
                self._download(loc, eid, man, res)
                self._publish(loc, eid)
            with cache.global_lock():
                cache.ensure_link(loc, eid, self.opts.durable)
                touch(cache.entry_dir(eid) / "last_use")
                cache.gc_stale(loc, eid, self.log)
                res.evicted += cache.make_room(
                    0, self.opts.max_cache_bytes, {eid}, self.opts.evict_min_idle, self.log
                )
        res.seconds = time.monotonic() - t0
        return res

    def _stale(self, loc: S3Location, t0: float, exc: BaseException) -> SyncResult:
        eid = self.cache.link_target(loc)
        if not eid or not self.cache.is_complete(eid):
            raise WeightsError(f"cannot reach the object store for {loc} and nothing is cached: {exc}") from None
        self.log(f"warning: cannot fetch the manifest of {loc} ({exc}); using the cached version {eid}")
        touch(self.cache.entry_dir(eid) / "last_use")
        man = load_entry_manifest(self.cache.entry_dir(eid))
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
    def _download(self, loc: S3Location, eid: str, man: Manifest, res: SyncResult) -> None:
        cache = self.cache
        staging = cache.staging / eid
        self._prepare_staging(loc, eid, man, staging)
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
            self.client, loc, jobs, self.opts.concurrency, self.opts.retry, progress, self.log, self.opts.durable,
            fallocate=self.opts.fallocate, direct=self.opts.direct_io,
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
            "manifest_sha256": man.digest,
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
                    lambda: self.client.head(loc.bucket, key), self.opts.retry, f"HEAD s3://{loc.bucket}/{key}"
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
