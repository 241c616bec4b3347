"""The gaps an independent chaos run found (issue #17), each shown by a test that failed before:

1. the cache-limit check and the reservation of room are one step (two cold syncs cannot both
   pass it), exit 0 means a usable model, and warm hits enforce the limit too;
3. a trickling server cannot hold a sync: low-speed limit per connection, overall deadline;
4. verified chunks are kept when another chunk of the file fails, and every verified chunk is
   journaled before the next one counts;
5. status/eviction scans tolerate directories renamed while they scan.

(2, the manifest's integrity and pinning, is in test_weights_pinning.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetkit_weights import cache as cache_mod
from fleetkit_weights.cache import META, Cache, staged_bytes
from fleetkit_weights.errors import WeightsError
from fleetkit_weights.options import parse_s3_uri
from fleetkit_weights.result import SyncResult
from fleetkit_weights.retry import RetryPolicy
from fleetkit_weights.s3 import S3Client
from fleetkit_weights.sync import Syncer, SyncOptions
from fleetkit_weights.journal import read_journal
from fleetkit_weights.transfer import Transfer
from weights_support import agent_cmd, agent_env, cli, fast, make_model, tree

MB = 1_000_000
CHUNK = 256 * 1024


@pytest.fixture
def two_models(tmp_path, bucket, s3_endpoint):
    out = {}
    for name, seed in (("a", 1), ("b", 2)):
        src = tmp_path / f"src-{name}"
        files = make_model(src, {"weights.bin": MB}, seed=seed)
        uri = f"s3://{bucket}/{name}"
        assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--quiet").rc == 0
        out[name] = {"uri": uri, "files": files, "link": lambda cache, n=name: cache / bucket / n}
    return out


# --------------------------------------------------------------------------- 1. capacity


def test_two_cold_syncs_cannot_both_pass_the_cache_limit(tmp_path, two_models, s3_endpoint, monkeypatch):
    """Room for one model, two cold syncs of different models at once: exactly one downloads and
    publishes (success), the other fails before downloading and publishes nothing. Before, both
    passed the room check (the download became visible only later), both published, both failed."""
    root = tmp_path / "cache"
    limit = int(1.5 * MB)
    both_checked = threading.Barrier(2)
    download = Syncer._download

    def download_after_both_checked(self, *args, **kwargs):
        # Both syncs' room checks are done before either download starts (the old race window).
        try:
            both_checked.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass  # the other sync did not get this far
        return download(self, *args, **kwargs)

    monkeypatch.setattr(Syncer, "_download", download_after_both_checked)
    results: dict[str, object] = {}

    def run(name: str) -> None:
        client = S3Client(s3_endpoint)
        opts = SyncOptions(max_cache_bytes=limit, quiet=True, retry=RetryPolicy(3, 0.01, 0.05))
        try:
            results[name] = Syncer(client, Cache(root), opts, lambda msg: None).sync(parse_s3_uri(two_models[name]["uri"]))
        except WeightsError as exc:
            results[name] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ok = [n for n, r in results.items() if isinstance(r, SyncResult)]
    failed = [n for n, r in results.items() if isinstance(r, WeightsError)]
    assert len(ok) == 1 and len(failed) == 1, results
    assert f"cannot fit {MB} more bytes" in str(results[failed[0]])
    assert tree(two_models[ok[0]]["link"](root)) == two_models[ok[0]]["files"]
    assert not os.path.lexists(two_models[failed[0]]["link"](root))
    entries = Cache(root).entries()
    assert [e.source for e in entries] == [two_models[ok[0]]["uri"]]
    assert sum(e.total_bytes for e in entries) <= limit
    assert Cache(root).partials() == []


@pytest.mark.parametrize("entry", [cli, fast], ids=["cli", "console-script"])
def test_warm_hit_enforces_the_limit(tmp_path, two_models, s3_endpoint, entry):
    """A cache over its limit (e.g. the limit was lowered) is brought under it by the next sync,
    even when that sync is a warm hit; before, only cold syncs evicted."""
    root = tmp_path / "cache"
    a, b = two_models["a"], two_models["b"]
    for m in (b, a):
        assert cli("sync", m["uri"], root, "--endpoint-url", s3_endpoint).rc == 0
    r = entry("sync", a["uri"], root, "--endpoint-url", s3_endpoint, "--max-cache-bytes", "1.5M",
              "--evict-min-idle", "0")
    assert r.rc == 0, r
    assert "already cached" in r.out and f"evicted {b['uri']}" in r.err
    assert [e.source for e in Cache(root).entries()] == [a["uri"]]
    assert not os.path.lexists(b["link"](root))


def test_warm_hit_over_the_limit_keeps_leased_models_and_succeeds(tmp_path, two_models, s3_endpoint):
    root = tmp_path / "cache"
    a, b = two_models["a"], two_models["b"]
    for m in (b, a):
        assert cli("sync", m["uri"], root, "--endpoint-url", s3_endpoint).rc == 0
    holder = subprocess.Popen(agent_cmd("lease", b["link"](root), "--", sys.executable, "-c",
                                        "import time; time.sleep(60)"),
                              env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not any(e.in_use for e in Cache(root).entries()) and time.monotonic() < deadline:
            time.sleep(0.05)
        r = cli("sync", a["uri"], root, "--endpoint-url", s3_endpoint, "--max-cache-bytes", "1.5M",
                "--evict-min-idle", "0")
        # the model is published and usable: exit 0, with a warning that the limit is not met
        assert r.rc == 0, r
        assert "warning: cache limit" in r.err and "in use" in r.err
        assert tree(b["link"](root)) == b["files"]
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- 3. trickle


@pytest.fixture
def big_model(tmp_path, bucket, s3_endpoint):
    src = tmp_path / "src-big"
    files = make_model(src, {"shard.bin": 4 * CHUNK})
    uri = f"s3://{bucket}/big"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki", "--quiet").rc == 0
    return {"uri": uri, "files": files, "link": tmp_path / "cache" / bucket / "big", "key": "big/shard.bin"}


def test_trickling_range_is_abandoned_and_requested_again(tmp_path, big_model, proxy):
    trickled = []

    def plan(method, path, headers):
        if method == "GET" and path.endswith("/shard.bin") and headers.get("Range", "").startswith("bytes=0-"):
            if not trickled:
                trickled.append(headers["Range"])
                return "trickle"  # 20 KB/s: this 256 KiB range alone would take 13 s
        return None

    proxy.plan = plan
    # one chunk per GET (--part-size = the chunk size), so the trickled range is the first chunk
    r = cli("sync", big_model["uri"], tmp_path / "cache", "--endpoint-url", proxy.url, "--concurrency", "2",
            "--speed-limit", "100K", "--speed-time", "1", "--part-size", "256Ki")
    assert r.rc == 0, r
    assert trickled == [f"bytes=0-{CHUNK - 1}"]
    assert proxy.injected == {"trickle": 1}
    # the rest of the first range was requested again on a new connection, from where it stopped
    starts = [p for m, p in proxy.requests if m == "GET" and p.endswith("/shard.bin")]
    assert len(starts) >= 5
    assert tree(big_model["link"]) == big_model["files"]


def test_deadline_stops_a_trickling_sync(tmp_path, big_model, proxy):
    first = f"bytes=0-{CHUNK - 1}"  # served at full speed; every later range trickles
    proxy.plan = lambda m, p, h: ("trickle" if m == "GET" and p.endswith("/shard.bin") and h.get("Range") != first
                                  else None)
    proxy.trickle_rate = 110_000.0  # above the low-speed limit: only the deadline can stop it
    cache = tmp_path / "cache"
    r = cli("sync", big_model["uri"], cache, "--endpoint-url", proxy.url, "--concurrency", "1", "--deadline", "3",
            "--part-size", "256Ki")
    assert r.rc == 1, r
    assert "deadline of 3s exceeded" in r.err and "nothing was published" in r.err
    assert not os.path.lexists(big_model["link"])
    (staging,) = Cache(cache).partials()
    assert staging.done_bytes >= CHUNK  # what was verified in time stays for the next sync


def test_low_speed_and_deadline_options_are_checked(tmp_path):
    r = cli("sync", "s3://bk/p", tmp_path, "--speed-limit", "fast", "--speed-time", "-1", "--deadline", "0")
    assert r.rc == 2
    assert "--speed-limit" in r.err and "--speed-time must not be negative" in r.err
    assert "--deadline must be more than 0 seconds" in r.err


# --------------------------------------------------------------------------- 4. wasted bytes


def test_verified_chunks_are_kept_when_another_chunk_fails(tmp_path, big_model, proxy):
    """The last chunk arrives corrupt twice: exit 3, nothing published; the next sync fetches that
    chunk only. Before, the whole file (with its 3 verified chunks) was discarded."""
    bad_range = f"bytes={3 * CHUNK}-{4 * CHUNK - 1}"
    proxy.plan = lambda m, p, h: "flip" if m == "GET" and h.get("Range") == bad_range else None
    cache = tmp_path / "cache"
    r = cli("sync", big_model["uri"], cache, "--endpoint-url", proxy.url, "--concurrency", "1", "--part-size", "256Ki")
    assert r.rc == 3, r
    assert "corrupt data" in r.err and "verified chunks are kept" in r.err
    assert not os.path.lexists(big_model["link"])
    proxy.plan = lambda m, p, h: None
    proxy.reset_counters()
    r = cli("sync", big_model["uri"], cache, "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert proxy.data_bytes == CHUNK
    assert tree(big_model["link"]) == big_model["files"]


def _range_start(headers: dict) -> int:
    return int(headers["Range"].partition("=")[2].partition("-")[0])


def test_one_get_covers_several_chunks_and_a_corrupt_one_is_asked_for_again(tmp_path, big_model, proxy):
    """--part-size 1Mi over 256 KiB chunks: one GET for the whole file. Its third chunk arrives
    corrupt: that GET is dropped, and only that chunk onwards is requested again."""
    ranges: list[str] = []

    def plan(method, path, headers):
        if method == "GET" and path.endswith("/shard.bin"):
            ranges.append(headers["Range"])
            if len(ranges) == 1:
                return f"flip:{(2 * CHUNK + 100) * 8}"
        return None

    proxy.plan = plan
    r = cli("sync", big_model["uri"], tmp_path / "cache", "--endpoint-url", proxy.url, "--part-size", "1Mi")
    assert r.rc == 0, r
    assert ranges == [f"bytes=0-{4 * CHUNK - 1}", f"bytes={2 * CHUNK}-{4 * CHUNK - 1}"]
    assert proxy.injected == {f"flip:{(2 * CHUNK + 100) * 8}": 1}
    assert tree(big_model["link"]) == big_model["files"]


def test_chunk_corrupt_twice_in_a_multi_chunk_get_keeps_the_chunks_before_it(tmp_path, big_model, proxy):
    def plan(method, path, headers):
        if method == "GET" and path.endswith("/shard.bin") and _range_start(headers) <= 2 * CHUNK:
            return f"flip:{(2 * CHUNK - _range_start(headers) + 100) * 8}"  # a bit in the third chunk
        return None

    proxy.plan = plan
    cache = tmp_path / "cache"
    r = cli("sync", big_model["uri"], cache, "--endpoint-url", proxy.url, "--part-size", "1Mi")
    assert r.rc == 3, r
    assert f"bytes {2 * CHUNK}-{3 * CHUNK - 1} of 'shard.bin'" in r.err and "verified chunks are kept" in r.err
    (journal,) = (cache / META / "staging").rglob("shard.bin.part.journal")
    assert sorted(journal.read_bytes().split(b"\n")[1:-1]) == [b"0", b"1"]  # each verified chunk journaled
    proxy.plan = lambda m, p, h: None
    proxy.reset_counters()
    r = cli("sync", big_model["uri"], cache, "--endpoint-url", proxy.url, "--part-size", "1Mi")
    assert r.rc == 0, r
    assert proxy.data_bytes == 2 * CHUNK
    assert tree(big_model["link"]) == big_model["files"]


def test_every_verified_chunk_is_journaled_at_once(tmp_path, big_model, s3_endpoint, monkeypatch):
    """When a range counts as done, its journal line is already durable, so a kill loses at most
    the ranges in flight. Before, the journal was written at most once a second."""
    seen: list[tuple[int, bool]] = []
    range_done = Transfer._range_done

    def check(self, job, idx):
        range_done(self, job, idx)
        if job.journal.exists():  # the last range renames the file and drops its journal
            journaled = read_journal(job.journal, job.entry, job.etag)
            seen.append((idx, journaled is not None and idx in journaled[1]))

    monkeypatch.setattr(Transfer, "_range_done", check)
    r = cli("sync", big_model["uri"], tmp_path / "cache", "--endpoint-url", s3_endpoint, "--concurrency", "1")
    assert r.rc == 0, r
    assert len(seen) == 3 and all(ok for _, ok in seen), seen


@pytest.mark.slow
def test_kill_9_loses_at_most_the_ranges_in_flight(tmp_path, bucket, s3_endpoint, proxy):
    src = tmp_path / "src"
    files = make_model(src, {"shard.bin": 32 * CHUNK})
    uri = f"s3://{bucket}/kill"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki").rc == 0
    cache = tmp_path / "cache"
    proxy.rate = 2e6
    proc = subprocess.Popen(agent_cmd("sync", uri, cache, "--endpoint-url", proxy.url, "--concurrency", "2"),
                            env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proxy.data_bytes < 12 * CHUNK and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fetched = proxy.data_bytes
    (staging,) = list((cache / META / "staging").iterdir())
    recorded, _ = staged_bytes(staging)
    # two connections: at most two partly received ranges (plus a piece the proxy had just sent)
    assert fetched - recorded <= 2 * CHUNK + 128 * 1024, (fetched, recorded)
    proxy.rate = None
    proxy.reset_counters()
    r = cli("sync", uri, cache, "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert proxy.data_bytes == len(files["shard.bin"]) - recorded
    assert tree(cache / bucket / "kill") == files


# --------------------------------------------------------------------------- 5. scans


def test_scans_tolerate_directories_renamed_meanwhile(tmp_path, two_models, s3_endpoint, monkeypatch):
    """A staging directory published (renamed) and a store entry evicted while status scans."""
    root = tmp_path / "cache"
    assert cli("sync", two_models["a"]["uri"], root, "--endpoint-url", s3_endpoint).rc == 0
    cache = Cache(root)
    (cache.staging / "x-00000000.0123456789abcdef" / "files").mkdir(parents=True)
    read_meta = cache_mod._read_meta

    def vanish(d: Path) -> dict:
        meta = read_meta(d)
        os.rename(d, cache.trash / d.name)  # another process moves it away right after we looked
        return meta

    monkeypatch.setattr(cache_mod, "_read_meta", vanish)
    assert cache.partials() == []
    assert cache.entries() == []
    monkeypatch.setattr(cache_mod, "_read_meta", read_meta)
    r = cli("status", root)
    assert r.rc == 0 and "0 model version(s), 0 partial download(s)" in r.out
