"""Golden files for the demo fleet: the offline preview's files, compared byte for byte.

Regenerate only on purpose:  FLEETKIT_UPDATE_GOLDEN=1 ./dev test tests/golden
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from fleetkit.loader import load_fleet
from fleetkit.output import stack_files
from fleetkit.preview import preview_fleet
from fleetkit.schema import validate_objects

GOLDEN = Path(__file__).parent / "demo"
UPDATE = os.environ.get("FLEETKIT_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def files(demo_preview):
    out: dict[str, str] = {}
    for res in demo_preview.values():
        out.update(stack_files(res))
    return out


def test_golden_files_match(files):
    if UPDATE:
        for old in GOLDEN.rglob("*"):
            if old.is_file():
                old.unlink()
        for rel, text in files.items():
            path = GOLDEN / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    expected = {
        str(p.relative_to(GOLDEN)): p.read_text(encoding="utf-8") for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(expected) == sorted(files), (
        "file set changed; rerun with FLEETKIT_UPDATE_GOLDEN=1 if intended"
    )
    changed = [rel for rel in files if files[rel] != expected[rel]]
    assert not changed, f"golden files differ: {changed[:10]} (FLEETKIT_UPDATE_GOLDEN=1 to accept)"


def test_preview_is_deterministic_sequential_or_parallel(demo_preview, project_root):
    def hung(*_):
        raise TimeoutError("preview workers hung")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(240)
    try:
        fleet = load_fleet(project_root)
        sequential = preview_fleet(fleet, jobs=1)  # the fixture ran with the default workers
        # workers forked from a process that already ran programs in-process must still work
        parallel = preview_fleet(fleet, jobs=2)
    finally:
        signal.alarm(0)
    for name, res in demo_preview.items():
        assert stack_files(res) == stack_files(sequential[name]) == stack_files(parallel[name]), name


def test_every_manifest_is_schema_valid(demo_preview):
    for name, res in demo_preview.items():
        issues = validate_objects(res.manifests())
        assert issues == [], f"{name}: {issues[:5]}"


def test_no_private_key_material_in_any_file(files):
    pem = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    leaks = [rel for rel, text in files.items() if pem.search(text)]
    assert not leaks, leaks


def test_demo_fleet_spans_three_clouds(demo_preview):
    types = {t for res in demo_preview.values() for t in res.types()}
    assert any(t.startswith("aws:") for t in types)
    assert any(t.startswith("gcp:") for t in types)
    assert any(t.startswith("azure-native:") for t in types)


def test_the_peering_stack_alone_previews_as_in_the_full_fleet(demo_preview, project_root):
    """`preview -s mesh-peering` runs every region first (unasked, unreturned): same files as the full run."""
    alone = preview_fleet(load_fleet(project_root), only=["mesh-peering"], jobs=1)
    assert list(alone) == ["mesh-peering"]
    assert stack_files(alone["mesh-peering"]) == stack_files(demo_preview["mesh-peering"])
