"""The warm fast path (fastpath.py): same answers as the full CLI, lean imports, and a
hand-over to the full CLI whenever it is not certain."""

from __future__ import annotations

import hmac
import json
import os
import random
import re
import subprocess
import sys
import urllib.parse

import pytest

from weights_support import AGENT_SRC, cli, fast, free_port
from fleetkit_weights import fastpath, options, s3req
from fleetkit_weights.cache import Cache
from fleetkit_weights.fastpath import Miss, warm_sync


def _cold(tmp_path, published, endpoint, *extra):
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", endpoint, *extra)
    assert r.rc == 0, r
    return cache


def _no_seconds(line: str) -> str:
    return re.sub(r"in \d+\.\d\ds", "in _s", line)


def test_warm_answer_matches_the_full_cli(tmp_path, published, s3_endpoint, proxy):
    cache = _cold(tmp_path, published, s3_endpoint)
    argv = ["sync", published["source"], str(cache), "--endpoint-url", proxy.url, "--concurrency", "8",
            "--max-cache-bytes", "10Gi", "--allow-stale"]
    proxy.reset_counters()
    line = warm_sync(argv)
    assert proxy.requests == [("GET", f"/{published['bucket']}/{published['prefix']}/fleetkit-manifest.json")]
    full = cli(*argv)
    assert full.rc == 0 and _no_seconds(line) == _no_seconds(full.out.strip())
    assert "already cached and verified" in line and "(0 B fetched)" in line

    as_json = json.loads(warm_sync(argv + ["--json"]))
    full_json = json.loads(cli(*argv, "--json").out)
    assert {k: v for k, v in as_json.items() if k != "seconds"} == {k: v for k, v in full_json.items() if k != "seconds"}


def test_warm_hit_records_the_use(tmp_path, published, s3_endpoint):
    cache = _cold(tmp_path, published, s3_endpoint)
    (entry,) = Cache(cache).entries()
    os.utime(entry.path / "last_use", (1_000_000, 1_000_000))
    warm_sync(["sync", published["source"], str(cache), "--endpoint-url", s3_endpoint])
    assert os.stat(entry.path / "last_use").st_mtime > 1_000_000


