"""The manifest's own integrity and digest pinning (issue #17, gap 2).

A manifest damaged in transit (plain HTTP to an in-cluster store) must never publish a model under
a version that does not exist, nor make correct data look corrupt: `publish` stores the manifest's
canonical digest in it, `sync` checks it (and a pinned --manifest-digest) and fetches it again on a
mismatch. Manifests written before the digest existed stay readable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from fleetkit_weights import manifest as manifest_mod
from fleetkit_weights.cache import Cache
from fleetkit_weights.errors import IntegrityError
from fleetkit_weights.layout import entry_id
from fleetkit_weights.options import parse_s3_uri
from weights_support import cli, fast, make_model, tree

MANIFEST = "fleetkit-manifest.json"


def _entry(size: int, seed: int) -> manifest_mod.FileEntry:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    return manifest_mod.FileEntry(f"model-{seed}.safetensors", size, hashlib.sha256(data).hexdigest(), 1 << 16,
                                  tuple(hashlib.sha256(data[i:i + (1 << 16)]).hexdigest()
                                        for i in range(0, size, 1 << 16)))


def test_every_single_bit_flip_of_a_manifest_is_detected():
    """Each of the manifest's single-bit flips either fails to parse (and is fetched again) or
    parses to the very same model version and files. Before, 3.4% of flips parsed to a different
    version id with the same files, e.g. any flip inside created_at."""
    good = manifest_mod.build([_entry(200_000, 1), _entry(70_000, 2)])
    assert good.self_checked and json.loads(good.raw)["digest"] == good.pin
    same = corrupt = 0
    for bit in range(len(good.raw) * 8):
        raw = bytearray(good.raw)
        raw[bit // 8] ^= 1 << (bit % 8)
        try:
            man = manifest_mod.parse(bytes(raw), "flipped")
        except IntegrityError:
            corrupt += 1
            continue
        assert (man.digest, man.files) == (good.digest, good.files), f"bit {bit} changed the model silently"
        same += 1
    assert corrupt > 0.95 * len(good.raw) * 8, (same, corrupt)


def test_canonical_digest_ignores_formatting_but_not_content():
    man = manifest_mod.build([_entry(100_000, 3)])
    doc = json.loads(man.raw)
    reformatted = json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode()
    assert manifest_mod.parse(reformatted, "x").digest == man.digest
    doc["created_at"] = "2030-01-01T00:00:00Z"
    with pytest.raises(manifest_mod.ManifestCorrupt, match="does not match its own digest"):
        manifest_mod.parse(json.dumps(doc).encode(), "x")
    del doc["digest"]  # a manifest as earlier agents wrote it: valid, and its digest is its content's
    old = manifest_mod.parse(json.dumps(doc, indent=1).encode(), "x")
    assert not old.self_checked and old.digest != man.digest and old.files == man.files


@pytest.fixture
def model(tmp_path, bucket, s3_endpoint):
    src = tmp_path / "src"
    files = make_model(src, {"weights.bin": 600_000, "config.json": 200})
    uri = f"s3://{bucket}/pinned/rev-1"
    r = cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki", "--quiet")
    assert r.rc == 0, r
    (line,) = [ln for ln in r.out.splitlines() if ln.startswith("manifest digest: ")]
    pin = line.split()[2]
    return {"uri": uri, "files": files, "pin": pin, "bucket": bucket, "key": f"pinned/rev-1/{MANIFEST}",
            "link": tmp_path / "cache" / bucket / "pinned" / "rev-1"}


def test_publish_prints_the_digest_that_the_bucket_manifest_has(model, s3):
    raw = s3.get_object(Bucket=model["bucket"], Key=model["key"])["Body"].read()
    man = manifest_mod.parse(raw, "bucket")
    assert model["pin"] == man.pin == json.loads(raw)["digest"]


def test_manifest_flipped_in_transit_is_fetched_again(tmp_path, model, s3, proxy):
    raw = s3.get_object(Bucket=model["bucket"], Key=model["key"])["Body"].read()
    bit = (raw.index(b'"created_at": "') + 16) * 8  # a digit of the year
    served = []

    def plan(method, path, headers):
        if method == "GET" and path.endswith(MANIFEST):
            served.append(path)
            return f"flip:{bit}" if len(served) <= 2 else None
        return None

    proxy.plan = plan
    r = cli("sync", model["uri"], tmp_path / "cache", "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert len(served) == 3 and r.err.count("fetching the manifest again") == 2
    want = entry_id(parse_s3_uri(model["uri"]), model["pin"][7:])
    assert [e.id for e in Cache(tmp_path / "cache").entries()] == [want]
    assert tree(model["link"]) == model["files"]


def test_pinned_digest_is_required_and_verified(tmp_path, model, s3_endpoint, proxy):
    cache = tmp_path / "cache"
    other = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    r = cli("sync", model["uri"], cache, "--endpoint-url", proxy.url, "--manifest-digest", other)
    assert r.rc == 3, r
    assert f"the pinned digest is {other}" in r.err and model["pin"] in r.err and "nothing was published" in r.err
    assert len([p for m, p in proxy.requests if p.endswith(MANIFEST)]) == 5  # fetched again before refusing
    assert not os.path.lexists(model["link"])
    assert Cache(cache).entries() == [] and Cache(cache).partials() == []
    r = cli("sync", model["uri"], cache, "--endpoint-url", s3_endpoint, "--manifest-digest", model["pin"])
    assert r.rc == 0, r
    assert tree(model["link"]) == model["files"]
    # the warm fast path answers only for the pinned digest, and hands anything else to the full CLI
    r = fast("sync", model["uri"], cache, "--endpoint-url", s3_endpoint, "--manifest-digest", model["pin"])
    assert r.rc == 0 and "already cached" in r.out
    r = fast("sync", model["uri"], cache, "--endpoint-url", s3_endpoint, "--manifest-digest", other,
             "--max-attempts", "1")
    assert r.rc == 3 and f"the pinned digest is {other}" in r.err


def test_pinned_digest_is_checked_as_an_argument(tmp_path):
    r = cli("sync", "s3://bk/p", tmp_path, "--manifest-digest", "sha256:ABC")
    assert r.rc == 2 and "--manifest-digest must be sha256:<64 lowercase hex digits>" in r.err
    r = cli("warm", "s3://bk/p", "s3://bk/q", tmp_path, "--manifest-digest", "sha256:" + "0" * 64)
    assert r.rc == 2 and "with several SOURCEs, give S3URI=sha256:HEX" in r.err
    r = cli("warm", "s3://bk/p", tmp_path, "--manifest-digest", "s3://bkx/x=sha256:" + "0" * 64)
    assert r.rc == 2 and "s3://bkx/x is not one of the SOURCEs" in r.err


def test_warm_pins_each_source(tmp_path, model, s3_endpoint):
    other = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    r = cli("warm", model["uri"], tmp_path / "cache", "--endpoint-url", s3_endpoint, "--max-attempts", "1",
            "--manifest-digest", f"{model['uri']}={other}")
    assert r.rc == 1 and "the pinned digest is" in r.err
    r = cli("warm", model["uri"], tmp_path / "cache", "--endpoint-url", s3_endpoint,
            "--manifest-digest", f"{model['uri']}={model['pin']}")
    assert r.rc == 0, r
    assert tree(model["link"]) == model["files"]


def test_manifest_without_digest_from_earlier_agents_stays_readable(tmp_path, model, s3, s3_endpoint):
    raw = s3.get_object(Bucket=model["bucket"], Key=model["key"])["Body"].read()
    doc = json.loads(raw)
    del doc["digest"]
    old_raw = (json.dumps(doc, indent=1) + "\n").encode()
    s3.put_object(Bucket=model["bucket"], Key=model["key"], Body=old_raw)
    old = manifest_mod.parse(old_raw, "old")
    r = cli("sync", model["uri"], tmp_path / "cache", "--endpoint-url", s3_endpoint, "--manifest-digest", old.pin)
    assert r.rc == 0, r
    assert tree(model["link"]) == model["files"]
    r = fast("sync", model["uri"], tmp_path / "cache", "--endpoint-url", s3_endpoint)
    assert r.rc == 0 and "already cached" in r.out


def test_fleetkit_validate_check_buckets(model, s3_endpoint, monkeypatch, capsys):
    """`fleetkit validate` is offline and says so; --check-buckets reports a pin the bucket does not match."""
    from fleetkit.cli import main as fleetkit_main

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "2")
    base = ["validate", "--root", str(root), "-s", "aws-us-east-1",
            "--set", f"models.llama-3-8b.weights_uri={model['uri']}"]
    assert fleetkit_main([*base, "--set", f"models.llama-3-8b.weights_digest={model['pin']}"]) == 0
    assert "bucket manifests not checked (offline): 1 pinned" in capsys.readouterr().out
    assert fleetkit_main([*base, "--set", f"models.llama-3-8b.weights_digest={model['pin']}", "--check-buckets"]) == 0
    out = capsys.readouterr().out
    assert f"{model['uri']} (aws-us-east-1 models.llama-3-8b): bucket manifest is {model['pin']}" in out
    assert "1 pinned model manifest(s) against their buckets, 0 mismatch(es)" in out
    other = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    assert fleetkit_main([*base, "--set", f"models.llama-3-8b.weights_digest={other}", "--check-buckets"]) == 1
    out = capsys.readouterr().out
    assert f"bucket manifest is {model['pin']}, the spec pins {other}" in out and "1 mismatch(es)" in out


def test_allow_stale_serves_only_the_pinned_version(tmp_path, model, s3_endpoint, monkeypatch):
    from weights_support import free_port

    cache = tmp_path / "cache"
    assert cli("sync", model["uri"], cache, "--endpoint-url", s3_endpoint).rc == 0
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "1")
    dead = f"http://127.0.0.1:{free_port()}"
    r = cli("sync", model["uri"], cache, "--endpoint-url", dead, "--allow-stale", "--manifest-digest", model["pin"])
    assert r.rc == 0 and "using the cached version" in r.out, r
    other = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    r = cli("sync", model["uri"], cache, "--endpoint-url", dead, "--allow-stale", "--manifest-digest", other)
    assert r.rc == 1 and f"the pinned version {other} is cached" in r.err, r
