"""Output paths are checked before any rendering, and the output tree is replaced whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit import output
from fleetkit.cli import app
from fleetkit.errors import SpecError
from fleetkit.output import write_tree
from tests.conftest import copy_project

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture()
def no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command starts rendering: bad output paths must be caught before."""

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("rendering started before the output path was checked")

    monkeypatch.setattr("fleetkit.cli.preview_fleet", boom)
    monkeypatch.setattr("fleetkit.review.command.review", boom)


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output and (
        result.exception is None or isinstance(result.exception, SystemExit)
    )
    return result.exit_code, result.output


def _file(tmp_path: Path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("keep me\n")
    return f


@pytest.mark.parametrize("where", ["existing-file", "under-a-file"])
def test_preview_out_that_cannot_be_a_directory(
    where: str, tmp_path: Path, project_root: Path, no_rendering: None
) -> None:
    f = _file(tmp_path)
    out = f if where == "existing-file" else f / "preview"
    code, text = _invoke("preview", "--root", str(project_root), "--out", str(out))
    assert code == 2, text
    assert f"--out: {out}: [output.unusable]" in text
    assert f.read_text() == "keep me\n"


def test_preview_out_that_is_a_project(tmp_path: Path, project_root: Path, no_rendering: None) -> None:
    code, text = _invoke("preview", "--root", str(project_root), "--out", str(project_root))
    assert code == 2, text
    assert "[output.unusable] holds a project (Pulumi.yaml)" in text


def test_review_output_that_is_a_directory(tmp_path: Path, project_root: Path, no_rendering: None) -> None:
    code, text = _invoke("review", "--root", str(project_root), "--output", str(tmp_path))
    assert code == 2, text
    assert f"--output: {tmp_path}: [output.unusable] is a directory" in text


def test_review_output_under_a_file(tmp_path: Path, project_root: Path, no_rendering: None) -> None:
    out = _file(tmp_path) / "review.md"
    code, text = _invoke("review", "--root", str(project_root), "--output", str(out), "--format", "markdown")
    assert code == 2, text
    assert "[output.unusable]" in text and "is a file" in text


def test_unwritable_parent_is_reported(
    tmp_path: Path, project_root: Path, no_rendering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere, so the permission answer is simulated for this one directory
    monkeypatch.setattr(
        output.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    code, text = _invoke("preview", "--root", str(project_root), "--out", str(locked / "out"))
    assert code == 2, text
    assert "[output.unusable]" in text and "is not writable" in text


@pytest.mark.skipif(
    ROOT_USER, reason="root ignores directory permissions; the simulated case above covers it"
)
def test_read_only_directory_for_real(tmp_path: Path, project_root: Path, no_rendering: None) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, text = _invoke("preview", "--root", str(project_root), "--out", str(locked / "out"))
    finally:
        locked.chmod(stat.S_IRWXU)
    assert code == 2 and "is not writable" in text, text


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_failed_write_leaves_the_old_tree_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tree(out, {f"s{i}/resources.json": f"old {i}\n" for i in range(5)})
    before = _tree(out)
    calls = {"n": 0}
    real = Path.write_text

    def flaky(self: Path, *args: object, **kw: object) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(SpecError) as info:
        write_tree(out, {f"s{i}/resources.json": f"new {i}\n" for i in range(5)})
    monkeypatch.undo()
    assert [p.rule for p in info.value.problems] == ["output.write-failed"]
    assert "No space left on device" in info.value.problems[0].message
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging directory is left behind"


def test_the_tree_is_replaced_whole_and_keeps_other_stacks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"a/x.json": "a1\n", "b/x.json": "b1\n", "b/gone.json": "old\n"})
    (out / "a").chmod(stat.S_IRUSR | stat.S_IXUSR)  # a read-only stack directory from an earlier run
    try:
        write_tree(out, {"a/x.json": "a2\n", "c/x.json": "c2\n"})
    finally:
        (out / "a").chmod(stat.S_IRWXU)
    assert _tree(out) == {"a/x.json": "a2\n", "b/gone.json": "old\n", "b/x.json": "b1\n", "c/x.json": "c2\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_preview_out_that_contains_the_current_directory(
    tmp_path: Path, project_root: Path, no_rendering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out ..`` from inside a directory: replacing it would move the directory the user is in."""
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    code, text = _invoke("preview", "--root", str(project_root), "--out", "..")
    assert code == 2, text
    assert "--out: ..: [output.unusable] contains the current directory" in text
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["here"]


def test_preview_out_that_is_a_stacks_directory(
    tmp_path: Path, project_root: Path, no_rendering: None
) -> None:
    """Another project's stack directory (this project's own is an input: `output.is-input`)."""
    other = copy_project(tmp_path / "other")
    code, text = _invoke("preview", "--root", str(project_root), "--out", str(other / "stacks"))
    assert code == 2, text
    assert "[output.unusable] holds a project (Pulumi." in text


def test_a_tree_named_through_dot_dot_is_staged_beside_the_directory(tmp_path: Path) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    write_tree(tmp_path / "out" / "sub" / "..", {"s/x.json": "new\n"})
    assert _tree(tmp_path / "out") == {"s/x.json": "new\n"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s", "sub"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging directory is left behind"
