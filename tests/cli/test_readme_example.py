"""The README's first command, run exactly as written: ``./dev preview`` on the bundled demo fleet exits 0.

The command is read from the README's "Two commands" block (not repeated here), and run with bash in a
copy of the project whose ``.venv`` is this checkout's, so the files it writes (``out/preview/``) land
in the copy and the checkout stays clean.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_preview_command() -> str:
    """The ``./dev preview`` line of the README's first ``sh`` block, without its comment."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "the README has no sh block"
    commands = [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines()]
    [command] = [c for c in commands if c.split()[:2] == ["./dev", "preview"]]
    return command


def test_the_readme_names_its_preview_command() -> None:
    assert readme_preview_command() == "./dev preview"


@pytest.mark.slow
def test_the_readme_preview_example_exits_0(tmp_path: Path) -> None:
    stamp = ROOT / ".venv" / ".fleetkit-installed"
    if not stamp.is_file():
        pytest.skip("needs the checkout's .venv (set up by ./dev)")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dev", "pyproject.toml", "Pulumi.yaml", "__main__.py", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "stacks", project / "stacks")
    (project / ".venv").symlink_to(ROOT / ".venv")
    # the environment is installed (this test runs in it): never let ./dev reinstall into the shared .venv
    # because the copy's pyproject.toml looks newer than its stamp
    done = stamp.stat().st_mtime_ns
    os.utime(project / "pyproject.toml", ns=(done, done))
    stale = subprocess.run(["bash", "-c", '[ pyproject.toml -nt "$0" ]', str(stamp)], cwd=project)
    assert stale.returncode != 0, "./dev would set up .venv again"
    result = subprocess.run(
        ["bash", "-c", readme_preview_command()], cwd=project, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stacks = sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in (project / "stacks").glob("Pulumi.*.yaml")
    )
    written = sorted(p.parent.name for p in (project / "out" / "preview").glob("*/resources.json"))
    assert written == stacks
