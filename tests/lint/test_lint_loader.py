"""Loading YAML: files, directories, multi-document files, kind: List, and every kind of unusable input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.errors import SpecError
from fleetkit.lint.documents import load_paths

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[SpecError]) -> list[tuple[str, str, str]]:
    return [(Path(p.file).name, p.where, p.rule) for p in exc.value.problems]


def test_multi_document_and_list(tmp_path: Path) -> None:
    file = write(
        tmp_path / "all.yaml",
        "---\n" + CONFIGMAP % "a" + "---\n\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n"
        "- apiVersion: v1\n  kind: Secret\n  metadata: {name: c}\n",
    )
    docs = load_paths([file])
    assert [d.obj["metadata"]["name"] for d in docs] == ["a", "b", "c"]
    assert [d.index for d in docs] == [0, 1, 2]
    assert docs[2].line(["metadata", "name"]) == 16


def test_directory_recursion_is_sorted_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", CONFIGMAP % "b")
    write(tmp_path / "a" / "z.yml", CONFIGMAP % "z")
    write(tmp_path / ".git" / "x.yaml", "not: [valid")
    write(tmp_path / "notes.txt", "ignored")
    docs = load_paths([tmp_path])
    assert [Path(d.file).relative_to(tmp_path).as_posix() for d in docs] == ["a/z.yml", "b.yaml"]


def test_explicit_file_is_read_whatever_its_extension(tmp_path: Path) -> None:
    file = write(
        tmp_path / "manifest.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}'
    )
    assert load_paths([file])[0].obj["metadata"]["name"] == "j"


def test_same_file_twice_is_loaded_once(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", CONFIGMAP % "a")
    assert len(load_paths([file, tmp_path])) == 1


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    write(
        tmp_path / "1-dup.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: {x: '1', x: '2'}\n",
    )
    write(tmp_path / "2-syntax.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n")
    write(tmp_path / "3-scalar.yaml", "just text\n")
    write(tmp_path / "4-nokind.yaml", "apiVersion: v1\nmetadata: {name: a}\n")
    write(tmp_path / "5-list.yaml", "apiVersion: v1\nkind: List\nitems:\n- 42\n- {kind: ConfigMap}\n")
    write(tmp_path / "6-kindtype.yaml", "apiVersion: v1\nkind: 7\nmetadata: {name: a}\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError) as exc:
        load_paths([tmp_path, tmp_path / "nope.yaml", empty])
    found = set(problems(exc))
    assert ("1-dup.yaml", "data.x", "duplicate-key") in found
    assert any(f == "2-syntax.yaml" and r == "yaml-syntax" and p.startswith("line ") for f, p, r in found)
    assert ("3-scalar.yaml", "document 1", "not-an-object") in found
    assert ("4-nokind.yaml", "document 1: kind", "missing-type") in found
    assert ("5-list.yaml", "document 1, items[0]", "not-an-object") in found
    assert ("5-list.yaml", "document 1, items[1]: apiVersion", "missing-type") in found
    assert ("6-kindtype.yaml", "document 1: kind", "missing-type") in found
    assert ("nope.yaml", "", "file-not-found") in found
    assert ("empty", "", "no-input") in found
    rendered = exc.value.render()
    assert rendered.startswith(f"{len(exc.value.problems)} problems found:")


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {a: b\n")
    with pytest.raises(SpecError) as exc:
        load_paths([tmp_path / "bad.yaml"])
    [problem] = exc.value.problems
    assert problem.rule == "yaml-syntax" and problem.where.startswith("line 6")


def test_nested_duplicate_key_path(tmp_path: Path) -> None:
    write(
        tmp_path / "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
        "spec:\n  http:\n  - timeout: 10s\n    timeout: 20s\n",
    )
    with pytest.raises(SpecError) as exc:
        load_paths([tmp_path / "vs.yaml"])
    [problem] = exc.value.problems
    assert (problem.path, problem.rule) == (("spec", "http", 0, "timeout"), "duplicate-key")
    assert "lines 6 and 7" in problem.message


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SpecError) as exc:
        load_paths([tmp_path / "bin.yaml"])
    assert exc.value.problems[0].rule == "unreadable"


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    file = write(
        tmp_path / "anchors.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &l {app: x}\n"
        "  annotations:\n    <<: *l\n    extra: y\n",
    )
    [doc] = load_paths([file])
    assert doc.obj["metadata"]["annotations"] == {"app": "x", "extra": "y"}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("!!omap\n  - name: a\n  - namespace: b\n", {"name": "a", "namespace": "b"}),
        ("!!omap {name: a}\n", {"name": "a"}),
    ],
)
def test_ordered_map_reads_as_a_mapping(tmp_path: Path, metadata: str, expected: dict[str, str]) -> None:
    file = write(tmp_path / "om.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: " + metadata)
    [doc] = load_paths([file])
    assert doc.obj["metadata"] == expected


@pytest.mark.parametrize(
    ("metadata", "where", "rule"),
    [
        ("!!omap\n  - name: a\n  - name: b\n", "metadata.name", "duplicate-key"),
        ("!!omap\n  - 3\n", "line 4", "yaml-syntax"),
        ("!!omap\n  - {name: a, namespace: b}\n", "line 4", "yaml-syntax"),
        ("!!omap abc\n", "line 3", "yaml-syntax"),
    ],
)
def test_bad_ordered_map_is_a_problem_not_a_crash(
    tmp_path: Path, metadata: str, where: str, rule: str
) -> None:
    write(tmp_path / "om.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: " + metadata)
    with pytest.raises(SpecError) as exc:
        load_paths([tmp_path / "om.yaml"])
    [problem] = exc.value.problems
    assert problem.rule == rule and problem.where.startswith(where)
