"""CLI surface: help, usage errors (exit 2, one line per problem, no traceback), sizes."""

from __future__ import annotations

import pytest

from weights_support import cli, run_agent
from fleetkit_weights.cli import parse_size


def test_help_explains_commands():
    r = cli("--help")
    assert r.rc == 0
    for word in ("sync", "warm", "publish", "status", "lease", "AWS_ENDPOINT_URL", "exit codes"):
        assert word in r.out


@pytest.mark.parametrize("cmd", ["sync", "warm", "publish", "status", "lease", "verify", "purge"])
def test_each_command_has_help(cmd):
    r = cli(cmd, "--help")
    assert r.rc == 0 and "usage:" in r.out


def test_no_command_is_usage_error():
    assert cli().rc == 2


def test_bad_inputs_one_line_each_exit_2(tmp_path):
    r = cli("sync", "http://bucket/x", str(tmp_path / "no" / "such" / "dir"), "--concurrency", "0",
            "--max-cache-bytes", "lots")
    assert r.rc == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith("fleetkit-weights: error: ") for line in lines)
    assert "not an s3:// URI" in lines[0]
    assert "does not exist" in lines[1]
    assert "--concurrency" in lines[2]
    assert "--max-cache-bytes" in lines[3]
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sync", "s3://", "{tmp}"], "missing bucket"),
        (["sync", "s3://bkt/a/../c", "{tmp}"], "invalid prefix"),
        (["sync", "s3://ok/x", "{tmp}", "--bogus"], "unrecognized arguments"),
        (["sync", "s3://ok/x", "{tmp}", "--endpoint-url", "ftp://x"], "invalid endpoint URL"),
        (["publish", "{tmp}/missing", "s3://bkt/p"], "does not exist"),
        (["publish", "{tmp}", "gs://b/p"], "not an s3:// URI"),
        (["status", "{tmp}/missing"], "does not exist"),
        (["warm", "s3://bkt/p", "{tmp}", "--interval", "soon"], "--interval"),
        (["purge", "{tmp}"], "say what to delete"),
        (["lease", "{tmp}/missing", "--", "true"], "does not exist"),
        (["verify", "{tmp}/missing"], "does not exist"),
    ],
)
def test_usage_errors(tmp_path, argv, needle):
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert r.rc == 2, r
    assert needle in r.err
    assert "Traceback" not in r.err


def test_env_endpoint_is_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    r = cli("sync", "s3://bkt/p", tmp_path)
    assert r.rc == 2 and "$AWS_ENDPOINT_URL" in r.err


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    r = run_agent("sync", "not-a-uri", tmp_path)
    assert r.rc == 2
    assert r.err.strip() == "fleetkit-weights: error: SOURCE: not an s3:// URI: 'not-a-uri' (expected s3://bucket/prefix)"


def test_unreachable_endpoint_is_one_line_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETKIT_WEIGHTS_MAX_ATTEMPTS", "2")
    from weights_support import free_port

    r = cli("sync", "s3://bkt/p", tmp_path, "--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert r.rc == 1
    assert len(r.err.strip().splitlines()) == 1 and "giving up after 2 attempts" in r.err


@pytest.mark.parametrize(
    "text, value",
    [("12345", 12345), ("1Ki", 1024), ("16Mi", 16 << 20), ("800Gi", 800 << 30), ("1.5T", 1_500_000_000_000),
     ("2G", 2_000_000_000), ("10MB", 10_000_000), ("3GiB", 3 << 30)],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-1", "1X", "1.2.3G"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)
