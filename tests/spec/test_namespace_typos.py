"""A misspelt ``fleetkit:`` config namespace is an error, not a setting silently ignored (issue #11).

Close misspellings (``fleetkti:``) are caught whatever the key; shorter ones (``flet:``, ``kit:``) when the
key is one the spec has. Provider namespaces (``aws:region``) and the secrets namespace are left alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app

USE1 = "stacks/Pulumi.aws-us-east-1.yaml"


def _validate(root: Path, extra: str) -> tuple[int, str]:
    text = (root / USE1).read_text()
    (root / USE1).write_text(text.replace("  fleetkit:cloud: aws\n", f"  fleetkit:cloud: aws\n{extra}", 1))
    result = CliRunner().invoke(app, ["validate", "--root", str(root)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("ns", ["fleetkti", "flet", "kit", "fleetk"])
def test_a_misspelt_namespace_on_a_spec_key_is_reported(ns: str, tmp_project: Path) -> None:
    code, out = _validate(tmp_project, f"  {ns}:addons:\n    keda: true\n")
    assert code == 2, out
    assert f"{USE1}: {ns}:addons: [stack.unknown-namespace]" in out
    assert "did you mean 'fleetkit:addons'?" in out


@pytest.mark.parametrize(
    "line", ["  kubernetes:context: dev\n", "  fleetkit-secrets:cluster: {secure: AAABAx}\n", "  tls:x: y\n"]
)
def test_other_namespaces_are_left_alone(line: str, tmp_project: Path) -> None:
    code, out = _validate(tmp_project, line)
    assert code == 0, out
