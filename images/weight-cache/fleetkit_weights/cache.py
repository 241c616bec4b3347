"""On-disk cache layout, locks, leases, LRU eviction and status.

Layout of CACHE_DIR::

    CACHE_DIR/
      <bucket>/<prefix>                  -> symlink to .fleetkit-weights/store/<id>/files
      .fleetkit-weights/
        lock                             node-wide lock for cache mutations (links, eviction)
        locks/<slug>.lock                one download lock per source (s3://bucket/prefix)
        staging/<id>/                    an in-progress download (resumable)
          meta.json manifest.json lease
          files/<path>.part              preallocated, written with pwrite
          files/<path>.part.journal      which byte ranges of the .part are done
          files/<path>                   a file already verified against the manifest
        store/<id>/                      a published model version, immutable
          meta.json manifest.json lease last_use
          files/...                      the model files
          COMPLETE                       written last; without it the entry does not exist
        trash/                           entries being deleted

``<id>`` is ``<slug>.<first 16 hex of sha256(manifest bytes)>``: each model version has
its own directory, and the visible link is switched atomically (rename of a new symlink)
when a new version has been published, so a reader never sees a half model.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from fleetkit_weights import manifest as manifest_mod
from fleetkit_weights.errors import LockTimeout, WeightsError
from fleetkit_weights.layout import (  # noqa: F401 - boot_id and touch are re-exported
    META,
    boot_id,
    entry_id,
    flock_held,
    linked_entry,
    model_link,
    slug,
    touch,
)
from fleetkit_weights.options import S3Location




def _subdirs(parent: Path) -> list[Path]:
    """parent's subdirectories in name order ([] if parent does not exist yet)."""
    if not parent.is_dir():
        return []
    return [d for d in sorted(parent.iterdir()) if d.is_dir()]


def _read_meta(d: Path) -> dict:
    """An entry's (or a staging dir's) meta.json; empty when missing or unreadable."""
    try:
        return json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return {}

def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(3).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class Entry(NamedTuple):
    """A store entry (published model version) as seen by status/eviction."""

    id: str
    path: Path
    source: str
    link: str
    digest: str
    total_bytes: int
    files: int
    complete: bool
    last_use: float
    in_use: bool = False
    current: bool = False
    meta: dict | None = None


class Partial(NamedTuple):
    id: str
    path: Path
    source: str
    total_bytes: int
    done_bytes: int
    active: bool
    mtime: float


