"""publish -> sync round trips against a real S3-compatible server (moto's HTTP server)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from blake3 import blake3

from weights_support import cli, make_model, tree
from fleetkit_weights import MANIFEST_NAME
from fleetkit_weights.cache import META, Cache


def model_dir(cache: Path, published: dict) -> Path:
    return cache / published["bucket"] / published["prefix"]


def assert_only_published(cache: Path, published: dict) -> None:
    """The link shows exactly the model, and nothing else is visible or half-done."""
    got = tree(model_dir(cache, published))
    assert got == published["files"]
    assert not list((cache / META / "staging").iterdir())


def test_manifest_format(s3, published):
    raw = s3.get_object(Bucket=published["bucket"], Key=f"{published['prefix']}/{MANIFEST_NAME}")["Body"].read()
    doc = json.loads(raw)
    assert doc["format"] == "fleetkit-weights-manifest" and doc["format_version"] == 2
    assert doc["total_bytes"] == published["size"]
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == set(published["files"])
    import hashlib

    for path, data in published["files"].items():
        assert files[path]["size"] == len(data)
        assert files[path]["sha256"] == hashlib.sha256(data).hexdigest()
    big = files["model-00001-of-00002.safetensors"]
    assert big["chunk_size"] == 256 * 1024 and len(big["chunks"]) == 6 and big["chunk_hash"] == "blake3"
    assert big["chunks"][0] == blake3(published["files"][big["path"]][: 256 * 1024]).hexdigest()
    assert doc["digest"] == "sha256:" + hashlib.sha256(
        json.dumps({k: v for k, v in doc.items() if k != "digest"}, sort_keys=True, separators=(",", ":"),
                   ensure_ascii=False).encode()).hexdigest()


def test_sha256_chunks_publish_a_format_1_manifest_that_syncs(tmp_path, bucket, s3, s3_endpoint):
    """`publish --chunk-hash sha256`: the manifest agents from before BLAKE3 chunks read."""
    import hashlib

    src = tmp_path / "src"
    files = make_model(src, {"w.bin": 600_000, "config.json": 10})
    uri = f"s3://{bucket}/sha-chunks"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki",
               "--chunk-hash", "sha256").rc == 0
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"sha-chunks/{MANIFEST_NAME}")["Body"].read())
    assert doc["format_version"] == 1 and all("chunk_hash" not in f for f in doc["files"])
    w = next(f for f in doc["files"] if f["path"] == "w.bin")
    assert w["chunks"][1] == hashlib.sha256(files["w.bin"][256 * 1024 : 512 * 1024]).hexdigest()
    r = cli("sync", uri, tmp_path / "cache", "--endpoint-url", s3_endpoint)
    assert r.rc == 0 and "all sha256-verified" in r.out, r
    assert tree(tmp_path / "cache" / bucket / "sha-chunks") == files


def test_roundtrip_then_warm_sync_is_one_request(tmp_path, published, proxy):
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url, "--concurrency", "4")
    assert r.rc == 0, r
    assert "5 files" in r.out and "all blake3-verified" in r.out and "MB/s" in r.out
    assert_only_published(cache, published)
    assert (model_dir(cache, published)).is_symlink()
    assert proxy.data_bytes == published["size"]

    proxy.reset_counters()
    t0 = time.monotonic()
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url)
    warm = time.monotonic() - t0
    assert r.rc == 0, r
    assert "already cached and verified" in r.out and "(0 B fetched)" in r.out
    assert proxy.requests == [("GET", f"/{published['bucket']}/{published['prefix']}/{MANIFEST_NAME}")]
    assert warm < 1.0


def test_json_result(tmp_path, published, s3_endpoint):
    r = cli("sync", published["source"], tmp_path / "c", "--endpoint-url", s3_endpoint, "--json")
    doc = json.loads(r.out)
    assert doc["files"] == 5 and doc["downloaded_files"] == 5 and doc["fetched_bytes"] == published["size"]


def test_endpoint_from_environment(tmp_path, published, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the S3-specific variable wins
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    r = cli("sync", published["source"], tmp_path / "c", "--quiet")
    assert r.rc == 0, r
    assert tree(model_dir(tmp_path / "c", published)) == published["files"]


def test_status_output(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    r = cli("status", cache)
    assert r.rc == 0
    header, row = r.out.splitlines()[1:3]
    assert header.split()[:5] == ["STATE", "IN-USE", "SIZE", "FILES", "LAST-USE"]
    assert row.split()[0] == "complete" and row.split()[1] == "no"
    assert published["source"] in row and str(model_dir(cache, published)) in row
    doc = json.loads(cli("status", cache, "--json").out)
    (m,) = doc["models"]
    assert m["state"] == "complete" and m["bytes"] == published["size"] and m["files"] == 5 and not m["in_use"]
    assert doc["used_bytes"] == published["size"]


def test_status_shows_partial(tmp_path, published, s3, s3_endpoint):
    cache = tmp_path / "cache"
    # corrupt the second shard so the first is kept verified in staging and the sync fails
    key = f"{published['prefix']}/model-00002-of-00002.safetensors"
    s3.put_object(Bucket=published["bucket"], Key=key, Body=b"x" * 700_001)
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint, "--concurrency", "1")
    assert r.rc == 3
    row = cli("status", cache).out.splitlines()[2]
    assert row.split()[0] == "partial"


def test_verify_command(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    path = model_dir(cache, published)
    r = cli("verify", path)
    assert r.rc == 0 and "sha256 ok" in r.out
    target = path / "config.json"
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    os.chmod(target, 0o644)
    target.write_bytes(bytes(data))
    r = cli("verify", path)
    assert r.rc == 3 and "config.json" in r.err


def test_republish_unchanged_uploads_nothing(tmp_path, published, s3_endpoint, proxy):
    r = cli("publish", published["src"], published["source"], "--endpoint-url", proxy.url, "--chunk-size", "256Ki")
    assert r.rc == 0, r
    assert "0 uploaded, 5 unchanged" in r.out
    assert not [m for m, _ in proxy.requests if m in ("PUT", "POST", "DELETE")]


def test_new_version_swaps_link_reuses_files_and_drops_old(tmp_path, published, s3_endpoint, proxy):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    old_entries = {e.id for e in Cache(cache).entries()}
    (published["src"] / "config.json").write_text('{"changed": true}\n')
    assert cli("publish", published["src"], published["source"], "--endpoint-url", s3_endpoint,
               "--chunk-size", "256Ki").rc == 0
    r = cli("sync", published["source"], cache, "--endpoint-url", proxy.url)
    assert r.rc == 0, r
    assert "1 downloaded, 4 skipped" in r.out  # unchanged files are hardlinked from the old version
    assert proxy.data_gets() == [f"/{published['bucket']}/{published['prefix']}/config.json"]
    files = dict(published["files"], **{"config.json": b'{"changed": true}\n'})
    assert tree(model_dir(cache, published)) == files
    entries = Cache(cache).entries()
    assert len(entries) == 1 and entries[0].id not in old_entries  # superseded version removed


def test_old_version_in_use_survives_update(tmp_path, published, s3_endpoint):
    import fcntl

    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    (old,) = Cache(cache).entries()
    fd = os.open(old.path / "lease", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        (published["src"] / "config.json").write_text("{}\n")
        cli("publish", published["src"], published["source"], "--endpoint-url", s3_endpoint)
        assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
        ids = {e.id: e for e in Cache(cache).entries()}
        assert old.id in ids and ids[old.id].in_use and not ids[old.id].current
        assert (old.path / "files" / "config.json").read_bytes() == published["files"]["config.json"]
        assert (model_dir(cache, published) / "config.json").read_text() == "{}\n"
    finally:
        os.close(fd)
    assert cli("purge", cache, "--stale").rc == 0
    assert {e.id for e in Cache(cache).entries()} != {old.id} and len(Cache(cache).entries()) == 1


def test_whole_file_digests_without_chunks(tmp_path, bucket, s3_endpoint):
    src = tmp_path / "src"
    files = make_model(src, {"a.bin": 3_000_000, "b.bin": 5})
    src_uri = f"s3://{bucket}/plain"
    assert cli("publish", src, src_uri, "--endpoint-url", s3_endpoint, "--chunk-size", "0").rc == 0
    r = cli("sync", src_uri, tmp_path / "c", "--endpoint-url", s3_endpoint, "--part-size", "256Ki")
    assert r.rc == 0, r
    assert tree(tmp_path / "c" / bucket / "plain") == files


def test_multipart_publish(tmp_path, bucket, s3_endpoint, monkeypatch, proxy):
    from fleetkit_weights import publish as publish_mod

    monkeypatch.setattr(publish_mod, "MULTIPART_THRESHOLD", 1 << 20)
    src = tmp_path / "src"
    files = make_model(src, {"big.bin": 12 * (1 << 20) + 17})
    uri = f"s3://{bucket}/mp"
    r = cli("publish", src, uri, "--endpoint-url", proxy.url, "--part-size", "5Mi")
    assert r.rc == 0, r
    assert sum(1 for m, p in proxy.requests if m == "PUT" and "partNumber=" in p) == 3
    assert cli("sync", uri, tmp_path / "c", "--endpoint-url", s3_endpoint).rc == 0
    assert tree(tmp_path / "c" / bucket / "mp") == files


def test_publish_skips_hidden_and_follows_symlinks(tmp_path, bucket, s3_endpoint):
    src = tmp_path / "snap"
    blobs = tmp_path / "blobs"
    make_model(blobs, {"x": 1000})
    src.mkdir()
    (src / "weights.bin").symlink_to(blobs / "x")
    (src / ".cache").mkdir()
    (src / ".cache" / "junk").write_text("junk")
    uri = f"s3://{bucket}/hf"
    assert cli("publish", src, uri, "--endpoint-url", s3_endpoint).rc == 0
    assert cli("sync", uri, tmp_path / "c", "--endpoint-url", s3_endpoint).rc == 0
    assert tree(tmp_path / "c" / bucket / "hf") == {"weights.bin": (blobs / "x").read_bytes()}


def test_missing_manifest_is_clear(tmp_path, bucket, s3_endpoint):
    r = cli("sync", f"s3://{bucket}/nothing-here", tmp_path / "c", "--endpoint-url", s3_endpoint)
    assert r.rc == 1 and "no manifest at" in r.err and "publish" in r.err


def test_nested_prefix_is_refused(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    src = tmp_path / "n"
    make_model(src, {"f": 10})
    inner = published["source"] + "/inner"
    assert cli("publish", src, inner, "--endpoint-url", s3_endpoint).rc == 0
    r = cli("sync", inner, cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 1 and "nested prefixes" in r.err
    assert tree(model_dir(cache, published)) == published["files"]


def test_warm_mode_once(tmp_path, published, bucket, s3_endpoint):
    src = tmp_path / "second"
    files = make_model(src, {"w.bin": 50_000})
    other = f"s3://{bucket}/second"
    assert cli("publish", src, other, "--endpoint-url", s3_endpoint).rc == 0
    cache = tmp_path / "cache"
    r = cli("warm", published["source"], other, f"s3://{bucket}/missing", cache, "--endpoint-url", s3_endpoint,
            "--interval", "0")
    assert r.rc == 1  # one source failed; the others are cached
    assert "missing" in r.err
    assert tree(cache / bucket / "second") == files
    assert tree(model_dir(cache, published)) == published["files"]
    r = cli("warm", published["source"], other, cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 0 and r.out.count("already cached") == 2


def test_allow_stale_when_store_unreachable(tmp_path, published, s3_endpoint, monkeypatch):
    from weights_support import free_port

    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "2")
    dead = f"http://127.0.0.1:{free_port()}"
    assert cli("sync", published["source"], cache, "--endpoint-url", dead).rc == 1
    r = cli("sync", published["source"], cache, "--endpoint-url", dead, "--allow-stale")
    assert r.rc == 0 and "using the cached version" in r.out


def test_damaged_cache_is_refetched(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    victim = model_dir(cache, published) / "model-00002-of-00002.safetensors"
    os.truncate(victim, 10)
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 0 and "damaged" in r.err
    assert tree(model_dir(cache, published)) == published["files"]


def test_no_fsync_mode_reverifies_after_reboot(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint, "--no-fsync").rc == 0
    (entry,) = Cache(cache).entries()
    marker = json.loads((entry.path / "COMPLETE").read_text())
    assert marker["durable"] is False
    marker["boot_id"] = "a-previous-boot"
    (entry.path / "COMPLETE").write_text(json.dumps(marker))
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint, "--no-fsync")
    assert r.rc == 0 and "re-verifying" in r.err and "already cached" in r.out
    assert json.loads((entry.path / "COMPLETE").read_text())["durable"] is True


def test_crash_between_rename_and_marker_is_recovered(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    assert cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint).rc == 0
    (entry,) = Cache(cache).entries()
    (entry.path / "COMPLETE").unlink()
    os.unlink(model_dir(cache, published))
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint)
    assert r.rc == 0 and "without a completion marker" in r.err
    assert tree(model_dir(cache, published)) == published["files"]


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/./b", ".fleetkit-weights/x"])
def test_manifest_rejects_unsafe_paths(bad):
    from fleetkit_weights import manifest
    from fleetkit_weights.errors import IntegrityError

    doc = {"format": manifest.FORMAT, "format_version": 1,
           "files": [{"path": bad, "size": 0, "sha256": "0" * 64}]}
    with pytest.raises(IntegrityError, match="unsafe|reserved"):
        manifest.parse(json.dumps(doc).encode(), "test")


def test_manifest_rejects_newer_format():
    from fleetkit_weights import manifest
    from fleetkit_weights.errors import IntegrityError

    doc = {"format": manifest.FORMAT, "format_version": 99, "files": []}
    with pytest.raises(IntegrityError, match="newer"):
        manifest.parse(json.dumps(doc).encode(), "test")


def test_sigv4_matches_aws_documented_example():
    """The GET Object example from the S3 SigV4 documentation."""
    import datetime as dt

    from fleetkit_weights.s3 import EMPTY_SHA256, Credentials, sign_v4

    headers = {"Range": "bytes=0-9"}
    sign_v4("GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, headers, EMPTY_SHA256,
            Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "us-east-1",
            now=dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc).timestamp())
    assert headers["Authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_fallocate_option(tmp_path, published, s3_endpoint):
    cache = tmp_path / "cache"
    r = cli("sync", published["source"], cache, "--endpoint-url", s3_endpoint, "--fallocate", "--no-fsync")
    assert r.rc == 0, r
    assert tree(model_dir(cache, published)) == published["files"]


def test_progress_lines_without_tty(tmp_path, published, proxy):
    proxy.rate = 2e6  # ~0.3 s per connection: several progress ticks
    r = cli("sync", published["source"], tmp_path / "c", "--endpoint-url", proxy.url, "--concurrency", "2",
            "--progress-interval", "0.05")
    assert r.rc == 0, r
    lines = [line for line in r.err.splitlines() if "ETA" in line]
    assert lines, r.err
    assert all(line.startswith(f"fleetkit-weights: {published['source']}: ") for line in lines)
    assert "MB/s" in lines[-1] and "%" in lines[-1] and "\r" not in r.err  # plain lines, not a redrawn bar
    r = cli("sync", published["source"], tmp_path / "c2", "--endpoint-url", proxy.url, "--quiet",
            "--progress-interval", "0.05")
    assert r.rc == 0 and r.err == "" and r.out.startswith("synced ")
