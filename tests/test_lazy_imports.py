"""No first-party import inside a function without a one-line reason.

A function-level import of the kit's own packages usually hides an import cycle (fix the layering
instead, see docs/architecture.md). When it has a reason — a heavy SDK a command does not need, an
optional dependency — the reason is a comment on the import's line or on the line above the block
of imports it starts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("fleetkit", "components", "mesh", "policies")

#: Function-level imports without a reason comment, as (file, module): none left. A new one gets a
#: reason comment or is hoisted; this set stays for a deliberate, commented exception.
KNOWN: set[tuple[str, str]] = set()


def _first_party(node: ast.Import | ast.ImportFrom) -> str | None:
    """The first-party module an import statement reads, if any."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level or module.split(".")[0] in FIRST_PARTY:
            return "." * node.level + module
        return None
    for alias in node.names:
        if alias.name.split(".")[0] in FIRST_PARTY:
            return alias.name
    return None


def _is_comment(line: str) -> bool:
    return line.strip().startswith("#")


def _statement_lists(fn: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every statement list inside a function (its body, and those of its if/try/with/for blocks)."""
    for node in ast.walk(fn):
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                yield stmts
        for handler in getattr(node, "handlers", []):
            yield handler.body


def unexplained_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each first-party import inside a function with no reason comment."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: dict[int, str] = {}
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for stmts in _statement_lists(fn):
            block_start: int | None = None  # first line of the run of imports the statement belongs to
            for stmt in stmts:
                if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    block_start = None
                    continue
                if block_start is None:
                    block_start = stmt.lineno
                module = _first_party(stmt)
                if module is None:
                    continue
                own = lines[stmt.lineno - 1 : (stmt.end_lineno or stmt.lineno)]
                above = lines[block_start - 2] if block_start >= 2 else ""
                if any("#" in line for line in own) or _is_comment(above):
                    continue
                found[stmt.lineno] = module
    return sorted(found.items())


def _package_files() -> list[Path]:
    return sorted(p for pkg in FIRST_PARTY for p in (ROOT / pkg).rglob("*.py"))


def test_every_function_level_first_party_import_has_a_reason() -> None:
    offenders = []
    seen_known = set()
    for path in _package_files():
        rel = path.relative_to(ROOT).as_posix()
        for line, module in unexplained_imports(path):
            if (rel, module.split(".")[0]) in KNOWN:
                seen_known.add((rel, module.split(".")[0]))
                continue
            offenders.append(f"{rel}:{line}: import of {module} inside a function, no reason comment")
    assert not offenders, "\n".join(offenders)
    assert seen_known == KNOWN, f"fixed, remove from KNOWN: {sorted(KNOWN - seen_known)}"


def test_the_check_sees_a_bare_lazy_import_and_accepts_a_reason(tmp_path: Path) -> None:
    bare = tmp_path / "bare.py"
    bare.write_text("def f():\n    x = 1\n    from fleetkit.spec import RegionStackSpec\n    return x\n")
    assert unexplained_imports(bare) == [(3, "fleetkit.spec")]
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(
        "def f():\n"
        "    # reason: heavy SDK only this command needs\n"
        "    import json\n"
        "    from fleetkit.spec import RegionStackSpec\n"
        "    from mesh import topology  # optional\n"
        "    if True:\n"
        "        from components import cluster\n"
        "    return 1\n"
    )
    assert unexplained_imports(reasoned) == [(7, "components")]
    outside = tmp_path / "outside.py"
    outside.write_text("from fleetkit import spec\n\ndef f():\n    import json\n    return json\n")
    assert unexplained_imports(outside) == []