class Cache:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.meta = self.root / META
        self.store = self.meta / "store"
        self.staging = self.meta / "staging"
        self.trash = self.meta / "trash"
        self.locks = self.meta / "locks"

    # ------------------------------------------------------------------ naming
    def ensure(self) -> None:
        for d in (self.store, self.staging, self.trash, self.locks):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def slug(loc: S3Location) -> str:
        return slug(loc)

    def entry_id(self, loc: S3Location, digest: str) -> str:
        return entry_id(loc, digest)

    def link_path(self, loc: S3Location) -> Path:
        return Path(model_link(self.root, loc))

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def global_lock(self) -> Iterator[None]:
        fd = os.open(self.meta / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def source_lock(
        self,
        loc: S3Location,
        timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[bool]:
        """Hold the per-source download lock. Yields True if we had to wait for another process."""
        path = self.locks / f"{self.slug(loc)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        waited = False
        try:
            t0 = time.monotonic()
            next_note = 0.0
            delay = 0.02
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = True
                    elapsed = time.monotonic() - t0
                    if timeout is not None and elapsed >= timeout:
                        raise LockTimeout(
                            f"timed out after {timeout:.0f}s waiting for another sync of {loc} on this node "
                            f"(lock {path}, holder: {_read_holder(fd)})"
                        ) from None
                    if on_wait is not None and elapsed >= next_note:
                        on_wait(f"waiting for another sync of {loc} on this node ({_read_holder(fd)})")
                        next_note = elapsed + 30.0
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.25)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename} since {time.time():.0f}\n".encode(), 0)
            yield waited
        finally:
            os.close(fd)

    def source_lock_held(self, slug: str) -> bool:
        return flock_held(self.locks / f"{slug}.lock")

    # ------------------------------------------------------------------ entries
    def entry_dir(self, eid: str) -> Path:
        return self.store / eid

    def is_complete(self, eid: str) -> bool:
        return (self.store / eid / "COMPLETE").is_file()

    def read_complete(self, eid: str) -> dict:
        try:
            return json.loads((self.store / eid / "COMPLETE").read_text())
        except (OSError, ValueError):
            return {}

    def link_target(self, loc: S3Location) -> str | None:
        """Entry id the source's link points at, or None."""
        return linked_entry(self.link_path(loc))

    def ensure_link(self, loc: S3Location, eid: str, durable: bool = True) -> Path:
        """Point <root>/<bucket>/<prefix> at the entry's files/ (atomic symlink swap)."""
        link = self.link_path(loc)
        rel_parts = link.relative_to(self.root).parts
        cur = self.root
        for part in rel_parts[:-1]:
            cur = cur / part
            if cur.is_symlink():
                raise WeightsError(
                    f"cannot place {loc} at {link}: {cur} is itself a cached model (nested prefixes are not supported)"
                )
            cur.mkdir(exist_ok=True)
        if link.exists() and not link.is_symlink():
            raise WeightsError(f"cannot place {loc} at {link}: a real file or directory already exists there")
        target = os.path.relpath(self.store / eid / "files", link.parent)
        try:
            if os.readlink(link) == target:
                return link
        except OSError:
            pass
        tmp = link.with_name(f".{link.name}.link-{os.getpid()}-{os.urandom(3).hex()}")
        os.symlink(target, tmp)
        os.replace(tmp, link)
        if durable:
            fsync_dir(link.parent)
        return link

    def remove_link_if(self, loc_link: Path, eid: str) -> None:
        if linked_entry(loc_link) == eid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(loc_link)

    def entries(self) -> list[Entry]:
        """Store entries. Tolerant of entries renamed or deleted while it scans (by another process)."""
        out: list[Entry] = []
        for d in _subdirs(self.store):
            meta = _read_meta(d)
            try:
                last_use = (d / "last_use").stat().st_mtime
            except OSError:
                try:
                    last_use = d.stat().st_mtime
                except FileNotFoundError:
                    continue  # evicted or purged meanwhile
            link = meta.get("link", "")
            current = False
            if link:
                try:
                    current = Path(os.readlink(self.root / link)).parts[-2:] == (d.name, "files")
                except OSError:
                    current = False
            out.append(
                Entry(
                    id=d.name,
                    path=d,
                    source=meta.get("source", "?"),
                    link=link,
                    digest=meta.get("manifest_sha256", ""),
                    total_bytes=int(meta.get("total_bytes", 0)),
                    files=int(meta.get("files", 0)),
                    complete=(d / "COMPLETE").is_file(),
                    last_use=last_use,
                    in_use=lease_held(d),
                    current=current,
                    meta=meta,
                )
            )
        return out

    def partials(self) -> list[Partial]:
        """Staging directories. Tolerant of one being published (renamed into the store) or
        discarded while it scans: a directory that is gone by the time it is looked at is skipped."""
        out: list[Partial] = []
        for d in _subdirs(self.staging):
            meta = _read_meta(d)
            done, mtime = staged_bytes(d)
            slug = d.name.rsplit(".", 1)[0]
            try:
                dir_mtime = d.stat().st_mtime
            except FileNotFoundError:
                continue
            out.append(
                Partial(
                    id=d.name,
                    path=d,
                    source=meta.get("source", "?"),
                    total_bytes=int(meta.get("total_bytes", 0)),
                    done_bytes=done,
                    active=self.source_lock_held(slug),
                    mtime=max(mtime, dir_mtime),
                )
            )
        return out

    # ------------------------------------------------------------------ eviction
    def _discard(self, path: Path) -> None:
        """Move a directory to trash (atomic disappearance) and delete it."""
        dest = self.trash / f"{path.name}.{os.urandom(4).hex()}"
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            return
        _rmtree(dest)

    def try_evict(self, entry: Entry) -> bool:
        """Delete a store entry unless a reader holds its lease. Caller holds global_lock."""
        lease = entry.path / "lease"
        try:
            fd = os.open(lease, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                touch(entry.path / "last_use")  # observed in use right now
                return False
            if entry.link:
                self.remove_link_if(self.root / entry.link, entry.id)
            dest = self.trash / f"{entry.id}.{os.urandom(4).hex()}"
            os.rename(entry.path, dest)
        finally:
            os.close(fd)
        _rmtree(dest)
        return True

    def make_room(
        self,
        need: int,
        max_bytes: int | None,
        protect: set[str],
        min_idle: float,
        log: Callable[[str], None],
        staging_id: str | None = None,
        strict: bool = True,
    ) -> list[str]:
        """Evict least-recently-used, unleased entries until used + need <= max_bytes.

        Caller holds global_lock. Returns evicted ids. Partial downloads count with their full
        size (the reservation of a running download). When the limit cannot be met because the
        remaining entries are in use (or too recently used) it raises WeightsError, or with
        ``strict=False`` (the model being synced is already published) logs a warning.
        """
        if max_bytes is None:
            return []
        now = time.time()
        entries = self.entries()
        partials = [p for p in self.partials() if p.id != staging_id]
        used = sum(e.total_bytes for e in entries) + sum(p.total_bytes for p in partials)
        if used + need <= max_bytes:
            return []
        candidates: list[tuple[float, object]] = [(e.last_use, e) for e in entries if e.id not in protect]
        candidates += [(p.mtime, p) for p in partials if not p.active]
        evicted: list[str] = []
        blocked: list[str] = []
        for last_use, item in sorted(candidates, key=lambda c: c[0]):
            if used + need <= max_bytes:
                break
            if isinstance(item, Entry):
                if item.in_use:
                    touch(item.path / "last_use")
                    blocked.append(f"{item.source} ({item.id}, in use)")
                    continue
                if now - last_use < min_idle:
                    blocked.append(f"{item.source} ({item.id}, used {now - last_use:.0f}s ago)")
                    continue
                if self.try_evict(item):
                    used -= item.total_bytes
                    evicted.append(item.id)
                    log(f"evicted {item.source} ({item.id}, {item.total_bytes} bytes, idle {now - last_use:.0f}s)")
                else:
                    blocked.append(f"{item.source} ({item.id}, in use)")
            else:
                assert isinstance(item, Partial)
                if now - last_use < min_idle:
                    blocked.append(f"partial {item.source} ({item.id})")
                    continue
                slug = item.id.rsplit(".", 1)[0]
                if self.source_lock_held(slug):
                    continue
                self._discard(item.path)
                used -= item.total_bytes
                evicted.append(item.id)
                log(f"removed abandoned partial download {item.source} ({item.id})")
        if used + need > max_bytes and not strict:
            log(
                f"warning: cache limit {max_bytes} bytes exceeded: {used} bytes in use after eviction"
                + (f"; not evictable: {', '.join(blocked)}" if blocked else "")
            )
        elif used + need > max_bytes:
            raise WeightsError(
                f"cache limit {max_bytes} bytes cannot fit {need} more bytes: {used} bytes remain after eviction"
                + (f"; not evictable: {', '.join(blocked)}" if blocked else "")
            )
        return evicted

    def gc_stale(self, loc: S3Location, keep: str, log: Callable[[str], None]) -> None:
        """Delete older versions of ``loc`` that no reader holds. Caller holds global_lock."""
        slug = self.slug(loc)
        for e in self.entries():
            if e.id != keep and e.id.rsplit(".", 1)[0] == slug:
                if self.try_evict(e):
                    log(f"removed superseded version {e.id} of {loc}")

    def sweep_trash(self) -> None:
        if self.trash.is_dir():
            for d in self.trash.iterdir():
                _rmtree(d)


def lease_held(entry_dir: Path) -> bool:
    """True if some process holds a (shared) lease flock on the entry."""
    return flock_held(entry_dir / "lease")


def staged_bytes(staging_dir: Path) -> tuple[int, float]:
    """(bytes known done, newest mtime) for a staging directory."""
    done = 0
    newest = 0.0
    files = staging_dir / "files"
    if not files.is_dir():
        return 0, newest
    for dirpath, _dirs, names in os.walk(files):
        for name in names:
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            newest = max(newest, st.st_mtime)
            if name.endswith(".part.journal"):
                done += journal_done_bytes(p)
            elif not name.endswith(".part"):
                done += st.st_size
    return done, newest


def journal_done_bytes(path: Path) -> int:
    try:
        lines = path.read_bytes().split(b"\n")
        header = json.loads(lines[0])
        size, part = int(header["size"]), int(header["part_size"])
        idxs = {int(x) for x in lines[1:] if x.strip().isdigit()}
    except (OSError, ValueError, KeyError, IndexError):
        return 0
    return sum(min(part, size - i * part) for i in idxs if 0 <= i * part < size)


def resolve_entry(path: str | os.PathLike[str]) -> tuple[Cache, Path]:
    """Map a model path (the link, or any path inside an entry) to (cache, store entry dir)."""
    real = Path(os.path.realpath(path))
    for parent in [real, *real.parents]:
        if parent.parent.name == "store" and parent.parent.parent.name == META:
            return Cache(parent.parent.parent.parent), parent
    raise WeightsError(f"{path} is not a model in a fleetkit-weights cache (it resolves to {real})")


def load_entry_manifest(entry_dir: Path) -> manifest_mod.Manifest:
    return manifest_mod.parse((entry_dir / "manifest.json").read_bytes(), str(entry_dir / "manifest.json"))


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def _rmtree(path: Path) -> None:
    import shutil  # noqa: PLC0415 - not needed on the warm path

    shutil.rmtree(path, ignore_errors=True)
