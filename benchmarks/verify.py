"""Time of each real-tool verifier (fleetkit/verify) on every stack of the demo fleet, and what it checked.

    .venv/bin/python benchmarks/verify.py

Previews the demo fleet offline once, then runs each verifier on each stack's rendered objects and
prints a row per (stack, check): status, what was checked, seconds. Nothing is asserted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleetkit.loader import load_fleet  # noqa: E402
from fleetkit.preview import preview_fleet  # noqa: E402
from fleetkit.verify.runner import VERIFIERS  # noqa: E402


def main() -> None:
    started = time.perf_counter()
    results = preview_fleet(load_fleet(ROOT))
    print(f"preview of {len(results)} stacks: {time.perf_counter() - started:.1f}s")
    totals: dict[str, float] = {}
    print(f"{'stack':<18} {'check':<20} {'status':<8} {'seconds':>8}  summary")
    for name, res in results.items():
        manifests, resources = res.manifests(), res.resources_json()
        for check, fn in VERIFIERS:
            t = time.perf_counter()
            verdict = fn(manifests, resources)
            dt = time.perf_counter() - t
            totals[check] = totals.get(check, 0.0) + dt
            print(f"{name:<18} {verdict.check:<20} {verdict.status:<8} {dt:>8.2f}  {verdict.summary}")
    print("total per check: " + ", ".join(f"{k} {v:.2f}s" for k, v in totals.items()))


if __name__ == "__main__":
    main()
