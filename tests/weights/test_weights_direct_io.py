"""Direct I/O: verified socket buffers go to disk with O_DIRECT, with buffered fallbacks."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os

import pytest

from weights_support import cli, tree
from fleetkit_weights import transfer as transfer_mod
from fleetkit_weights.manifest import FileEntry
from fleetkit_weights.s3 import S3Client, S3Location
from fleetkit_weights.fetch import DIRECT_ALIGN
from fleetkit_weights.journal import FileJob
from fleetkit_weights.transfer import Transfer

needs_o_direct = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")


def _transfer(direct: bool = True) -> Transfer:
    return Transfer(client=None, loc=None, jobs=[], concurrency=1, policy=None, progress=None,  # type: ignore[arg-type]
                    log=lambda _m: None, durable=False, direct=direct)


def _job(tmp_path, size: int) -> tuple[FileJob, bytes]:
    data = os.urandom(size)
    entry = FileEntry("f.bin", size, hashlib.sha256(data).hexdigest(), 1 << 20, ("0" * 64,))
    return FileJob(entry, "k/f.bin", tmp_path / "f.bin", "", 1 << 20), data


def _opened(tmp_path, size: int, need_direct: bool = True) -> tuple[Transfer, FileJob, bytes, memoryview]:
    """A transfer with one open chunked job, and its data in a page-aligned buffer like the workers'."""
    job, data = _job(tmp_path, size)
    t = _transfer()
    t._open_job(job)
    if need_direct and job.dfd < 0:
        job.close()
        pytest.skip("this filesystem has no O_DIRECT")
    buf = mmap.mmap(-1, -(-size // DIRECT_ALIGN) * DIRECT_ALIGN)
    buf[:size] = data
    return t, job, data, memoryview(buf)[:size]


@pytest.fixture
def recorded_pwrites(monkeypatch):
    calls: list[tuple[int, int, int]] = []
    real = os.pwrite

    def pwrite(fd, data, off):
        calls.append((fd, len(data), off))
        return real(fd, data, off)

    monkeypatch.setattr(transfer_mod.os, "pwrite", pwrite)
    return calls


@needs_o_direct
def test_aligned_blocks_go_direct_and_the_tail_through_the_page_cache(tmp_path, recorded_pwrites):
    t, job, data, view = _opened(tmp_path, 3 * DIRECT_ALIGN + 100)
    direct_fd, buffered_fd = job.dfd, job.fd
    t._write(job, view, 0)
    job.close()
    assert recorded_pwrites == [(direct_fd, 3 * DIRECT_ALIGN, 0), (buffered_fd, 100, 3 * DIRECT_ALIGN)]
    assert job.part.read_bytes() == data


@needs_o_direct
def test_unaligned_offset_is_written_buffered(tmp_path, recorded_pwrites):
    t, job, data, view = _opened(tmp_path, 2 * DIRECT_ALIGN, need_direct=False)
    buffered_fd = job.fd
    # A resumed range can start anywhere (a body cut off mid-buffer): no direct write then.
    t._write(job, view[:10], 0)
    t._write(job, view[10:], 10)
    assert {fd for fd, _n, _o in recorded_pwrites} == {buffered_fd}
    job.close()
    assert job.part.read_bytes() == data


@needs_o_direct
def test_einval_from_direct_write_falls_back_for_good(tmp_path, monkeypatch):
    t, job, data, view = _opened(tmp_path, 2 * DIRECT_ALIGN)
    direct_fd = job.dfd
    real = os.pwrite
    refused = []

    def pwrite(fd, view, off):
        if fd == direct_fd:
            refused.append(off)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, view, off)

    monkeypatch.setattr(transfer_mod.os, "pwrite", pwrite)
    t._write(job, view[:DIRECT_ALIGN], 0)
    t._write(job, view[DIRECT_ALIGN:], DIRECT_ALIGN)
    assert refused == [0] and not job.direct_ok  # asked once, then never again
    job.close()
    assert job.part.read_bytes() == data


def test_other_write_errors_name_the_file(tmp_path, monkeypatch):
    t, job, _data, view = _opened(tmp_path, DIRECT_ALIGN, need_direct=False)

    def pwrite(fd, view, off):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transfer_mod.os, "pwrite", pwrite)
    with pytest.raises(transfer_mod.WeightsError, match=r"writing .*f\.bin\.part: No space left on device"):
        t._write(job, view, 0)
    job.close()


