"""One mistake, one problem — and every mistake reported, at once.

Each case runs the real CLI on a copy of the demo project, makes one or a few mistakes as a new user
would, and expects exactly the problems of those mistakes: no follow-ons blamed on files that have
none (issue #11, "root cause first"), and none hidden by a mistake in another file ("all problems
at once").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app

USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
FLEET = "stacks/fleet.yaml"


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    text = (root / rel).read_text()
    assert old in text, old
    (root / rel).write_text(text.replace(old, new, 1))


def _problems(root: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(app, ["validate", "--root", str(root), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return [ln.strip().removeprefix("• ") for ln in result.output.splitlines() if ln.strip().startswith("•")]


def test_the_readme_error_example_prints_its_two_problems(tmp_project: Path) -> None:
    """The README's example output: an unknown route version is not also a "may be empty" subset."""
    _edit(tmp_project, USE1, "llama-3-70b: {pool: l40s}", "llama-3-70b: {pool: l40s, tensor_parallel: 8}")
    _edit(tmp_project, FLEET, "version: v2, weight: 10", "version: v7, weight: 10")
    lines = _problems(tmp_project)
    assert [ln.split(" ", 2)[:2] for ln in lines] == [
        [f"{USE1}:", "fleetkit:models.llama-3-70b.tensor_parallel:"],
        [f"{FLEET}:", "fleetkit.policies.routing.routes[0].to[1].version:"],
    ], lines
    assert "[capacity.tp-exceeds-gpus]" in lines[0] and "(got 8)" in lines[0]
    assert "[ref.unknown-version]" in lines[1] and "(got 'v7')" in lines[1]


def test_an_unknown_instance_type_set_for_every_stack_is_the_only_problem(project_root: Path) -> None:
    """The pool's GPU class is unknown, so the fleet file's GPU weights for it are not judged."""
    lines = _problems(project_root, "--set", "node_pools.l4.instance_type=g6.huge")
    assert lines, lines
    assert all(
        ln.startswith("--set: node_pools.l4.instance_type: [pool.unknown-instance-type]") for ln in lines
    ), lines


def test_an_unknown_instance_type_hides_the_gpu_class_references_to_its_pool(tmp_project: Path) -> None:
    for rel in ("stacks/Pulumi.aws-us-east-1.yaml", "stacks/Pulumi.aws-us-west-2.yaml"):
        _edit(tmp_project, rel, "instance_type: g6.12xlarge", "instance_type: g6.huge")
    for rel, itype in (
        ("stacks/Pulumi.gcp-europe-west4.yaml", "g2-standard-48"),
        ("stacks/Pulumi.azure-eastus.yaml", "Standard_NC24ads_A100_v4"),
    ):
        _edit(tmp_project, rel, f"instance_type: {itype}", "instance_type: nope")
    lines = _problems(tmp_project)
    assert lines and all("[pool.unknown-instance-type]" in ln for ln in lines), lines


def test_a_misspelled_mesh_section_in_the_fleet_file_is_one_problem(tmp_project: Path) -> None:
    """The trust-root and peering stacks inherit only ``mesh``: its misspelling is not "mesh missing" there."""
    _edit(tmp_project, FLEET, "  mesh:\n", "  msh:\n")
    lines = _problems(tmp_project)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"{FLEET}: fleetkit.msh: [spec.extra_forbidden] unknown key 'msh'; did you mean 'mesh'?"
    )


def test_a_type_error_in_the_fleet_file_does_not_hide_the_stack_files_reference_errors(
    tmp_project: Path,
) -> None:
    """Every region stack inherits the fleet file's policies, so none validates; their own unknown
    region and instance type are still reported, against their own files."""
    _edit(tmp_project, FLEET, "percent: 5", "percent: five")
    _edit(
        tmp_project,
        "stacks/Pulumi.gcp-europe-west4.yaml",
        "instance_type: g2-standard-48",
        "instance_type: g2-nope",
    )
    _edit(tmp_project, USE1, "fleetkit:region: us-east-1", "fleetkit:region: us-east-9")
    lines = _problems(tmp_project)
    assert [ln.split(" [")[0] for ln in lines] == [
        f"{USE1}: fleetkit:region:",
        "stacks/Pulumi.gcp-europe-west4.yaml: fleetkit:node_pools.l4.instance_type:",
        f"{FLEET}: fleetkit.policies.routing.routes[1].mirror.percent:",
    ], lines
    assert "[stack.unknown-region]" in lines[0] and "(got 'us-east-9')" in lines[0]
    assert "[pool.unknown-instance-type]" in lines[1] and "(got 'g2-nope')" in lines[1]
    assert "[spec.float_parsing]" in lines[2]


def test_a_set_key_only_other_kinds_of_stack_have_says_which(project_root: Path) -> None:
    """No "did you mean 'models'?" for ``models``: the key is right, the selected stack is a trust root."""
    lines = _problems(project_root, "-s", "mesh-root", "--set", "models.llama-3-8b.replicas.max=6")
    assert lines == [
        "--set: models.llama-3-8b.replicas.max: [cli.set-unknown-key] 'models' is not a setting of the "
        "selected stacks; only region stacks have it (a trust-root stack takes role, mesh, ca) "
        "(got 'models.llama-3-8b.replicas.max=6')"
    ], lines


@pytest.mark.parametrize("name", ["fleet.yml", "Fleet.yaml", "flet.yaml", "fleets.yaml"])
def test_a_misnamed_fleet_file_is_the_one_problem(name: str, tmp_project: Path) -> None:
    """``fleet.yml`` is not read: without this, every stack reports what it no longer inherits."""
    (tmp_project / FLEET).rename(tmp_project / "stacks" / name)
    lines = _problems(tmp_project)
    assert lines == [
        f"stacks/{name}: [fleet.file-name] the fleet file is read only as stacks/fleet.yaml; rename it "
        f"(as named, every stack would lose what it inherits) (got {name!r})"
    ], lines