def test_endpoint_and_credentials_from_the_environment(tmp_path, published, s3_endpoint, monkeypatch):
    cache = _cold(tmp_path, published, s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the S3-specific variable wins
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint + "/")
    assert "already cached" in warm_sync(["sync", published["source"], str(cache), "-q"])
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(Miss, match="provider chain"):
        warm_sync(["sync", published["source"], str(cache)])


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["status", "{cache}"], "not a sync command"),
        (["sync", "{src}", "{cache}", "--help"], "left to argparse"),
        (["sync", "{src}", "{cache}", "--conc", "4"], "left to argparse"),
        (["sync", "{src}", "{cache}", "--concurrency"], "without a plain value"),
        (["sync", "{src}", "{cache}", "--concurrency", "-1"], "without a plain value"),
        (["sync", "{src}", "{cache}", "extra"], "exactly SOURCE and CACHE_DIR"),
        (["sync", "{src}", "{cache}", "--addressing-style", "sideways"], "addressing-style"),
        (["sync", "{src}", "{cache}", "--concurrency", "0"], "--concurrency must be between 1 and 512"),
        (["sync", "{src}", "{cache}", "--part-size", "1Ki"], "--part-size must be at least"),
        (["sync", "{src}", "{cache}", "--max-cache-bytes", "lots"], "invalid size"),
        (["sync", "gs://b/p", "{cache}"], "not an s3:// URI"),
        (["sync", "{src}", "{cache}", "--endpoint-url", "http://[::1]:9000"], "full URL parser"),
        (["sync", "{src}", "{cache}", "--endpoint-url", "http://host:9000/base"], "full URL parser"),
        (["sync", "{src}", "{cache}", "--no-sign-request"], "answered 403"),
    ],
)
def test_hands_over_when_not_certain(tmp_path, published, s3_endpoint, argv, reason, monkeypatch):
    cache = _cold(tmp_path, published, s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    argv = [a.replace("{src}", published["source"]).replace("{cache}", str(cache)) for a in argv]
    with pytest.raises(Exception, match=re.escape(reason)):
        warm_sync(argv)


def test_bad_values_get_the_full_clis_errors(tmp_path):
    argv = ["sync", "http://bucket/x", str(tmp_path / "no" / "such"), "--concurrency", "0",
            "--max-cache-bytes", "lots"]
    via_script, via_cli = fast(*argv), cli(*argv)
    assert via_script.rc == via_cli.rc == 2
    assert via_script.err == via_cli.err and len(via_script.err.strip().splitlines()) == 4


def _handed_over(cache, published, endpoint, reason: str):
    """The fast path refuses (with ``reason``); the console-script entry then succeeds via the full CLI."""
    argv = ["sync", published["source"], str(cache), "--endpoint-url", endpoint]
    with pytest.raises(Miss, match=reason):
        warm_sync(argv)
    r = fast(*argv)
    assert r.rc == 0, r
    return r, argv


def test_cold_cache_is_handed_to_the_full_sync(tmp_path, published, s3_endpoint):
    r, argv = _handed_over(tmp_path / "cache", published, s3_endpoint, "COMPLETE")
    assert "5 downloaded" in r.out
    assert "already cached" in warm_sync(argv)


def test_new_version_is_handed_over(tmp_path, published, s3_endpoint):
    cache = _cold(tmp_path, published, s3_endpoint)
    (published["src"] / "config.json").write_text('{"v": 2}')
    assert cli("publish", published["src"], published["source"], "--endpoint-url", s3_endpoint, "--quiet").rc == 0
    r, _ = _handed_over(cache, published, s3_endpoint, "no COMPLETE entry")  # a new manifest is a new entry
    assert "1 downloaded, 4 skipped" in r.out
    assert (cache / published["bucket"] / published["prefix"] / "config.json").read_text() == '{"v": 2}'


def test_damaged_entry_is_handed_over_and_repaired(tmp_path, published, s3_endpoint):
    cache = _cold(tmp_path, published, s3_endpoint)
    victim = cache / published["bucket"] / published["prefix"] / "model-00002-of-00002.safetensors"
    os.truncate(victim, 10)
    r, _ = _handed_over(cache, published, s3_endpoint, "has 10 bytes")
    assert "damaged" in r.err
    assert victim.read_bytes() == published["files"]["model-00002-of-00002.safetensors"]


def test_unsynced_entry_after_reboot_is_handed_over(tmp_path, published, s3_endpoint):
    cache = _cold(tmp_path, published, s3_endpoint, "--no-fsync")
    (entry,) = Cache(cache).entries()
    marker = json.loads((entry.path / "COMPLETE").read_text())
    marker["boot_id"] = "a-previous-boot"
    (entry.path / "COMPLETE").write_text(json.dumps(marker))
    r, argv = _handed_over(cache, published, s3_endpoint, "reboot")
    assert "re-verifying" in r.err
    assert "already cached" in warm_sync(argv)


def test_unreachable_store_is_handed_over(tmp_path, published, s3_endpoint, monkeypatch):
    cache = _cold(tmp_path, published, s3_endpoint)
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("FLEETKIT_WEIGHTS_DEBUG", "1")
    r = fast("sync", published["source"], cache, "--endpoint-url", f"http://127.0.0.1:{free_port()}",
             "--allow-stale")
    assert r.rc == 0 and "using the cached version" in r.out
    assert "warm fast path not taken: ConnectionRefusedError" in r.err


def test_warm_hit_imports_none_of_the_full_cli(tmp_path, published, s3_endpoint):
    """What makes the warm path fast is what it does not import; checked in a fresh interpreter."""
    cache = _cold(tmp_path, published, s3_endpoint)
    code = ("import sys; from fleetkit_weights.fastpath import main; rc = main(sys.argv[1:]); "
            "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=str(AGENT_SRC))
    # -S: without site, the dev environment's editable-install hooks (which import pathlib and re) stay out
    proc = subprocess.run([sys.executable, "-S", "-c", code, "sync", published["source"], str(cache), "--endpoint-url",
                           s3_endpoint], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "already cached" in proc.stdout, proc
    loaded = set(proc.stderr.split())
    heavy = {"argparse", "pathlib", "typing", "json", "re", "socket", "hashlib", "hmac", "urllib.parse",
             "threading", "enum", "fleetkit_weights.cli", "fleetkit_weights.s3", "fleetkit_weights.cache"}
    assert not heavy & loaded, sorted(heavy & loaded)


# --------------------------------------------------------------------------- lean helpers vs the stdlib


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = "aZ09-_.~/ %+=&?#:@!*'()[]{}\\\"é☃\t\n"
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_quote_matches_urllib():
    rng = random.Random(7)
    for _ in range(500):
        text = _random_text(rng, rng.randrange(0, 24))
        for safe in ("/", ""):
            assert s3req.quote(text, safe) == urllib.parse.quote(text, safe=safe + "~"), text


def test_hmac_matches_the_stdlib():
    rng = random.Random(8)
    for n in (0, 1, 32, 63, 64, 65, 200):
        key, msg = rng.randbytes(n), rng.randbytes(rng.randrange(0, 300))
        assert s3req.hmac_sha256(key, msg) == hmac.new(key, msg, "sha256").digest()


def test_slug_matches_the_regex_definition():
    import hashlib

    rng = random.Random(9)
    for _ in range(300):
        loc = options.S3Location("b-" + _random_text(rng, 3).replace("/", "x"), _random_text(rng, rng.randrange(0, 90)))
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{loc.bucket}_{loc.prefix}".strip("_"))[:80]
        assert Cache.slug(loc) == f"{readable}-{hashlib.sha256(str(loc).encode()).hexdigest()[:8]}"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]i?)?[bB]?\s*$")


@pytest.mark.parametrize("text", ["0", "12345", " 64 ", "1.5T", "800Gi", "64MiB", "2 Mi", "3kb", "7B", "1.25 gi",
                                  "", "Gi", "1.", ".5", "1e3", "-1", "1 G i", "1KI", "1Kib", "10 Mib ", "1,5G",
                                  "12x", "1 iB", "١٢"])
def test_parse_size_matches_the_regex_definition(text):
    units = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
             "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50}
    m = _SIZE_RE.match(text)
    if m is None or text.endswith("\n"):
        with pytest.raises(ValueError, match="invalid size"):
            options.parse_size(text)
    else:
        assert options.parse_size(text) == int(float(m.group(1)) * units[(m.group(2) or "").lower()])


@pytest.mark.parametrize("url, parts", [
    ("http://127.0.0.1:9000", ("http", "127.0.0.1", 9000, "")),
    ("https://storage.googleapis.com/", ("https", "storage.googleapis.com", 443, "")),
    ("http://minio", ("http", "minio", 80, "")),
    ("http://minio:0", None), ("http://minio:99999", None), ("http://minio:x", None), ("ftp://h", None),
    ("http://[::1]:9000", None), ("http://u:p@h", None), ("http://h/base", None), ("http://", None),
])
def test_plain_endpoint(url, parts):
    assert options.plain_endpoint(url) == parts


def test_json_loader_matches_json():
    docs = ['{"a": [1, 2.5, -3e2, "x\\u00e9\\n", null, true, false], "b": {}}', ' [] \n', '"s"', '{"n": 12345678901234567890}']
    for doc in docs:
        assert fastpath._loads(doc) == json.loads(doc)
    for bad in ['{"a": NaN}', '{"a": ', '{} x', '']:
        with pytest.raises(ValueError):
            fastpath._loads(bad)
