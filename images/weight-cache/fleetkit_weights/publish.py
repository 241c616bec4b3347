"""`publish`: upload a local model directory and, last, its manifest."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fleetkit_weights import MANIFEST_NAME
from fleetkit_weights import manifest as manifest_mod
from fleetkit_weights.errors import S3Error, UsageError, WeightsError
from fleetkit_weights.progress import Progress, fmt_bytes, fmt_rate
from fleetkit_weights.retry import RetryPolicy, call_with_retry
from fleetkit_weights.s3 import S3Client, S3Location
from fleetkit_weights.hashing import hash_file_chunks

MiB = 1 << 20
MULTIPART_THRESHOLD = 64 * MiB
MAX_PARTS = 10_000


@dataclass
class PublishResult:
    source: str
    dest: str
    files: int = 0
    uploaded_files: int = 0
    skipped_files: int = 0
    total_bytes: int = 0
    uploaded_bytes: int = 0
    seconds: float = 0.0
    manifest_sha256: str = ""  # canonical digest, hex (see manifest.py)

    def summary(self) -> str:
        rate = self.uploaded_bytes / self.seconds if self.seconds > 0 else 0.0
        return (
            f"published {self.source} -> {self.dest}: {self.files} files, {fmt_bytes(self.total_bytes)} "
            f"({self.uploaded_files} uploaded, {self.skipped_files} unchanged) in {self.seconds:.2f}s "
            f"({fmt_rate(rate)})\n"
            f"manifest digest: sha256:{self.manifest_sha256} (pin it as weights_digest next to the model's revision, "
            f"or pass it to `sync --manifest-digest`)"
        )


def scan(local_dir: Path, include_hidden: bool = False) -> list[tuple[str, Path]]:
    """Regular files under local_dir (symlinks to files are followed, as in a HF snapshot)."""
    out: list[tuple[str, Path]] = []
    problems: list[str] = []
    hidden = 0
    for dirpath, dirs, names in os.walk(local_dir, followlinks=True):
        if not include_hidden:
            hidden += sum(d.startswith(".") for d in dirs)
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        dirs.sort()
        for name in sorted(names):
            if not include_hidden and name.startswith("."):
                hidden += 1
                continue
            p = Path(dirpath) / name
            rel = p.relative_to(local_dir).as_posix()
            if rel == MANIFEST_NAME:
                continue
            if not p.is_file():
                continue
            bad = manifest_mod.check_rel_path(rel)
            if bad:
                problems.append(bad)
                continue
            out.append((rel, p))
    if problems:
        raise UsageError([f"cannot publish {local_dir}: {p}" for p in problems])
    if not out:
        skipped = f" ({hidden} hidden entries skipped; --include-hidden uploads them)" if hidden else ""
        raise UsageError(f"nothing to publish: {local_dir} contains no files{skipped}")
    return out


def publish(
    client: S3Client,
    local_dir: Path,
    loc: S3Location,
    concurrency: int,
    part_size: int,
    policy: RetryPolicy,
    log: Callable[[str], None],
    quiet: bool = False,
    progress_interval: float | None = None,
    include_hidden: bool = False,
    chunk_size: int = 16 * MiB,
    chunk_hash: str = "blake3",
) -> PublishResult:
    t0 = time.monotonic()
    files = scan(local_dir, include_hidden)
    res = PublishResult(str(local_dir), str(loc), files=len(files))

    # 1. hash
    total = sum(p.stat().st_size for _, p in files)
    res.total_bytes = total
    hprog = Progress(f"hashing {local_dir}", total, interval=progress_interval, enabled=not quiet).start()
    try:
        with cf.ThreadPoolExecutor(max_workers=max(1, min(concurrency, 4))) as pool:
            digests = list(pool.map(
                lambda item: hash_file_chunks(item[1], chunk_size or (1 << 62), hprog, chunk_hash if chunk_size else "sha256"),
                files))
    finally:
        hprog.stop()
    entries = [
        manifest_mod.FileEntry(rel, p.stat().st_size, d, chunk_size if chunk_size and p.stat().st_size else 0,
                               tuple(chunks) if chunk_size and p.stat().st_size else (),
                               chunk_hash if chunk_size and p.stat().st_size else "sha256")
        for (rel, p), (d, chunks) in zip(files, digests)
    ]
    new = manifest_mod.build(entries)
    res.manifest_sha256 = new.digest
    paths = dict(files)

    # 2. compare with what is there
    mkey = loc.key(MANIFEST_NAME)
    old: manifest_mod.Manifest | None = None
    try:
        raw, _ = call_with_retry(lambda: client.get_bytes(loc.bucket, mkey), policy, f"GET s3://{loc.bucket}/{mkey}")
        old = manifest_mod.parse(raw, f"s3://{loc.bucket}/{mkey}")
    except S3Error as exc:
        if exc.status != 404:
            raise
    except WeightsError:
        old = None  # unreadable old manifest: replace it
    unchanged: set[str] = set()
    if old is not None:
        old_files = {f.path: f for f in old.files}
        for f in new.files:
            prev = old_files.get(f.path)
            if prev is not None and (prev.size, prev.sha256) == (f.size, f.sha256):  # same bytes, maybe other chunks
                try:
                    info = call_with_retry(
                        lambda: client.head(loc.bucket, loc.key(f.path)), policy, f"HEAD {loc.key(f.path)}"
                    )
                    if info.size == f.size:
                        unchanged.add(f.path)
                except S3Error as exc:
                    if exc.status != 404:
                        raise
        if old.files != new.files or len(unchanged) != len(new.files):
            # Readers must see "no manifest" rather than a manifest whose objects are being replaced.
            call_with_retry(lambda: client.delete(loc.bucket, mkey), policy, f"DELETE s3://{loc.bucket}/{mkey}")
            log(f"replacing the model at {loc}: removed the old manifest first")
    todo = [f for f in new.files if f.path not in unchanged]
    res.skipped_files = len(unchanged)

    # 3. upload
    uprog = Progress(f"uploading to {loc}", sum(f.size for f in todo), interval=progress_interval,
                     enabled=not quiet).start()
    try:
        _upload_all(client, loc, todo, paths, concurrency, part_size, policy, uprog)
    finally:
        uprog.stop()
    res.uploaded_files = len(todo)
    res.uploaded_bytes = sum(f.size for f in todo)

    # 4. manifest last: its presence is what makes the model visible to `sync`
    if old is not None and old.files == new.files and len(unchanged) == len(new.files):
        res.manifest_sha256 = old.digest  # identical model: keep the manifest (and its version id)
    else:
        call_with_retry(
            lambda: client.put_bytes(loc.bucket, mkey, new.raw, "application/json"), policy, f"PUT s3://{loc.bucket}/{mkey}"
        )
    res.seconds = time.monotonic() - t0
    return res


def _upload_all(
    client: S3Client,
    loc: S3Location,
    todo: list[manifest_mod.FileEntry],
    paths: dict[str, Path],
    concurrency: int,
    part_size: int,
    policy: RetryPolicy,
    progress: Progress,
) -> None:
    fds: dict[str, int] = {}
    uploads: dict[str, str] = {}  # path -> multipart upload id
    etags: dict[str, dict[int, str]] = {}
    lock = threading.Lock()
    try:
        for f in todo:
            fds[f.path] = os.open(paths[f.path], os.O_RDONLY)
        with cf.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures: list[cf.Future[Any]] = []
            for f in todo:
                key = loc.key(f.path)
                fd = fds[f.path]
                if f.size <= MULTIPART_THRESHOLD:
                    futures.append(pool.submit(
                        call_with_retry,
                        lambda key=key, fd=fd, size=f.size: client.put_file_range(
                            loc.bucket, key, fd, 0, size, on_bytes=progress.add),
                        policy, f"PUT s3://{loc.bucket}/{key}",
                    ))
                    continue
                psize = max(part_size, -(-f.size // MAX_PARTS), 5 * MiB)
                upload_id = call_with_retry(
                    lambda: client.create_multipart(loc.bucket, key), policy, f"CreateMultipartUpload {key}"
                )
                uploads[f.path] = upload_id
                etags[f.path] = {}
                for n, off in enumerate(range(0, f.size, psize), start=1):
                    length = min(psize, f.size - off)

                    def part(key: str = key, fd: int = fd, off: int = off, length: int = length, n: int = n,
                             upload_id: str = upload_id, path: str = f.path) -> None:
                        etag = call_with_retry(
                            lambda: client.put_file_range(
                                loc.bucket, key, fd, off, length,
                                query={"partNumber": str(n), "uploadId": upload_id}, on_bytes=progress.add),
                            policy, f"UploadPart {key} #{n}",
                        )
                        with lock:
                            etags[path][n] = etag

                    futures.append(pool.submit(part))
            try:
                for fut in cf.as_completed(futures):
                    fut.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        for path, upload_id in list(uploads.items()):
            key = loc.key(path)
            call_with_retry(
                lambda: client.complete_multipart(loc.bucket, key, upload_id, sorted(etags[path].items())),
                policy, f"CompleteMultipartUpload {key}",
            )
            del uploads[path]
    except BaseException:
        for path, upload_id in uploads.items():
            try:
                client.abort_multipart(loc.bucket, loc.key(path), upload_id)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        raise
    finally:
        for fd in fds.values():
            os.close(fd)
