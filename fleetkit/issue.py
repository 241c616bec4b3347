"""The kit's one problem type: :class:`Issue` — a rule broken at a structured path, located to a file once.

Every tool reports with it: the loader and the spec checks, the serving policies (``policies/``), the
CrossGuard rules, the manifest linter, the real-tool verifiers, the engine checks and the traffic
simulator. A check returns an ``Issue`` whose ``path`` is a tuple in the document it looked at
(``("models", "llama-3-70b", "tensor_parallel")``, ``("spec", "http", 0, "route")``); the loader's
provenance locates it once (:meth:`Issue.located`), to the file or ``--set`` flag that wrote the value,
and rewrites the path in that file's own terms (``fleetkit:models.llama-3-70b.tensor_parallel``).
Nothing builds a dotted path string and parses it back.

What a tool adds on top stays with the tool, as a thin record that *contains* an ``Issue``: the linter's
fix text and ``istioctl`` code (``fleetkit.lint.model.Finding``), a CrossGuard verdict's resource
(``policies.crossguard.records.Violation``), a verifier's verdict (``fleetkit.verify.Verdict``). A record
that names the rule a *policy* (the CrossGuard records: ``Violation`` and the guardrails' ``GuardrailVerdict``)
forwards it with :class:`PolicyRecord`.

This module is a leaf: standard library only, and it imports nothing of the kit. That is why the pure
``policies/`` package may import it (the one exception in the import contract, ``pyproject.toml``), and
why the CrossGuard pack's own virtualenv — which holds only ``pulumi-policy`` — can load it from the
checkout (``fleetkit/__init__.py`` imports nothing either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


def format_path(parts: Iterable[Any]) -> str:
    """Render a document path such as ``models.llama-8b.replicas.max`` or ``routes[2].weight``."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):  # a YAML `on:` key is True, not [1]
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "(missing)"


_MISSING = _Missing()
#: The ``value`` of an issue about a value that is not there (nothing is shown).
MISSING: Any = _MISSING


class _Secret:
    """Stands in for a secret value in an issue: the value itself is never shown or written."""

    def __repr__(self) -> str:
        return "[secret]"


#: The ``value`` of an issue whose bad value is a secret (rendered ``(got [secret])``).
SECRET_VALUE: Any = _Secret()


def short_value(value: Any, limit: int = 80) -> str:
    """A one-line, bounded representation of a bad value for messages."""
    if value is _MISSING:
        return "(missing)"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_value(value: Any) -> Any:
    """The value as written to JSON: ``None`` when missing, ``"[secret]"`` for a secret."""
    if value is _MISSING:
        return None
    return "[secret]" if value is SECRET_VALUE else value


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (``path``, inside ``subject``, in ``file``), which rule, what is wrong, the value.

    ``path`` is a tuple of keys and list indexes. Before it is located it is relative to the document the
    check read (a stack spec, a manifest, the ``policies`` section…); :meth:`located` sets ``file`` and
    the path as written in that file. ``subject`` names the object the path is inside when it is not the
    whole document (``VirtualService/llm/llama``, a Pulumi resource, a request class); ``suppressed`` holds
    the reason when an annotation on that object suppresses the rule (reported, never counted).
    """

    path: tuple[Any, ...]
    rule: str
    message: str
    value: Any = field(default=MISSING, compare=False)
    severity: Severity = "error"
    subject: str = ""
    file: str = ""
    suppressed: str | None = None

    @classmethod
    def at(
        cls,
        file: str,
        path: str | Iterable[Any],
        rule: str,
        message: str,
        value: Any = MISSING,
        severity: Severity = "error",
    ) -> Issue:
        """An issue already located: in ``file`` (or a flag such as ``--set``), at ``path`` there.

        A string path is one opaque part (a flag's argument, a file-level position such as
        ``(document)``); ``""`` means the file itself.
        """
        parts = ((path,) if path else ()) if isinstance(path, str) else tuple(path)
        return cls(parts, rule, message, value, severity, file=file)

    def under(self, *prefix: Any) -> Issue:
        """The same issue with its path below ``prefix`` (a check that ran on a sub-document)."""
        return replace(self, path=(*prefix, *self.path))

    def located(self, file: str, path: tuple[Any, ...]) -> Issue:
        """The same issue, located: in ``file``, at ``path`` as written there."""
        return replace(self, file=file, path=path)

    @property
    def where(self) -> str:
        """The path as text (``models.x.replicas``, ``routes[2].weight``); ``""`` for the whole file."""
        return format_path(self.path) if self.path else ""

    @property
    def shown_value(self) -> str:
        """`` (got …)`` for the message, or ``""`` when there is no value to show."""
        return "" if self.value is _MISSING else f" (got {short_value(self.value)})"

    def render(self) -> str:
        """``file: path: [rule] message (got value)`` — the CLI's bullet text."""
        head = self.file or self.subject
        loc = f"{head}: {self.where}" if self.where else head
        return f"{loc}: [{self.rule}] {self.message}{self.shown_value}"

    def sort_key(self) -> tuple[str, str, str, str]:
        """How a list of located issues is shown: by file, path, rule, message."""
        return (self.file, self.where, self.rule, self.message)

    def __lt__(self, other: Issue) -> bool:
        """Issues sort by where they are (file, object, path as text), then rule and message."""
        mine = (self.file, self.subject, self.where, self.rule, self.message)
        return mine < (other.file, other.subject, other.where, other.rule, other.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a located issue (``--json`` problem lists)."""
        return {
            "file": self.file,
            "path": self.where,
            "rule": self.rule,
            "message": self.message,
            "value": plain_value(self.value),
        }


class PolicyRecord:
    """What a policy's verdict record forwards to the :class:`Issue` it contains (``self.issue``).

    The CrossGuard ``Violation`` (``policies/crossguard/records.py``) and the offline guardrails'
    ``GuardrailVerdict`` (``fleetkit/guardrails.py``) are frozen dataclasses with an ``issue`` field; both read the
    policy name, the message and a suppression's reason from it, through these properties.
    """

    issue: Issue

    @property
    def policy(self) -> str:
        """The policy's name: the issue's ``rule``."""
        return self.issue.rule

    @property
    def message(self) -> str:
        return self.issue.message

    @property
    def suppressed(self) -> str | None:
        """The justification from the ignore annotation, when the object suppresses this policy."""
        return self.issue.suppressed
