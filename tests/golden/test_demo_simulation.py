"""Golden files for the simulator on the demo fleet: every standard scenario × request class.

Regenerate only on purpose:  FLEETKIT_UPDATE_GOLDEN=1 ./dev test tests/golden
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetkit.loader import load_fleet
from fleetkit.simulate.diagram import to_mermaid
from fleetkit.simulate.markdown import report_markdown
from fleetkit.simulate.report import findings, request_classes, simulate, to_json
from fleetkit.simulate.scenarios import standard_scenarios
from fleetkit.simulate.source import fleet_from_stacks

GOLDEN = Path(__file__).parent / "simulate"
UPDATE = os.environ.get("FLEETKIT_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def report(demo_preview, project_root):
    fl = fleet_from_stacks(load_fleet(project_root), {n: r.manifests() for n, r in demo_preview.items()})
    return simulate(fl, standard_scenarios(fl), request_classes(fl))


def test_standard_scenarios_match_the_golden_files(report):
    files = {
        "demo.json": to_json(report),
        "demo-healthy.mmd": to_mermaid(report, "healthy"),
        "demo.md": report_markdown(report, "healthy"),
    }
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        for name, text in files.items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
    changed = [n for n, text in files.items() if (GOLDEN / n).read_text(encoding="utf-8") != text]
    assert not changed, f"simulation golden files differ: {changed} (FLEETKIT_UPDATE_GOLDEN=1 to accept)"


def test_every_class_of_every_scenario_sums_to_one(report):
    for (i, name), dist in report.results.items():
        assert abs(sum(dist.values()) - 1) < 1e-5, (report.classes[i].label, name)


def test_findings_name_each_healthy_fleet_defect_the_simulator_sees(report):
    """The findings are the demo fleet's behaviour defects as rendered today (issues #13/#14): the
    golden JSON lists them; here only that each finding names a rule the check knows."""
    assert {f.rule for f in findings(report)} <= {"healthy.error", "healthy.fallback-while-primary-up"}
