"""Cache capacity, LRU eviction, leases (the in-use protocol) and purge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetkit_weights.cache import Cache
from weights_support import agent_cmd, agent_env, cli, make_model, tree

MB = 1_000_000


@pytest.fixture
def three_models(tmp_path, bucket, s3_endpoint):
    out = {}
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        src = tmp_path / f"src-{name}"
        files = make_model(src, {"weights.bin": MB}, seed=seed)
        uri = f"s3://{bucket}/{name}"
        assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--quiet").rc == 0
        out[name] = {"uri": uri, "files": files, "path": lambda cache, n=name: cache / bucket / n}
    return out


def sync(uri, cache, endpoint, *extra):
    return cli("sync", uri, cache, "--endpoint-url", endpoint, "--evict-min-idle", "0", "--max-cache-bytes",
               str(int(2.5 * MB)), *extra)


def wait_in_use(cache: Path, uri: str, want: bool = True, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.source == uri and e.in_use == want for e in Cache(cache).entries()):
            return
        time.sleep(0.05)
    pytest.fail(f"{uri} in_use never became {want}")


def hold_lease(path: Path) -> subprocess.Popen:
    """`fleetkit-weights lease PATH -- python -c <sleep>`: the way a vLLM container holds its model."""
    return subprocess.Popen(
        agent_cmd("lease", path, "--", sys.executable, "-c", "import time; time.sleep(120)"),
        env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_lru_eviction_skips_model_in_use(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a, b, c = three_models["a"], three_models["b"], three_models["c"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    time.sleep(0.05)
    assert sync(b["uri"], cache, s3_endpoint).rc == 0
    holder = hold_lease(a["path"](cache))  # a is least recently used, but in use
    try:
        wait_in_use(cache, a["uri"])
        r = sync(c["uri"], cache, s3_endpoint)
        assert r.rc == 0, r
        assert "evicted s3://" in r.err and b["uri"] in r.err
        assert tree(a["path"](cache)) == a["files"]
        assert tree(c["path"](cache)) == c["files"]
        assert not os.path.lexists(b["path"](cache))
        sources = {e.source for e in Cache(cache).entries()}
        assert sources == {a["uri"], c["uri"]}
        status = json.loads(cli("status", cache, "--json").out)
        assert {m["source"]: m["in_use"] for m in status["models"]} == {a["uri"]: True, c["uri"]: False}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    wait_in_use(cache, a["uri"], want=False)
    # once released, a (last seen in use before c was synced) is the least recently used
    r = sync(b["uri"], cache, s3_endpoint)
    assert r.rc == 0, r
    assert {e.source for e in Cache(cache).entries()} == {b["uri"], c["uri"]}


def test_lru_order_without_leases(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a, b, c = three_models["a"], three_models["b"], three_models["c"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    time.sleep(0.05)
    assert sync(b["uri"], cache, s3_endpoint).rc == 0
    time.sleep(0.05)
    assert sync(a["uri"], cache, s3_endpoint).rc == 0  # warm hit refreshes a's last use
    time.sleep(0.05)
    assert sync(c["uri"], cache, s3_endpoint).rc == 0
    assert {e.source for e in Cache(cache).entries()} == {a["uri"], c["uri"]}


def test_limit_unreachable_because_of_leases_fails_clearly(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a, b, c = three_models["a"], three_models["b"], three_models["c"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    assert sync(b["uri"], cache, s3_endpoint).rc == 0
    holders = [hold_lease(a["path"](cache)), hold_lease(b["path"](cache))]
    try:
        wait_in_use(cache, a["uri"])
        wait_in_use(cache, b["uri"])
        r = sync(c["uri"], cache, s3_endpoint)
        assert r.rc == 1
        assert "cannot fit" in r.err and "in use" in r.err and a["uri"] in r.err
        assert not os.path.lexists(c["path"](cache))
        assert tree(a["path"](cache)) == a["files"] and tree(b["path"](cache)) == b["files"]
    finally:
        for h in holders:
            h.kill()
            h.wait()


def test_recently_used_models_are_protected_by_min_idle(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        assert sync(three_models[name]["uri"], cache, s3_endpoint).rc == 0
    r = cli("sync", three_models["c"]["uri"], cache, "--endpoint-url", s3_endpoint, "--max-cache-bytes", "2.5M",
            "--evict-min-idle", "3600")
    assert r.rc == 1 and "used 0s ago" in r.err


def test_lease_sidecar_mode_and_sigterm(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a = three_models["a"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    proc = subprocess.Popen(agent_cmd("lease", a["path"](cache)), env=agent_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_in_use(cache, a["uri"])
        r = cli("purge", cache, "--all")
        assert r.rc == 1 and "kept" in r.err
        assert tree(a["path"](cache)) == a["files"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "holding the lease" in err
    r = cli("purge", cache, "--all")
    assert r.rc == 0 and "purged 1" in r.out
    assert Cache(cache).entries() == [] and not os.path.lexists(a["path"](cache))


def test_lease_runs_command_with_lock_inherited(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a = three_models["a"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    probe = (
        "import fcntl, os, sys; fd = int(os.environ['FLEETKIT_WEIGHTS_LEASE_FD']);"
        "print(open(os.path.join(sys.argv[1], 'weights.bin'), 'rb').read(4).hex())"
    )
    proc = subprocess.run(agent_cmd("lease", a["path"](cache), "--", sys.executable, "-c", probe, a["path"](cache)),
                          env=agent_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == a["files"]["weights.bin"][:4].hex()


def test_lease_errors(tmp_path, three_models, s3_endpoint):
    outside = tmp_path / "plain"
    outside.mkdir()
    r = cli("lease", outside, "--", "true")
    assert r.rc == 2 and "not a model in a fleetkit-weights cache" in r.err
    cache = tmp_path / "cache"
    assert sync(three_models["a"]["uri"], cache, s3_endpoint).rc == 0
    r = cli("lease", three_models["a"]["path"](cache), "--", str(tmp_path / "no-such-binary"))
    assert r.rc == 1 and "cannot run" in r.err


def test_purge_by_source_and_partial(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    a, b = three_models["a"], three_models["b"]
    assert sync(a["uri"], cache, s3_endpoint).rc == 0
    assert sync(b["uri"], cache, s3_endpoint).rc == 0
    r = cli("purge", cache, "--source", a["uri"])
    assert r.rc == 0 and a["uri"] in r.out
    assert {e.source for e in Cache(cache).entries()} == {b["uri"]}
    staging = Cache(cache).staging / "junk.0123456789abcdef"
    (staging / "files").mkdir(parents=True)
    (staging / "meta.json").write_text(json.dumps({"source": "s3://x/y", "total_bytes": 10}))
    r = cli("purge", cache, "--partial")
    assert r.rc == 0 and "partial" in r.out and not staging.exists()


def test_status_empty_cache(tmp_path):
    r = cli("status", tmp_path)
    assert r.rc == 0 and "0 model version(s)" in r.out


def test_warm_loop_runs_rounds_and_stops_on_sigterm(tmp_path, three_models, s3_endpoint):
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        agent_cmd("warm", "--interval", "0.2", three_models["a"]["uri"], cache, "--endpoint-url", s3_endpoint),
        env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.path.lexists(three_models["a"]["path"](cache)):
        time.sleep(0.05)  # the first round's (cold) sync has published the model
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("synced ") >= 2 and "already cached" in out
    assert "SIGTERM: stopping" in err
    assert tree(three_models["a"]["path"](cache)) == three_models["a"]["files"]
