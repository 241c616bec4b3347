"""The simulator benchmark runs (tiny size; nothing timed is asserted) and its fleet simulates like a real one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "simulate.py"


def test_benchmark_runs_small():
    out = subprocess.run(
        [sys.executable, str(BENCH), "--stacks", "3", "--models", "2", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "3 stacks × 2 models" in out and "distributions" in out and "CPU" in out


def test_parallel_and_sequential_runs_agree():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import simulate as bench  # the benchmark module (benchmarks/ is not a package)
    finally:
        sys.path.pop(0)
    from fleetkit.simulate.report import request_classes, simulate
    from fleetkit.simulate.scenarios import standard_scenarios

    fl = bench.synthetic_fleet(4, 3)
    scenarios, classes = standard_scenarios(fl), request_classes(fl)
    one, two = simulate(fl, scenarios, classes), simulate(fl, scenarios, classes, jobs=2)
    assert one.results == two.results and one.capacity == two.capacity
    # the body router sends each model to its own service, locally first
    first = one.dist(0, "healthy")
    assert [o.cluster for o in first] == [classes[0].request.origin]
