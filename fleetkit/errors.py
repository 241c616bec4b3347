"""Expected errors: user mistakes reported as a list of issues, all at once.

Two stages of one mistake: a check finds an :class:`~fleetkit.issue.Issue` — a structured path in the
merged stack document (a tuple such as ``("models", "llama-3-70b", "tensor_parallel")``), the rule, the
message and the bad value. The loader's provenance locates it once, to the file (or ``--set`` flag)
that set the value (:meth:`Issue.located`). Nothing builds a dotted path string and parses it back.

Every located issue names the file, the path inside the document, the rule that was broken and the bad
value. Expected errors are raised as :class:`SpecError` anywhere in the kit and caught only at the
CLI boundary (``fleetkit.cli``), which prints them as bullets and exits with code 2 — never a
traceback. Unexpected errors are left alone so they keep their traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetkit.issue import MISSING, SECRET_VALUE, Issue, format_path, plain_value, short_value

__all__ = [
    "EXIT_USAGE",
    "MISSING",
    "SECRET_VALUE",
    "Issue",
    "ProblemCollector",
    "SpecError",
    "format_path",
    "plain_value",
    "short_value",
]

#: Exit code for unusable input (bad stack file, bad policy, bad flag).
EXIT_USAGE = 2


class SpecError(Exception):
    """One or more user mistakes (located issues), reported together."""

    def __init__(self, problems: Iterable[Issue]):
        self.problems: list[Issue] = sorted(set(problems), key=Issue.sort_key)
        super().__init__("\n".join(p.render() for p in self.problems))

    def render(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found:"
        return "\n".join([head, *(f"  • {p.render()}" for p in self.problems)])


class ProblemCollector:
    """Collects located issues while validating, then raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[Issue] = []

    def add(
        self, file: str, path: str | Iterable[Any], rule: str, message: str, value: Any = MISSING
    ) -> None:
        self.problems.append(Issue.at(file, path, rule, message, value))

    def extend(self, problems: Iterable[Issue]) -> None:
        self.problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise SpecError(self.problems)
