"""The lint command: exit codes, output formats, options, unusable input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleetkit.lint import RULES
from fleetkit.lint.command import lint_command

CORPUS = Path(__file__).parent / "corpus"
GOOD = Path(__file__).parent / "examples" / "good-mesh.yaml"
ERRORS = CORPUS / "FK105-unsafe-retry" / "fail-5xx-reset.yaml"
WARNINGS = CORPUS / "FK107-short-timeout" / "fail-route.yaml"
SUPPRESSED = CORPUS / "FK004-bad-suppression" / "pass.yaml"

app = typer.Typer()
app.command("lint")(lint_command)


@app.callback()
def _root() -> None:
    """Stand-in for the kit's main CLI (lint is a sub-command there)."""


runner = CliRunner()


def run(*args: str | Path) -> typer.testing.Result:
    return runner.invoke(app, ["lint", *map(str, args)])


def test_exit_0_when_clean() -> None:
    result = run(GOOD)
    assert result.exit_code == 0, result.output
    assert "No problems found in 13 objects." in result.output


def test_exit_0_with_only_warnings() -> None:
    result = run(WARNINGS)
    assert result.exit_code == 0
    assert "FK107" in result.output and "0 errors, 1 warning" in result.output


def test_exit_1_on_errors_and_table_shows_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vs.yaml").write_text(ERRORS.read_text())
    monkeypatch.chdir(tmp_path)
    result = run("vs.yaml")
    assert result.exit_code == 1
    out = result.output
    assert "FK105" in out and "unsafe-retry" in out and "VirtualService/serving/llama" in out
    assert "vs.yaml:9" in out  # file:line of retryOn
    assert "fix:" in out


def test_suppressed_findings_hidden_in_table_but_counted() -> None:
    result = run(SUPPRESSED)
    assert result.exit_code == 0
    assert "FK105" not in result.output.split("\n0 errors")[0]
    assert "1 suppressed" in result.output


def test_json_output_has_exactly_the_documented_keys() -> None:
    result = run(ERRORS, SUPPRESSED, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert isinstance(data, list) and data
    keys = {"file", "object", "rule", "ist", "severity", "message", "fix", "suppressed"}
    assert all(set(item) == keys for item in data)
    suppressed = [d for d in data if d["suppressed"]]
    assert suppressed and suppressed[0]["rule"] == "FK105"
    assert {d["severity"] for d in data} <= {"error", "warning", "info"}


def test_sarif_output_structure() -> None:
    result = run(ERRORS, SUPPRESSED, "-f", "sarif")
    assert result.exit_code == 1
    log = json.loads(result.output)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    [run_] = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "fleetkit-lint"
    ids = [r["id"] for r in driver["rules"]]
    assert ids == sorted(RULES)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}
    assert run_["results"]
    for res in run_["results"]:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in {"error", "warning", "note"}
        assert res["message"]["text"]
        [loc] = res["locations"]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"].endswith(".yaml")
        assert phys["region"]["startLine"] >= 1
        assert loc["logicalLocations"][0]["fullyQualifiedName"].startswith("VirtualService/")
    suppressed = [r for r in run_["results"] if "suppressions" in r]
    assert suppressed and suppressed[0]["suppressions"][0]["kind"] == "inSource"
    assert suppressed[0]["suppressions"][0]["justification"]


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    result = run(ERRORS, "-f", "sarif", "--output", target)
    assert result.exit_code == 1
    assert json.loads(target.read_text())["version"] == "2.1.0"
    assert "report written to" in result.stderr


def test_min_timeout_option() -> None:
    assert [d["rule"] for d in json.loads(run(WARNINGS, "-f", "json").output)] == ["FK107"]
    result = run(WARNINGS, "--min-timeout", "10s", "-f", "json")
    assert json.loads(result.output) == []


def test_config_file_and_flag_precedence(tmp_path: Path) -> None:
    config = tmp_path / "lint.yaml"
    config.write_text("min_timeout: 10s\ndisable: [unsafe-retry]\n")
    assert json.loads(run(WARNINGS, "--config", config, "-f", "json").output) == []
    flag_wins = run(WARNINGS, "--config", config, "--min-timeout", "20s", "-f", "json")
    assert [d["rule"] for d in json.loads(flag_wins.output)] == ["FK107"]
    result = run(ERRORS, "--config", config, "-f", "json")
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_disable_and_no_schema_flags() -> None:
    bad_schema = CORPUS / "FK001-schema" / "fail-wrong-type.yaml"
    assert run(bad_schema).exit_code == 1
    assert run(bad_schema, "--no-schema").exit_code == 0
    assert run(ERRORS, "--disable", "FK105").exit_code == 0


def test_bad_options_exit_2_without_traceback(tmp_path: Path) -> None:
    result = run(WARNINGS, "--min-timeout", "a minute")
    assert result.exit_code == 2
    assert (
        "--min-timeout: [lint-config]" in result.stderr and "Traceback" not in result.output + result.stderr
    )
    bad = tmp_path / "lint.yaml"
    bad.write_text("min_concurrency: many\nunknown_knob: 1\n")
    result = run(WARNINGS, "--config", bad)
    assert result.exit_code == 2
    assert "min_concurrency" in result.stderr and "unknown_knob" in result.stderr
    assert run(WARNINGS, "--format", "xml").exit_code == 2
    assert run(WARNINGS, "--disable", "FK999").exit_code == 2


def test_unusable_input_reports_every_problem_with_file_path_and_rule(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n")
    (tmp_path / "syntax.yaml").write_text("apiVersion: v1\nkind: [\n")
    (tmp_path / "nokind.yml").write_text("apiVersion: v1\nmetadata: {name: a}\n---\n- just a list\n")
    (tmp_path / "ok.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n")
    result = run(tmp_path, tmp_path / "missing.yaml")
    assert result.exit_code == 2
    err = result.stderr
    assert "5 problems found" in err
    assert "dup.yaml: metadata.name: [duplicate-key]" in err and "lines 4 and 5" in err
    assert "syntax.yaml: line 3, column 1: [yaml-syntax]" in err
    assert "nokind.yml: document 1: kind: [missing-type]" in err
    assert "nokind.yml: document 2: [not-an-object]" in err
    assert "missing.yaml: [file-not-found]" in err
    assert "Traceback" not in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fleetkit.lint.command", str(ERRORS), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["rule"] == "FK105"


@pytest.mark.parametrize("flag", ["--help"])
def test_help_mentions_exit_codes_and_suppression(flag: str) -> None:
    result = run(flag)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Exit codes" in text and "fleetkit.dev/lint-ignore" in text and "--min-timeout" in text
