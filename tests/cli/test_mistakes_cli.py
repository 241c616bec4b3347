"""Command-line mistakes, tried as a new user would, on every ``fleetkit`` command.

Each case is a command line with one or more mistakes in its flags, arguments or paths. Every one must
exit with code 2, show no traceback, name the flag (or path), the rule and the bad value in one bullet
per mistake — all of them at once — and write nothing: the temporary directory the case works in is
byte-identical afterwards, and the project's own files are untouched.

Placeholders in the command lines: ``{tmp}`` the case's directory, ``{file}`` a file in it, ``{empty}``
an empty directory, ``{text}`` a text file that is not YAML, ``{binary}`` a binary file, ``{other}`` a
directory holding unrelated files, ``{prev}`` a ``fleetkit preview --out`` directory, ``{root}`` the
project, ``{stacks}`` its stack directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit import output
from fleetkit.cli import app
from fleetkit.errors import SpecError
from fleetkit.output import stack_files, write_tree
from fleetkit.simulate import command
from tests.conftest import copy_project

# (id, command line, what the output must contain — every item, in any order)
CASES: list[tuple[str, list[str], list[str]]] = [
    # --- the parser: unknown commands and options, missing arguments and values
    ("unknown-command", ["valdate"], ["[cli.unknown-command]", "did you mean 'validate'", "(got 'valdate')"]),
    ("unknown-option", ["validate", "--stak", "x"], ["--stak: [cli.unknown-option]", "--stack", "(got '--stak')"]),
    ("unknown-option-preview", ["preview", "--root", "{root}", "--detail"], ["--detail: [cli.unknown-option]", "--details"]),
    ("unknown-option-lint", ["lint", "--fromat", "json", "{file}"], ["--fromat: [cli.unknown-option]", "--format"]),
    ("missing-argument", ["lint"], ["FILE_OR_DIR...: [cli.missing]", "fleetkit lint --help"]),
    ("option-without-value", ["preview", "--out"], ["--out: [cli.missing-value]"]),
    ("extra-argument", ["validate", "aws-us-east-1"], ["[cli.extra-argument]", "(got 'aws-us-east-1')"]),
    # --- numbers and choices
    ("jobs-zero", ["preview", "--root", "{root}", "-j", "0"], ["--jobs: 0: [cli.bad-jobs]", "(got 0)"]),
    ("jobs-negative", ["preview", "--root", "{root}", "-j", "-1"], ["--jobs: -1: [cli.bad-jobs]", "(got -1)"]),
    ("jobs-not-a-number", ["preview", "--root", "{root}", "-j", "abc"], ["--jobs: abc: [cli.bad-jobs] expected a whole number", "(got 'abc')"]),
    ("jobs-and-out-at-once", ["preview", "--root", "{root}", "-j", "two", "--out", "{file}"], ["--jobs: two:", "--out: {file}: [output.unusable]", "2 problems"]),
    ("lint-format", ["lint", "-f", "xml", "{prev}"], ["--format: xml: [cli.bad-choice]", "table, json, sarif", "(got 'xml')"]),
    ("lint-format-typo", ["lint", "-f", "jsno", "{prev}"], ["did you mean json?"]),
    ("review-format-and-render", ["review", "--root", "{root}", "-f", "html", "--render", "fast"], ["--format: html: [cli.bad-choice]", "--render: fast: [cli.bad-choice]", "2 problems"]),
    ("simulate-numbers", ["simulate", "--root", "{root}", "--from", "{prev}", "--concurrency", "-1", "--rate", "lots", "-f", "yaml"], ["--concurrency: -1: [cli.bad-value]", "--rate: lots: [cli.bad-value]", "--format: yaml: [cli.bad-choice]", "3 problems"]),
    ("simulate-rate-infinite", ["simulate", "--root", "{root}", "--from", "{prev}", "--rate", "inf"], ["--rate: inf: [cli.bad-value]"]),
    # --- the project, stacks and overrides
    ("root-is-a-file", ["validate", "--root", "{file}"], ["--root: {file}: [cli.not-a-project] is a file"]),
    ("root-missing", ["validate", "--root", "{tmp}/nowhere"], ["--root: {tmp}/nowhere: [cli.not-a-project] no such directory"]),
    ("root-empty", ["validate", "--root", "{empty}"], ["--root: {empty}: [cli.not-a-project] no Pulumi.yaml"]),
    ("root-and-jobs", ["preview", "--root", "{empty}", "-j", "0"], ["[cli.not-a-project]", "[cli.bad-jobs]", "2 problems"]),
    ("stacks-unknown", ["validate", "--root", "{root}", "-s", "aws-mars-1", "-s", "gcp"], ["--stack: aws-mars-1: [cli.unknown-stack]", "--stack: gcp: [cli.unknown-stack]"]),
    ("set-and-stack", ["plan-capacity", "--root", "{root}", "-s", "nope", "--set", "replicas"], ["--set: replicas: [cli.set-syntax]", "--stack: nope: [cli.unknown-stack]"]),
    ("set-empty-keys", ["validate", "--root", "{root}", "--set", "models..replicas.max=3", "--set", "models.llama-3-8b.replicas.max.=2"], ["--set: models..replicas.max=3: [cli.set-syntax] a path is keys joined by '.' with no empty key", "--set: models.llama-3-8b.replicas.max.=2: [cli.set-syntax]", "2 problems"]),
    ("set-empty-path", ["validate", "--root", "{root}", "--set", "=3"], ["--set: =3: [cli.set-syntax]"]),
    # --- preview --out
    ("out-existing-file", ["preview", "--root", "{root}", "--out", "{file}"], ["--out: {file}: [output.unusable] is an existing file"]),
    ("out-under-a-file", ["preview", "--root", "{root}", "--out", "{file}/preview"], ["[output.unusable]", "is a file, so nothing can be created under it"]),
    ("out-stdout", ["preview", "--root", "{root}", "--out", "-"], ["--out: -: [output.no-stdout]"]),
    ("out-is-the-stacks", ["preview", "--root", "{root}", "--out", "{stacks}"], ["[output.is-input] is the input"]),
    ("out-inside-the-stacks", ["preview", "--root", "{root}", "--out", "{stacks}/preview"], ["[output.is-input] lies inside the input"]),
    ("out-around-the-project", ["preview", "--root", "{root}", "--out", "{root}/.."], ["[output.is-input] contains the input"]),
    ("out-foreign-directory", ["preview", "--root", "{root}", "--out", "{other}"], ["--out: {other}: [output.unusable] is a directory that no earlier --out wrote", "notes.txt"]),
    ("out-project", ["preview", "--root", "{root}", "--out", "{root}"], ["[output.unusable] holds a project (Pulumi.yaml)"]),
    # --- lint inputs and --output
    ("lint-inputs-all-at-once", ["lint", "{tmp}/missing.yaml", "{empty}", "{binary}", "{text}"], ["[file-not-found]", "[no-input]", "[unreadable]", "[not-an-object]", "4 problems"]),
    ("lint-output-directory", ["lint", "{prev}", "-o", "{empty}"], ["--output: {empty}: [output.unusable] is a directory"]),
    ("lint-output-under-a-file", ["lint", "{prev}", "-o", "{file}/report.json"], ["--output:", "is a file, so nothing can be created under it"]),
    ("lint-output-is-an-input", ["lint", "{text}", "-o", "{text}"], ["--output: {text}: [output.is-input] is the input"]),
    ("lint-output-inside-an-input", ["lint", "{prev}", "-o", "{prev}/report.json"], ["[output.is-input] lies inside the input"]),
    ("lint-durations", ["lint", "{prev}", "--min-timeout", "5x", "--min-per-try-timeout", "-3s"], ["--min-timeout: [lint-config]", "(got '5x')", "--min-per-try-timeout: [lint-config] a duration of 0 or more", "(got '-3s')"]),
    ("lint-disable-unknown", ["lint", "{prev}", "--disable", "FK9999", "--disable", "unsafe-retyr"], ["--disable: FK9999: [lint.unknown-rule]", "--disable: unsafe-retyr: [lint.unknown-rule] no such rule; did you mean unsafe-retry?"]),
    ("lint-config-missing", ["lint", "{prev}", "--config", "{tmp}/lint.yaml"], ["{tmp}/lint.yaml: [config-file] cannot read lint config"]),
    ("lint-config-not-a-mapping", ["lint", "{prev}", "--config", "{text}"], ["{text}: [config-file] lint config must be a mapping"]),
    ("lint-everything-at-once", ["lint", "{tmp}/missing", "-f", "xml", "-o", "{empty}", "--min-timeout", "soon", "--disable", "nope"], ["[file-not-found]", "[cli.bad-choice]", "[output.unusable]", "--min-timeout:", "[lint.unknown-rule]", "5 problems"]),
    ("lint-device", ["lint", "/dev/null"], ["/dev/null: [not-a-file]"]),
    # --- review
    ("review-empty-base", ["review", "--root", "{root}", "-b", ""], ["--base: [review.unknown-rev]", "(got '')"]),
    ("review-option-as-base", ["review", "--root", "{root}", "-b", "--stat"], ["--base: --stat: [review.unknown-rev]", "(got '--stat')"]),
    ("review-unknown-base", ["review", "--root", "{root}", "-b", "no-such-branch", "-o", "{empty}", "-f", "md"], ["--base: no-such-branch: [review.unknown-rev]", "--output: {empty}: [output.unusable]", "--format: md: [cli.bad-choice]", "3 problems"]),
    ("review-stack-and-output", ["review", "--root", "{root}", "-b", "HEAD", "-s", "nope", "-o", "{file}/r.md"], ["--stack: nope: [cli.unknown-stack]", "--output:", "2 problems"]),
    ("review-output-is-a-stack-file", ["review", "--root", "{root}", "-b", "HEAD", "-o", "{stacks}/Pulumi.aws-us-east-1.yaml"], ["[output.is-input] lies inside the input"]),
    ("review-output-is-pulumi-yaml", ["review", "--root", "{root}", "-b", "HEAD", "-o", "{root}/Pulumi.yaml"], ["[output.is-input] is the input"]),
    # --- simulate
    ("from-missing", ["simulate", "--root", "{root}", "--from", "{tmp}/nowhere"], ["--from: {tmp}/nowhere: [simulate.no-preview] no such directory"]),
    ("from-a-file", ["simulate", "--root", "{root}", "--from", "{file}"], ["--from: {file}: [simulate.no-preview] is a file"]),
    ("from-empty", ["simulate", "--root", "{root}", "--from", "{empty}"], ["--from: {empty}: [simulate.no-preview] no <stack>/manifests"]),
    ("from-the-stacks", ["simulate", "--root", "{root}", "--from", "{stacks}"], ["[simulate.no-preview]"]),
    ("sim-output-directory", ["simulate", "--root", "{root}", "--from", "{prev}", "-o", "{empty}"], ["--output: {empty}: [output.unusable] is a directory"]),
    ("sim-output-inside-from", ["simulate", "--root", "{root}", "--from", "{prev}", "-o", "{prev}/aws-us-east-1/outputs.json"], ["--output:", "[output.is-input] lies inside the input"]),
    ("sim-output-in-stacks", ["simulate", "--root", "{root}", "--from", "{prev}", "-o", "{stacks}/fleet.yaml"], ["[output.is-input]"]),
    ("sim-diagram-under-a-file", ["simulate", "--root", "{root}", "--from", "{prev}", "--diagram", "{file}/flow"], ["--diagram: {file}/flow.svg: [output.unusable]", "1 problem"]),
    ("sim-everything-at-once", ["simulate", "--root", "{root}", "--from", "{prev}", "--origin", "mars", "--picture", "nah", "--baseline", "avg", "-H", "x-tier", "-o", "{empty}"], ["--origin: mars:", "--picture: nah:", "--baseline: avg:", "--header: x-tier: [simulate.bad-pair]", "--output: {empty}:", "[cli.no-effect]", "6 problems"]),
    ("sim-assumptions", ["simulate", "--root", "{root}", "--from", "{prev}", "--assume", "output_tokens=0", "--assume", "utilisation=1.5", "--assume", "eficiency=0.3"], ["--assume: output_tokens=0: [simulate.bad-number] output_tokens must be 1 or more", "--assume: utilisation=1.5:", "did you mean efficiency?", "3 problems"]),
    ("sim-demand-not-finite", ["simulate", "--root", "{root}", "--from", "{prev}", "--demand", "llama-3-8b=nan", "--demand", "llama-3-70b=inf"], ["--demand: llama-3-8b=nan: [simulate.bad-number]", "--demand: llama-3-70b=inf:", "2 problems"]),
    ("sim-picture-without-diagram", ["simulate", "--root", "{root}", "--from", "{prev}", "--picture", "healthy"], ["--picture: healthy: [cli.no-effect] only the diagram shows a picture"]),
    ("sim-path", ["simulate", "--root", "{root}", "--from", "{prev}", "--path", "v1/chat/completions"], ["--path: v1/chat/completions: [cli.bad-value] a request path starts with /"]),
    # --- the weight agent through the kit's CLI
    ("weights-unknown-command", ["weights", "synk"], ["invalid choice: 'synk'"]),
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project, committed to a git repository of its own (review's ``--base``): the
    cases point outputs at the project's own files, and a regression must damage the copy, never
    the checkout the tests run from."""
    root = copy_project(tmp_path_factory.mktemp("mistakes") / "project")
    git = ["git", "-c", "user.name=fleetkit", "-c", "user.email=fleetkit@example.invalid", "-C", str(root)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "project"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def preview_dir(tmp_path_factory: pytest.TempPathFactory, demo_preview: dict) -> Path:
    """A ``fleetkit preview --out`` directory of the demo fleet (kept read-only by the cases)."""
    out = tmp_path_factory.mktemp("preview") / "out"
    files: dict[str, str] = {}
    for res in demo_preview.values():
        files.update(stack_files(res))
    write_tree(out, files)
    return out


@pytest.fixture()
def place(tmp_path: Path, project_root: Path, preview_dir: Path) -> dict[str, str]:
    (tmp_path / "a-file").write_text("keep me\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("just some words\n")
    (tmp_path / "blob.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("unrelated\n")
    return {
        "tmp": str(tmp_path),
        "file": str(tmp_path / "a-file"),
        "empty": str(tmp_path / "empty"),
        "text": str(tmp_path / "notes.txt"),
        "binary": str(tmp_path / "blob.yaml"),
        "other": str(tmp_path / "other"),
        "prev": str(preview_dir),
        "root": str(project_root),
        "stacks": str(project_root / "stacks"),
    }


def _fill(text: str, place: dict[str, str]) -> str:
    for key, value in place.items():
        text = text.replace("{" + key + "}", value)
    return text


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_reported_and_nothing_is_written(
    argv: list[str],
    needles: list[str],
    place: dict[str, str],
    tmp_path: Path,
    project_root: Path,
    preview_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    watched = [tmp_path, project_root / "stacks", preview_dir]
    before = [_snapshot(d) for d in watched]
    code, text = _invoke([_fill(a, place) for a in argv])
    assert code == 2, text
    assert "Traceback" not in text
    for needle in needles:
        assert _fill(needle, place) in text, f"{needle!r} not in:\n{text}"
    assert [_snapshot(d) for d in watched] == before, "a mistake must write nothing"
    assert not (project_root / "-").exists()


def test_the_parser_errors_say_where_the_help_is(place: dict[str, str]) -> None:
    code, text = _invoke(["simulate", "--orign", "x"])
    assert code == 2 and "did you mean --origin?" in text and "see `fleetkit simulate --help`" in text


@pytest.mark.parametrize("command", ["lint", "review", "simulate"])
def test_dash_is_stdout(
    command: str, place: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = {
        "lint": ["lint", place["prev"], "-f", "json", "-o", "-"],
        "review": [
            "review",
            "--root",
            place["root"],
            "-b",
            "HEAD",
            "--render",
            "policies",
            "-f",
            "json",
            "-o",
            "-",
        ],
        "simulate": ["simulate", "--root", place["root"], "--from", place["prev"], "-f", "json", "-o", "-"],
    }[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    assert not (tmp_path / "-").exists(), "`-o -` writes to stdout, not to a file named '-'"
    assert result.stdout.lstrip().startswith(("[", "{")), result.stdout[:200]


@pytest.mark.parametrize("command", ["lint", "simulate"])
def test_an_unwritable_output_directory_is_a_usage_error(
    command: str, place: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere, so the permission answer is simulated for this one directory
    monkeypatch.setattr(
        output.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    target = str(locked / "report.json")
    args = {
        "lint": ["lint", place["prev"], "-o", target],
        "simulate": ["simulate", "--root", place["root"], "--from", place["prev"], "-o", target],
    }[command]
    code, text = _invoke(args)
    assert code == 2 and "[output.unusable] the directory" in text and "is not writable" in text, text
    assert list(locked.iterdir()) == []


def test_a_failed_report_write_keeps_the_old_report(
    place: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report.json"
    report.write_text("old\n")

    def full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "replace", full)
    code, text = _invoke(["lint", place["prev"], "-f", "json", "-o", str(report)])
    assert code == 2 and "[output.write-failed]" in text and "No space left on device" in text, text
    assert report.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a-file", "empty", "notes.txt", "blob.yaml", "other", "report.json"]
    ), "no temporary file is left behind"


def test_ctrl_c_between_the_two_renames_puts_the_old_tree_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tree(out, {"a/resources.json": "old\n"})
    real = os.replace
    calls = {"n": 0}

    def interrupted(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second rename: the new tree into place
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tree(out, {"a/resources.json": "new\n"})
    monkeypatch.undo()
    assert (out / "a" / "resources.json").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_earlier_output_directory_is_accepted(tmp_path: Path, preview_dir: Path) -> None:
    again = tmp_path / "prev"
    shutil.copytree(preview_dir, again)
    (again / "README.md").write_text("kept\n")  # a stray file next to the stacks does not make it foreign
    output.check_output_dir(again, "--out")
    with pytest.raises(SpecError) as info:
        output.check_output_dir(tmp_path, "--out")  # holds prev/, which is not a stack directory
    assert [p.rule for p in info.value.problems] == ["output.unusable"]


def test_a_bad_environment_variable_is_named(place: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETKIT_STACK_REF_PREFIX", "not a prefix")
    code, text = _invoke(["validate", "--root", place["root"]])
    assert code == 2 and "$FLEETKIT_STACK_REF_PREFIX" in text and "(got 'not a prefix')" in text, text


def test_lint_reads_standard_input_for_dash(preview_dir: Path) -> None:
    text = (preview_dir / "aws-us-east-1" / "manifests" / "core_service.yaml").read_text()
    result = CliRunner().invoke(app, ["lint", "-", "-f", "json"], input=text)
    assert result.exit_code in (0, 1) and result.stdout.lstrip().startswith("["), result.output
    result = CliRunner().invoke(app, ["lint", "-"], input="kind: [\n")
    assert result.exit_code == 2 and "(stdin): line 2" in result.output and "[yaml-syntax]" in result.output


def test_a_broken_preview_directory_is_reported_file_by_file(
    tmp_path: Path, project_root: Path, preview_dir: Path
) -> None:
    broken = tmp_path / "prev"
    shutil.copytree(preview_dir, broken)
    (broken / "aws-us-east-1" / "manifests" / "zz.yaml").write_bytes(bytes(range(128, 256)))
    (broken / "aws-us-west-2" / "outputs.json").write_text("[1]\n")
    (broken / "gcp-europe-west4" / "manifests" / "zz.yaml").write_text("kind: [\n")
    code, text = _invoke(["simulate", "--root", str(project_root), "--from", str(broken)])
    assert code == 2, text
    assert "aws-us-east-1/manifests/zz.yaml: [simulate.unreadable]" in text
    assert "aws-us-west-2/outputs.json: [simulate.bad-json] expected a JSON object" in text
    assert "gcp-europe-west4/manifests/zz.yaml: [simulate.bad-yaml]" in text


def test_simulate_writes_its_files_all_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = {tmp_path / "r.md": b"old report\n", tmp_path / "flow.svg": b"<svg/>\n"}
    for path, data in old.items():
        path.write_bytes(data)
    new = {**{p: b"new\n" for p in old}, tmp_path / "flow.mmd": b"graph\n"}
    real = os.replace
    calls = {"n": 0}

    def failing(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third file's rename: two are already in place
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(command.os, "replace", failing)
    with pytest.raises(KeyboardInterrupt):
        command.write_atomically(new)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in sorted(tmp_path.iterdir())} == old, (
        "the old files are put back, the new one goes"
    )


@pytest.mark.parametrize("command", ["lint", "simulate"])
def test_a_report_to_a_pipe_is_written_into_it_not_renamed_over_it(
    command: str, place: dict[str, str], tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    args = {
        "lint": ["lint", place["prev"], "-f", "json", "-o", str(fifo)],
        "simulate": [
            "simulate",
            "--root",
            place["root"],
            "--from",
            place["prev"],
            "-f",
            "json",
            "-o",
            str(fifo),
        ],
    }[command]
    code, text = _invoke(args)
    reader.join(timeout=60)
    assert code in (0, 1), text
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the pipe must still be a pipe (a device would be replaced)"
    assert got and got[0].lstrip().startswith((b"[", b"{"))