def test_whole_file_digest_jobs_stay_buffered(tmp_path):
    """Files without chunk digests are hashed by reading the .part back: no O_DIRECT for them."""
    data = os.urandom(5000)
    entry = FileEntry("w.bin", len(data), hashlib.sha256(data).hexdigest())
    job = FileJob(entry, "k/w.bin", tmp_path / "w.bin", "etag", 1 << 20)
    t = _transfer()
    t._open_job(job)
    assert job.dfd == -1
    job.close()


def test_no_direct_io_on_the_filesystem_still_syncs(tmp_path, published, s3_endpoint, monkeypatch):
    real = os.open

    def no_direct(path, flags, *a, **kw):
        if hasattr(os, "O_DIRECT") and flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(transfer_mod.os, "open", no_direct)
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 0, r
    assert tree(cache / published["bucket"] / published["prefix"]) == published["files"]


def test_buffered_io_option(tmp_path, published, s3_endpoint, monkeypatch):
    opened_direct = []
    real = os.open

    def spy(path, flags, *a, **kw):
        if hasattr(os, "O_DIRECT") and flags & os.O_DIRECT:
            opened_direct.append(path)
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(transfer_mod.os, "open", spy)
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint, "--buffered-io")
    assert r.rc == 0, r
    assert opened_direct == []
    assert tree(cache / published["bucket"] / published["prefix"]) == published["files"]
    r = cli("sync", "--help")
    assert "--buffered-io" in r.out


@needs_o_direct
def test_default_sync_opens_chunked_files_with_o_direct(tmp_path, published, s3_endpoint, monkeypatch):
    opened_direct = []
    real = os.open

    def spy(path, flags, *a, **kw):
        if flags & os.O_DIRECT:
            opened_direct.append(os.path.basename(path))
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(transfer_mod.os, "open", spy)
    r = cli("sync", published["source"], tmp_path / "cache", "--endpoint-url", s3_endpoint)
    assert r.rc == 0, r
    assert "model-00001-of-00002.safetensors.part" in opened_direct


def test_ranged_get_fills_the_buffer_before_each_sink_call(published, s3_endpoint):
    client = S3Client(endpoint_url=s3_endpoint)
    loc = S3Location(published["bucket"], published["prefix"])
    key = loc.key("model-00001-of-00002.safetensors")
    sizes: list[int] = []
    got = bytearray()

    def sink(view: memoryview) -> None:
        sizes.append(len(view))
        got.extend(view)

    buf = bytearray(64 * 1024)
    client.get_range_into(loc.bucket, key, 1000, 200_000, sink, buf)
    client.close()
    assert sizes == [65536, 65536, 65536, 200_000 - 3 * 65536]
    assert bytes(got) == published["files"]["model-00001-of-00002.safetensors"][1000:201_000]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "no-fsync"])
def test_fsynced_files_leave_the_page_cache(tmp_path, published, s3_endpoint, monkeypatch, fsync):
    """Buffered writes: once a file is fsynced its clean pages are dropped (DONTNEED); without
    fsync nothing is dropped (the pages are still dirty)."""
    dropped = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        if advice == os.POSIX_FADV_DONTNEED:
            dropped.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    extra = [] if fsync else ["--no-fsync"]
    r = cli("sync", published["source"], tmp_path / "c", "--endpoint-url", s3_endpoint, "--buffered-io", *extra)
    assert r.rc == 0, r
    shards = {"model-00001-of-00002.safetensors.part", "model-00002-of-00002.safetensors.part"}
    if fsync:
        assert shards <= set(dropped), dropped
    else:
        assert dropped == []
