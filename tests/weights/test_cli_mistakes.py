"""Weight-agent command-line mistakes, tried as a new user would: each exits 2, names the argument (or
environment variable), the rule and the bad value — every mistake of a command line at once, one line
each — with no traceback, and changes nothing on disk.

Placeholders: ``{tmp}`` the case's directory, ``{file}`` a file in it, ``{empty}`` an empty directory,
``{hidden}`` a directory holding only a dotfile.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from weights_support import cli

from fleetkit_weights import options

# (id, argv, environment, what stderr must contain — every item)
CASES: list[tuple[str, list[str], dict[str, str], list[str]]] = [
    ("unknown-command", ["synk"], {}, ["invalid choice: 'synk'", "'sync'"]),
    ("unknown-option-suggested", ["sync", "s3://bkt/p", "{tmp}/c", "--concurency", "4"], {}, ["unrecognized arguments: --concurency", "did you mean --concurrency?"]),
    ("unknown-options-all", ["sync", "s3://bkt/p", "{tmp}/c", "--quite", "--jsn"], {}, ["unrecognized arguments: --quite", "did you mean --quiet?", "unrecognized arguments: --jsn", "did you mean --json?"]),
    ("missing-and-unknown", ["status", "--jsn"], {}, ["required: CACHE_DIR", "unrecognized arguments: --jsn", "did you mean --json?"]),
    ("missing-arguments", ["sync"], {}, ["required: SOURCE, CACHE_DIR"]),
    ("bad-choice", ["sync", "s3://bkt/p", "{tmp}/c", "--addressing-style", "vhost"], {}, ["--addressing-style", "invalid choice: 'vhost'"]),
    # S3 locations
    ("bucket-uppercase", ["sync", "s3://Models/llama", "{tmp}/c"], {}, ["SOURCE: invalid bucket name 'Models'", "lowercase"]),
    ("bucket-too-short", ["sync", "s3://ab/llama", "{tmp}/c"], {}, ["invalid bucket name 'ab'", "3 to 63 characters"]),
    ("bucket-bad-ends", ["publish", "{empty}", "s3://-models-/x"], {}, ["DEST: invalid bucket name '-models-'", "starts and ends with a letter or digit"]),
    ("bucket-ip", ["sync", "s3://10.0.0.1/x", "{tmp}/c"], {}, ["is not an IP address"]),
    ("bucket-double-dot", ["sync", "s3://a..b/x", "{tmp}/c"], {}, ["has no '..'"]),
    ("bucket-space", ["sync", "s3://my bucket/x", "{tmp}/c"], {}, ["not ' '"]),
    ("prefix-dotdot", ["sync", "s3://bkt/a/../b", "{tmp}/c"], {}, ["invalid prefix"]),
    ("not-s3", ["sync", "gs://bkt/x", "{tmp}/c"], {}, ["SOURCE: not an s3:// URI: 'gs://bkt/x'"]),
    ("purge-source", ["purge", "{empty}", "--source", "s3://BKT/x"], {}, ["--source: invalid bucket name 'BKT'"]),
    # endpoints
    ("endpoint-no-scheme", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "minio:9000"], {}, ["--endpoint-url: invalid endpoint URL 'minio:9000'"]),
    ("endpoint-port", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "http://minio:99999"], {}, ["--endpoint-url: invalid port", "'http://minio:99999'"]),
    ("endpoint-userinfo", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "http://key:secret@minio:9000"], {}, ["--endpoint-url:", "no user or password in the URL"]),
    ("endpoint-space", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "http://minio :9000"], {}, ["--endpoint-url:", "whitespace"]),
    ("endpoint-query", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "https://s3.example.com/?x=1"], {}, ["no query or fragment"]),
    ("endpoint-host", ["sync", "s3://bkt/p", "{tmp}/c", "--endpoint-url", "https://s3!.example.com"], {}, ["invalid host 's3!.example.com'"]),
    ("endpoint-env", ["sync", "s3://bkt/p", "{tmp}/c"], {"AWS_ENDPOINT_URL_S3": "ftp://minio"}, ["$AWS_ENDPOINT_URL_S3: invalid endpoint URL 'ftp://minio'"]),
    # sizes, numbers, durations
    ("sizes", ["sync", "s3://bkt/p", "{tmp}/c", "--part-size", "1", "--max-cache-bytes", "lots", "--speed-limit", "fast"], {}, ["--part-size must be at least 65536 bytes, got 1", "--max-cache-bytes: invalid size 'lots'", "--speed-limit: invalid size 'fast'"]),
    ("size-negative", ["sync", "s3://bkt/p", "{tmp}/c", "--max-cache-bytes=-5Gi"], {}, ["--max-cache-bytes: invalid size '-5Gi'"]),
    ("chunk-size", ["publish", "{empty}", "s3://bkt/p", "--chunk-size", "1k"], {}, ["--chunk-size must be 0 or at least 64Ki, got 1k"]),
    ("numbers", ["sync", "s3://bkt/p", "{tmp}/c", "--concurrency", "0", "--max-attempts", "many", "--deadline", "0", "--lock-timeout", "soon"], {}, ["--concurrency must be between 1 and 512, got 0", "--max-attempts must be an integer, got 'many'", "--deadline must be more than 0 seconds", "--lock-timeout must be a number of seconds, got 'soon'"]),
    ("interval", ["warm", "s3://bkt/a", "{tmp}/c", "--interval", "-5"], {}, ["--interval must not be negative, got -5"]),
    ("verify-concurrency", ["verify", "{empty}", "--concurrency", "0"], {}, ["--concurrency must be between 1 and 64, got 0"]),
    ("lease-timeout", ["lease", "--timeout", "x", "{tmp}/nowhere", "--", "true"], {}, ["--timeout must be a number of seconds, got 'x'", "MODEL_PATH {tmp}/nowhere does not exist"]),
    ("digest", ["sync", "s3://bkt/p", "{tmp}/c", "--manifest-digest", "md5:abc"], {}, ["--manifest-digest must be sha256:<64 lowercase hex digits>", "'md5:abc'"]),
    # environment variables: blamed on the variable, not on a flag the user did not give
    ("env-cache-bytes", ["sync", "s3://bkt/p", "{tmp}/c"], {"FLEETKIT_WEIGHTS_MAX_CACHE_BYTES": "a lot"}, ["$FLEETKIT_WEIGHTS_MAX_CACHE_BYTES: invalid size 'a lot'"]),
    ("env-retry", ["sync", "s3://bkt/p", "{tmp}/c"], {"FLEETKIT_WEIGHTS_MAX_ATTEMPTS": "ten", "FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS": "-1"}, ["$FLEETKIT_WEIGHTS_MAX_ATTEMPTS must be an integer, got 'ten'", "$FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS must be between 0 and 3600, got -1"]),
    ("region", ["sync", "s3://bkt/p", "{tmp}/c", "--region", "us east 1"], {}, ["--region must be a region name", "'us east 1'"]),
    ("region-env", ["sync", "s3://bkt/p", "{tmp}/c"], {"AWS_REGION": "eu west"}, ["$AWS_REGION must be a region name", "'eu west'"]),
    ("warm-same-source-twice", ["warm", "s3://bkt/a", "s3://bkt/a/", "{tmp}/c"], {}, ["SOURCE s3://bkt/a is given twice"]),
    ("not-a-number-of-seconds", ["lease", "{tmp}/nowhere", "--timeout", "nan"], {}, ["--timeout must be a finite number of seconds, got 'nan'"]),
    ("upload-part-too-big", ["publish", "{empty}", "s3://bkt/p", "--part-size", "6Gi"], {}, ["--part-size must be at most 5Gi for an upload", "got 6Gi"]),
    # paths
    ("cache-is-a-file", ["sync", "s3://bkt/p", "{file}"], {}, ["CACHE_DIR {file} exists but is not a directory"]),
    ("cache-parent-missing", ["sync", "s3://bkt/p", "{tmp}/no/such/cache"], {}, ["does not exist and neither does its parent"]),
    ("status-missing", ["status", "{tmp}/nowhere"], {}, ["CACHE_DIR {tmp}/nowhere does not exist"]),
    ("purge-not-a-cache", ["purge", "--all", "{empty}"], {}, ["CACHE_DIR {empty} is not a fleetkit-weights cache", "nothing was deleted"]),
    ("purge-nothing-chosen", ["purge", "{empty}"], {}, ["say what to delete"]),
    ("verify-not-a-model", ["verify", "{empty}"], {}, ["MODEL_PATH:", "is not a model in a fleetkit-weights cache"]),
    ("lease-not-a-model", ["lease", "{file}", "--", "true"], {}, ["MODEL_PATH:", "is not a model in a fleetkit-weights cache"]),
    ("publish-empty", ["publish", "{empty}", "s3://bkt/p", "--no-sign-request"], {}, ["nothing to publish: {empty} contains no files"]),
    ("publish-only-hidden", ["publish", "{hidden}", "s3://bkt/p", "--no-sign-request"], {}, ["1 hidden entries skipped; --include-hidden uploads them"]),
    ("publish-file", ["publish", "{file}", "s3://bkt/p"], {}, ["LOCAL_DIR {file} is not a directory"]),
    ("everything-at-once", ["sync", "http://bkt/x", "{file}", "--concurrency", "x", "--endpoint-url", "minio"], {}, ["SOURCE: not an s3:// URI", "CACHE_DIR {file} exists but is not a directory", "--concurrency must be an integer", "--endpoint-url: invalid endpoint URL"]),
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(("argv", "env", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_exits_2_names_it_and_changes_nothing(
    argv: list[str], env: dict[str, str], needles: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "FLEETKIT_WEIGHTS_MAX_CACHE_BYTES", "AWS_REGION",
                "FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "FLEETKIT_WEIGHTS_RETRY_BASE_SECONDS"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "a-file").write_text("keep me\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".gitattributes").write_text("*.bin lfs\n")
    place = {"{tmp}": str(tmp_path), "{file}": str(tmp_path / "a-file"), "{empty}": str(tmp_path / "empty"),
             "{hidden}": str(tmp_path / "hidden")}  # fmt: skip

    def fill(text: str) -> str:
        for key, value in place.items():
            text = text.replace(key, value)
        return text

    before = _snapshot(tmp_path)
    r = cli(*[fill(a) for a in argv])
    assert r.rc == 2, r
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert all(line.startswith("fleetkit-weights: error: ") for line in lines), r.err
    for needle in needles:
        assert fill(needle) in r.err, f"{needle!r} not in:\n{r.err}"
    assert _snapshot(tmp_path) == before, "a mistake must change nothing"


@pytest.mark.parametrize("command", ["sync", "warm", "purge"])
@pytest.mark.parametrize("exists", [True, False], ids=["existing", "to-create"])
def test_a_read_only_cache_is_the_same_usage_error_for_every_writing_command(
    command: str, exists: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if exists and command == "purge":
        (locked / ".fleetkit-weights").mkdir()
    cache = locked if exists else locked / "cache"
    real_access = os.access
    # root may write anywhere, so the permission answer is simulated for this one directory
    monkeypatch.setattr(
        options.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    argv = {"sync": ["sync", "s3://bkt/p", cache], "warm": ["warm", "s3://bkt/p", cache],
            "purge": ["purge", "--all", cache]}[command]  # fmt: skip
    r = cli(*argv)
    if command == "purge" and not exists:
        assert r.rc == 2 and "does not exist" in r.err, r  # purge never creates a cache
        return
    assert r.rc == 2, r
    assert "not writable" in r.err and str(cache) in r.err and "Traceback" not in r.err
