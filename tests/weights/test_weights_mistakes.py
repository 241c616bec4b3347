"""Agent mistakes from issue #11: errors that name what the user must fix, and consistent exit codes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from fleetkit_weights import options
from fleetkit_weights.cli import main


def _closed_port() -> int:
    """A local port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_error_names_the_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    url = f"http://127.0.0.1:{_closed_port()}"
    rc = main(["sync", "--max-attempts", "1", "--endpoint-url", url, "s3://bucket/model", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"(endpoint {url})" in err and "Traceback" not in err


@pytest.mark.parametrize("exists", [True, False], ids=["existing-dir", "dir-to-create"])
def test_a_read_only_cache_location_is_a_usage_error_either_way(exists: bool, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    cache = locked if exists else locked / "cache"
    real_access = os.access
    # root may write anywhere, so the permission answer is simulated for this one directory
    monkeypatch.setattr(options.os, "access",
                        lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    rc = main(["sync", "s3://bucket/model", str(cache)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "not writable" in err and str(cache) in err
