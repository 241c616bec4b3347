"""``fleetkit simulate`` end to end on the demo fleet's golden preview files (no rendering, no Pulumi)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app
from fleetkit.simulate.diagram import png_available

runner = CliRunner()
GOLDEN_PREVIEW = Path(__file__).resolve().parents[1] / "golden" / "demo"


def sim(project_root: Path, *args: str):
    return runner.invoke(app, ["simulate", "--root", str(project_root), "--from", str(GOLDEN_PREVIEW), *args])


def test_json_and_diagram_files(project_root, tmp_path):
    out = tmp_path / "sim.json"
    res = sim(
        project_root,
        "-f",
        "json",
        "-o",
        str(out),
        "--diagram",
        str(tmp_path / "flow"),
        "-m",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--down",
        "region:europe-west4",
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    [scenario] = data["scenarios"]
    assert scenario["name"] == "region europe-west4 down" and scenario["regions_down"] == ["europe-west4"]
    for row in scenario["results"]:
        assert abs(sum(o["p"] for o in row["outcomes"]) - 1) < 1e-5
        assert all(o.get("cluster") != "gcp-euw4" for o in row["outcomes"])
    assert (tmp_path / "flow.svg").read_text().startswith("<svg")
    assert (tmp_path / "flow.mmd").read_text().startswith("flowchart LR")
    why = png_available()
    if why is not None:
        pytest.skip(f"PNG not checked: {why}")
    assert (tmp_path / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_names_scenarios_and_assumptions(project_root):
    res = sim(project_root, "--origin", "aws-use1", "-t", "premium")
    assert res.exit_code == 0, res.output
    assert "healthy" in res.output and "cluster gcp-euw4 down" in res.output
    assert "assumptions:" in res.output and "premium llama-3-70b from aws-use1" in res.output


def test_markdown_has_the_mermaid_diagram(project_root):
    res = sim(project_root, "-f", "markdown", "--origin", "aws-usw2")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("## fleetkit simulate") and "```mermaid\nflowchart LR" in res.output


def test_bad_input_lists_every_problem_and_writes_nothing(project_root, tmp_path):
    out = tmp_path / "x.json"
    res = sim(
        project_root,
        "-f",
        "json",
        "-o",
        str(out),
        "--diagram",
        str(tmp_path / "d"),
        "--down",
        "cluster:nope",
        "--replicas",
        "llama-3-8b=lots",
        "--eject",
        "llama-3-70b:v9",
        "--origin",
        "mars",
        "--assume",
        "speed=1",
        "--header",
        "novalue",
    )
    assert res.exit_code == 2
    for rule in (
        "simulate.unknown-name",
        "simulate.bad-replicas",
        "simulate.unknown-version",
        "simulate.unknown-cluster",
        "simulate.unknown-assumption",
        "simulate.bad-pair",
    ):
        assert rule in res.output, rule
    assert "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_not_a_preview_directory(project_root, tmp_path):
    res = runner.invoke(app, ["simulate", "--root", str(project_root), "--from", str(tmp_path)])
    assert res.exit_code == 2 and "simulate.no-preview" in res.output


def test_check_fails_exactly_when_the_healthy_fleet_has_findings(project_root):
    data = json.loads(sim(project_root, "-f", "json", "--no-standard", "--replicas", "llama-3-8b=min").output)
    res = sim(project_root, "--check", "-f", "json")
    healthy_findings = json.loads(res.output)["findings"]
    assert res.exit_code == (1 if healthy_findings else 0)
    assert data["scenarios"][0]["name"] == "llama-3-8b=min"


def test_fallback_pods_answer_a_failed_over_request(project_root):
    """The 8B pods serve only their own name; the inbound rewrite EnvoyFilter on them (issue #13) turns a
    failed-over 70B request into an 8B one. With every 70B replica at zero the fallback answers — the
    simulator must not report the old alias-less 404 (R11 with the inbound rewrite)."""
    res = sim(
        project_root,
        "-m",
        "meta-llama/Llama-3.1-70B-Instruct",
        "-t",
        "premium",
        "--origin",
        "aws-use1",
        "--replicas",
        "llama-3-70b=0",
        "--no-standard",
    )
    assert res.exit_code == 0, res.output
    assert "llama-3-8b@v1" in res.output and "(as another model)" in res.output, res.output
    assert "404 model not served by pod" not in res.output, res.output
