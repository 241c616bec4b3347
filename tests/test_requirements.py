"""``requirements.txt``: what Pulumi's pip toolchain installs on a fresh runner, and that it runs the program.

``Pulumi.yaml`` selects the pip toolchain with ``virtualenv: .venv``. When that directory is missing,
the Pulumi CLI creates it and installs the project's requirements before running the program
(pulumi/pulumi ``sdk/python/toolchain/pip.go``, ``InstallDependencies``): ``python3 -m venv <dir>``,
then ``<dir>/bin/python -m pip install --upgrade pip setuptools wheel`` and
``<dir>/bin/python -m pip install -r requirements.txt``, both in the project directory. Without a
``requirements.txt`` the venv stays empty and ``import pulumi`` fails; with ranges only, two runners
may resolve different provider versions. The slow test below does exactly those steps on a copy of
the project as a fresh clone holds it (packages come from pip's cache and the configured package
indexes), then runs the program under the mock runtime with that interpreter; it skips, saying why,
when no package index answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
#: pip's words for "no package index could be reached" (the only failure that skips; a pin to a version
#: no index has fails, it does not skip)
OFFLINE_MARKERS = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Max retries exceeded",
    "Network is unreachable",
)


def _requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _pins() -> dict[str, str]:
    """Canonical name -> pinned version of every ``name==version`` line."""
    out = {}
    for line in _requirement_lines():
        if line.startswith("-"):
            continue
        req = Requirement(line)
        [spec] = list(req.specifier)
        assert spec.operator == "==", f"{line}: pin an exact version"
        out[canonicalize_name(req.name)] = spec.version
    return out


def _pyproject_ranges() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in deps}


def test_requirements_install_the_kit_and_pin_every_pulumi_package() -> None:
    lines = _requirement_lines()
    assert lines[0] == "-e .", "the kit itself first (its other dependencies come from pyproject.toml)"
    pulumi_deps = {name for name in _pyproject_ranges() if name == "pulumi" or name.startswith("pulumi-")}
    assert set(_pins()) == pulumi_deps


def test_each_pin_satisfies_pyprojects_range() -> None:
    ranges = _pyproject_ranges()
    for name, version in sorted(_pins().items()):
        assert name in ranges, f"{name} is pinned but not a dependency in pyproject.toml"
        assert ranges[name].specifier.contains(version, prereleases=True), (
            f"requirements.txt pins {name}=={version}, outside pyproject.toml's {ranges[name]}"
        )


def _copy_project(dest: Path) -> None:
    """What a fresh clone holds: every file git tracks or would track (ignored files left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("tests/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _pip(venv_python: Path, cwd: Path, *args: str) -> None:
    """One of the toolchain's pip steps; skip when no index answers, fail on anything else."""
    proc = subprocess.run(
        [str(venv_python), "-m", "pip", "install", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode == 0:
        return
    tail = (proc.stdout + proc.stderr)[-3000:]
    if any(marker in tail for marker in OFFLINE_MARKERS):
        pytest.skip(
            f"no package index reachable for `pip install {' '.join(args)}` (pip said: {tail[-400:]})"
        )
    pytest.fail(f"`pip install {' '.join(args)}` failed:\n{tail}")


#: runs inside the fresh venv: every pin installed as pinned, then the program once per cloud under
#: the mock runtime (the offline preview runs ``__main__.py`` as ``pulumi up`` would)
CHECK = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import version
    from pathlib import Path
    pins = json.loads(sys.argv[1])
    got = {name: version(name) for name in pins}
    assert got == pins, f"installed {got}, pinned {pins}"
    import pulumi_aws, pulumi_azure_native, pulumi_gcp, pulumi_kubernetes  # noqa: F401
    from fleetkit.preview import run_stack
    for stack in ("aws-us-east-1", "gcp-europe-west4", "azure-eastus"):
        res = run_stack(Path("."), stack, {})
        assert any(r.type.startswith("kubernetes:") for r in res.resources), stack
        print(stack, len(res.resources))
    print("site", pulumi_aws.__file__)
    """
)


@pytest.mark.slow
def test_a_fresh_pulumi_venv_from_requirements_runs_the_program() -> None:
    with tempfile.TemporaryDirectory(prefix="fleetkit-venv-") as tmp:
        project = Path(tmp)
        _copy_project(project)
        venv = project / ".venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        python = venv / "bin" / "python"
        _pip(python, project, "--upgrade", "pip", "setuptools", "wheel")
        _pip(python, project, "-r", "requirements.txt")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        proc = subprocess.run(
            [str(python), "-c", CHECK, json.dumps(_pins())],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        lines = proc.stdout.splitlines()
        assert [ln.split()[0] for ln in lines[:3]] == ["aws-us-east-1", "gcp-europe-west4", "azure-eastus"]
        # the providers came from the fresh venv, not from the interpreter running the tests
        assert lines[-1].startswith(f"site {venv}"), lines[-1]
