"""The static gate's fast parts run with the tests, so a change that breaks them fails `./dev test` too.

`./dev check` (and `.ci/run`) run the same tools plus mypy; here: `ruff check` and `ruff format --check` over the tree and the
import contract (`lint-imports`, the layers of docs/architecture.md). Both read pyproject.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[lint]'): the gate runs in ./dev check only")
    return str(found)


def _gate(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one gate tool over the checkout (reads pyproject.toml), without its cache."""
    return subprocess.run(
        [_tool(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_ruff_passes() -> None:
    result = _gate("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted() -> None:
    """`ruff format --check`: one format for the whole tree (run `.venv/bin/ruff format .` to fix)."""
    result = _gate("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_import_contract_holds() -> None:
    result = _gate("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_gate_has_no_per_file_exceptions() -> None:
    """Every file passes ruff's rules and every module mypy's settings as configured: a per-file ruff
    ignore or a `[[tool.mypy.overrides]]` entry would let one module's errors back in unseen (the
    weight agent's own-style `exclude` is a whole distribution, not an exception)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["ruff"]["lint"].get("per-file-ignores", {}) == {}
    assert config["tool"]["mypy"].get("overrides", []) == []
    assert config["tool"]["mypy"]["disallow_untyped_defs"] is True
