"""The command line as a user meets it: help text, exit codes, messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["validate", "preview", "plan-capacity", "lint"])
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output.splitlines()) > 5


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "preview", "plan-capacity", "weights"):
        assert command in result.output


def test_validate_demo_fleet(project_root):
    result = runner.invoke(app, ["validate", "--root", str(project_root)])
    assert result.exit_code == 0, result.output
    assert "stacks valid" in result.output


def test_plan_capacity_shows_pools_and_models(project_root):
    result = runner.invoke(app, ["plan-capacity", "--root", str(project_root), "-s", "aws-us-east-1"])
    assert result.exit_code == 0, result.output
    assert "g6e.12xlarge" in result.output and "llama-3-70b" in result.output


def test_unknown_flag_is_a_usage_error_without_traceback(project_root):
    result = subprocess.run(
        [sys.executable, "-m", "fleetkit.cli", "preview", "--bogus"],
        cwd=project_root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "No such option" in result.stderr


def test_bad_stack_file_in_a_real_process(tmp_project):
    (tmp_project / "stacks" / "Pulumi.aws-us-west-2.yaml").write_text("config:\n  fleetkit:cloud: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "fleetkit.cli", "preview", "--out", str(tmp_project / "out")],
        cwd=tmp_project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "stacks/Pulumi.aws-us-west-2.yaml: line" in result.stderr and "[yaml.syntax]" in result.stderr
    assert not (tmp_project / "out").exists()


def test_not_a_project(tmp_path):
    result = runner.invoke(app, ["validate", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "cli.not-a-project" in result.output


def test_plan_capacity_reports_n_minus_one_for_the_whole_fleet(project_root):
    result = runner.invoke(app, ["plan-capacity", "--root", str(project_root)])
    assert result.exit_code == 0, result.output
    assert "DR capacity (N-1)" in result.output
    assert "gcp-europe-west4" in result.output and "llama-3-70b v1" in result.output
    # every service is carried after losing any one region except the one-region canary, which is warned about
    assert result.output.count("NO") == 1 and "[dr.single-region] llama-3-70b v2" in result.output
