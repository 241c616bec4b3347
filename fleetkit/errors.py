"""Expected errors: user mistakes reported as a list of problems, all at once.

Two stages of one mistake: a check finds an :class:`Issue` — a structured path in the merged stack
document (a tuple such as ``("models", "llama-3-70b", "tensor_parallel")``), the rule, the message and
the bad value. The loader's provenance locates it once, to the file (or ``--set`` flag) that set the
value, giving a :class:`Problem`. Nothing builds a dotted path string and parses it back.

Every problem names the file, the path inside the document, the rule that was broken and the bad
value. Expected errors are raised as :class:`SpecError` anywhere in the kit and caught only at the
CLI boundary (``fleetkit.cli``), which prints them as bullets and exits with code 2 — never a
traceback. Unexpected errors are left alone so they keep their traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Exit code for unusable input (bad stack file, bad policy, bad flag).
EXIT_USAGE = 2


def format_path(parts: Iterable[Any]) -> str:
    """Render a document path such as ``models.llama-8b.replicas.max`` or ``routes[2].weight``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


def short_value(value: Any, limit: int = 80) -> str:
    """A one-line, bounded representation of a bad value for messages."""
    if value is _MISSING:
        return "(missing)"
    text = repr(value) if not isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "(missing)"


_MISSING = _Missing()
MISSING: Any = _MISSING


class _Secret:
    """Stands in for a secret value in a problem: the value itself is never shown or written."""

    def __repr__(self) -> str:
        return "[secret]"


#: The ``value`` of a problem whose bad value is a secret (rendered ``(got [secret])``).
SECRET_VALUE: Any = _Secret()


@dataclass(frozen=True)
class Issue:
    """A mistake found by a check, not yet located to a file: ``path`` is relative to the stack spec."""

    path: tuple[Any, ...]
    rule: str
    message: str
    value: Any = field(default=MISSING, compare=False)

    def under(self, *prefix: Any) -> Issue:
        """The same issue with its path below ``prefix`` (a check that ran on a sub-document)."""
        return Issue((*prefix, *self.path), self.rule, self.message, self.value)


@dataclass(frozen=True, order=True)
class Problem:
    """One user mistake: where it is, which rule it breaks, and the offending value."""

    file: str
    path: str
    rule: str
    message: str
    value: Any = field(default=MISSING, compare=False)

    def render(self) -> str:
        loc = f"{self.file}: {self.path}" if self.path else self.file
        shown = "" if self.value is MISSING else f" (got {short_value(self.value)})"
        return f"{loc}: [{self.rule}] {self.message}{shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "value": None
            if self.value is MISSING
            else "[secret]"
            if self.value is SECRET_VALUE
            else self.value,
        }


class SpecError(Exception):
    """One or more user mistakes, reported together."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = sorted(
            set(problems), key=lambda p: (p.file, p.path, p.rule, p.message)
        )
        super().__init__("\n".join(p.render() for p in self.problems))

    def render(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found:"
        return "\n".join([head, *(f"  • {p.render()}" for p in self.problems)])


class ProblemCollector:
    """Collects problems while validating, then raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self, file: str, path: str | Iterable[Any], rule: str, message: str, value: Any = MISSING
    ) -> None:
        if not isinstance(path, str):
            path = format_path(path)
        self.problems.append(Problem(file=file, path=path, rule=rule, message=message, value=value))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise SpecError(self.problems)
