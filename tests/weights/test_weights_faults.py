"""Failure handling: injected 5xx/resets/truncation, corrupt objects, kill -9 and resume,
concurrent syncs on one node. After every scenario the cache holds either the exact
model or nothing published."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fleetkit_weights.cache import META, Cache
from weights_support import agent_cmd, agent_env, cli, make_model, tree


def link(cache: Path, published: dict) -> Path:
    return cache / published["bucket"] / published["prefix"]


def assert_nothing_published(cache: Path, published: dict) -> None:
    assert not os.path.lexists(link(cache, published))
    assert Cache(cache).entries() == []


def cycle_plan(faults: list[str], every: int = 2):
    """Inject faults (round robin) into every `every`-th GET of model data."""
    state = {"n": 0, "i": 0}

    def plan(method, path, headers):
        if method != "GET" or "fleetkit-manifest.json" in path or "?" in path:
            return None
        state["n"] += 1
        if state["n"] % every:
            return None
        fault = faults[state["i"] % len(faults)]
        state["i"] += 1
        return fault

    return plan


def test_survives_5xx_resets_and_truncated_bodies(tmp_path, published, proxy):
    faults = ["503", "500", "reset", "reset_mid", "truncate"]
    proxy.plan = cycle_plan(faults, every=2)
    cache = tmp_path / "cache"
    # one GET per 256 KiB chunk: enough GETs for every fault to come round
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url, "--concurrency", "4", "--part-size", "256Ki")
    assert r.rc == 0, r
    assert set(proxy.injected) == set(faults), proxy.injected
    assert "retries" in r.out
    assert tree(link(cache, published)) == published["files"]


def test_throttling_on_manifest_and_head_is_retried(tmp_path, published, proxy):
    seen = {"n": 0}

    def plan(method, path, headers):
        seen["n"] += 1
        return "503" if seen["n"] <= 3 or (method == "HEAD" and seen["n"] % 2) else None

    proxy.plan = plan
    r = cli("sync", published["source"], tmp_path / "c", "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert tree(link(tmp_path / "c", published)) == published["files"]


def test_persistent_failure_gives_up_and_publishes_nothing(tmp_path, published, proxy, monkeypatch):
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "3")
    proxy.plan = lambda m, p, h: "503" if m == "GET" and "tokenizer" in p else None
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url)
    assert r.rc == 1
    assert "giving up after 3 attempts" in r.err and "tokenizer/tokenizer.json" in r.err and "SlowDown" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert_nothing_published(cache, published)
    # ... and a later sync with a healthy store completes it
    proxy.plan = lambda m, p, h: None
    assert cli("sync", published["source"], cache, "--endpoint-url", proxy.url).rc == 0
    assert tree(link(cache, published)) == published["files"]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunk-digests", "whole-file-digest"])
def test_corrupt_object_is_named_and_never_published(tmp_path, bucket, s3, s3_endpoint, chunked):
    src = tmp_path / "src"
    files = make_model(src, {"a.safetensors": 900_000, "b.safetensors": 600_000, "config.json": 100})
    uri = f"s3://{bucket}/corrupt"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki" if chunked else "0").rc == 0
    bad = bytearray(files["b.safetensors"])
    bad[400_000] ^= 0xFF  # same size, one flipped byte
    s3.put_object(Bucket=bucket, Key="corrupt/b.safetensors", Body=bytes(bad))
    cache = tmp_path / "cache"
    r = cli("sync", uri, cache, "--endpoint-url", s3_endpoint, "--part-size", "128Ki")
    assert r.rc == 3, r
    assert "b.safetensors" in r.err and "corrupt data" in r.err and "nothing was published" in r.err
    assert "Traceback" not in r.err
    assert not os.path.lexists(cache / bucket / "corrupt")
    assert Cache(cache).entries() == []
    leftovers = sorted(p.name for p in (cache / META / "staging").rglob("b.safetensors*"))
    if chunked:
        # the verified chunks stay (journaled) for the next attempt; the corrupt one is not journaled
        assert leftovers == ["b.safetensors.part", "b.safetensors.part.journal"]
        (journal,) = (cache / META / "staging").rglob("b.safetensors.part.journal")
        assert b"\n1\n" not in journal.read_bytes()  # bytes 262144-524287 hold the flipped byte
    else:
        assert leftovers == []  # a whole-file digest cannot tell which bytes are bad: all are gone


def test_size_mismatch_names_file(tmp_path, published, s3, s3_endpoint):
    s3.put_object(Bucket=published["bucket"], Key=f"{published['prefix']}/config.json", Body=b"{}")
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 3 and "'config.json' is 2 bytes in the bucket" in r.err
    assert_nothing_published(cache, published)


def test_missing_object_names_file(tmp_path, published, s3, s3_endpoint):
    s3.delete_object(Bucket=published["bucket"], Key=f"{published['prefix']}/tokenizer/tokenizer.json")
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 1 and "'tokenizer/tokenizer.json' is listed in the manifest but missing" in r.err
    assert_nothing_published(cache, published)


def test_object_replaced_during_download(tmp_path, published, s3, s3_endpoint, proxy):
    """If-Match on the HEAD ETag: a shard rewritten mid-download fails cleanly, nothing published."""
    key = f"{published['prefix']}/model-00001-of-00002.safetensors"
    done = {"n": 0}

    def plan(method, path, headers):
        if method == "GET" and path.endswith("model-00001-of-00002.safetensors"):
            done["n"] += 1
            if done["n"] == 2:
                s3.put_object(Bucket=published["bucket"], Key=key, Body=b"z" * 1_500_000)
        return None

    proxy.plan = plan
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url, "--concurrency", "1", "--part-size", "256Ki")
    assert r.rc in (1, 3), r
    assert "model-00001-of-00002.safetensors" in r.err
    assert_nothing_published(cache, published)


@pytest.mark.slow
def test_kill_9_mid_download_then_resume(tmp_path, bucket, s3_endpoint, proxy):
    src = tmp_path / "src"
    files = make_model(src, {"shard-1.bin": 6 << 20, "shard-2.bin": 2 << 20})
    total = sum(len(v) for v in files.values())
    uri = f"s3://{bucket}/resume"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki").rc == 0
    cache = tmp_path / "cache"
    proxy.rate = 1.5e6  # bytes/s per connection: the sync takes a few seconds
    env = agent_env()
    proc = subprocess.Popen(agent_cmd("sync", uri, cache, "--endpoint-url", proxy.url, "--concurrency", "2"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        journals = list((cache / META / "staging").rglob("*.part.journal")) if (cache / META).exists() else []
        done_lines = sum(max(0, len(j.read_bytes().split(b"\n")) - 2) for j in journals)
        if done_lines >= 8:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    else:
        pytest.fail("no progress recorded in the journal")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    fetched_first = proxy.data_bytes
    assert 0 < fetched_first < total
    assert not os.path.lexists(cache / bucket / "resume")  # nothing half-published
    from fleetkit_weights.cache import staged_bytes

    (staging,) = list((cache / META / "staging").iterdir())
    recorded, _ = staged_bytes(staging)
    assert recorded >= 8 * 256 * 1024

    proxy.rate = None
    proxy.reset_counters()
    r = cli("sync", uri, cache, "--endpoint-url", proxy.url, "--concurrency", "2")
    assert r.rc == 0, r
    assert "resuming" in r.err and "resumed" in r.out
    # the second run fetched only what the journal did not cover (not a restart)
    assert proxy.data_bytes <= total - recorded
    assert tree(cache / bucket / "resume") == files


@pytest.mark.slow
def test_concurrent_syncs_share_one_download(tmp_path, published, proxy):
    proxy.rate = 1e6  # slow enough that the second process arrives mid-download
    cache = tmp_path / "cache"
    cmd = agent_cmd("sync", published["source"], cache, "--endpoint-url", proxy.url, "--concurrency", "4")
    first = subprocess.Popen(cmd, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while proxy.data_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.Popen(cmd, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    # exactly one download's worth of model bytes went over the wire
    assert proxy.data_bytes == published["size"]
    assert "5 downloaded" in outs[0][0]
    assert "already cached and verified (after waiting for another sync)" in outs[1][0]
    assert "waiting for another sync" in outs[1][1]
    assert tree(link(cache, published)) == published["files"]
    assert len(Cache(cache).entries()) == 1


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resumes(tmp_path, published, proxy):
    proxy.rate = 1e6
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        agent_cmd("sync", published["source"], cache, "--endpoint-url", proxy.url, "--concurrency", "2"),
        env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while proxy.data_bytes < 600_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert not os.path.lexists(link(cache, published))
    proxy.rate = None
    proxy.reset_counters()
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert proxy.data_bytes < published["size"]
    assert tree(link(cache, published)) == published["files"]


def test_whole_file_resume_with_damaged_part_refetches_once(tmp_path, bucket, s3_endpoint, proxy, monkeypatch):
    """Without chunk digests, resumed bytes are only checked by the whole-file sha256: if
    they were lost (power loss after the journal said done), the file is fetched again."""
    src = tmp_path / "src"
    files = make_model(src, {"w.bin": 2 * 1024 * 1024})
    uri = f"s3://{bucket}/plain-resume"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "0").rc == 0
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "2")

    def plan(method, path, headers):
        rng = headers.get("Range", "")
        return "503" if method == "GET" and rng.startswith("bytes=") and int(rng[6:].split("-")[0]) >= 1 << 20 else None

    proxy.plan = plan
    cache = tmp_path / "cache"
    r = cli("sync", uri, cache, "--endpoint-url", proxy.url, "--part-size", "256Ki", "--concurrency", "1")
    assert r.rc == 1 and "giving up" in r.err
    (part,) = list((cache / META / "staging").rglob("w.bin.part"))
    with open(part, "r+b") as f:  # the journal says these bytes are done; make them wrong
        f.write(b"\0" * 4096)
    proxy.plan = lambda m, p, h: None
    r = cli("sync", uri, cache, "--endpoint-url", proxy.url, "--part-size", "256Ki")
    assert r.rc == 0, r
    assert "resuming w.bin" in r.err and "downloading it again from scratch" in r.err
    assert tree(cache / bucket / "plain-resume") == files
