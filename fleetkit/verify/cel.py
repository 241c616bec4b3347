"""The CRDs' ``x-kubernetes-validations`` rules, evaluated on every rendered custom resource with a
real CEL engine (PyPI ``common-expression-language``, the Rust ``cel`` interpreter).

What the API server does, and so what this does
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules):

* a rule sits on a schema node and is evaluated once for every value at that node: ``self`` is that
  value (an object, a list, a map, a scalar); rules under ``items`` run per item, under
  ``additionalProperties`` per map value; absent optional fields are not evaluated;
* ``oldSelf`` is bound only on update. A *transition rule* (one that names ``oldSelf``) is not
  evaluated on create — everything the kit renders is a create, so those rules are counted as
  "transition rules (update only)", not as checked;
* a rule that evaluates to false fails with its ``message`` (or ``messageExpression``'s result, else
  "failed rule: <rule>"); an evaluation error also rejects the object.

Kubernetes adds CEL libraries the engine does not have. Those the pinned CRDs use are implemented
here after Kubernetes' definitions (https://kubernetes.io/docs/reference/using-api/cel/): ``isURL`` /
``url`` / ``getScheme`` (Go's ``url.ParseRequestURI``: an absolute URI or an absolute path), ``isIP``
(an IPv4 or IPv6 address, no zone), and the cel-go strings extension's ``substring`` and ``split``.
A rule that calls any other function the engine lacks is reported as **not checked**, never passed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

try:  # a dependency of the kit; without it the verdict says so instead of passing
    import cel as celengine
except ImportError:  # pragma: no cover - exercised only in a broken install
    celengine = None  # type: ignore[assignment]

from fleetkit.issue import Issue
from fleetkit.schema import crd_schema
from fleetkit.verify import Verdict, finding

RULE_FAILED = "cel.rule-failed"
RULE_ERROR = "cel.evaluation-error"
RULE_NOT_CHECKED = "cel.not-checked"


# --------------------------------------------------------------------------- Kubernetes CEL library
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_url(s: Any) -> bool:
    """Kubernetes ``isURL``: Go's ``url.ParseRequestURI`` succeeds (absolute URI or absolute path)."""
    if not isinstance(s, str) or not s or any(ord(c) < 0x21 or c == "\x7f" for c in s):
        return False
    if not _SCHEME.match(s):
        return s.startswith("/")
    try:
        parts = urlsplit(s)
        _ = parts.port  # an invalid port is a parse error in Go too
    except ValueError:
        return False
    if "%" in s and re.search(r"%(?![0-9A-Fa-f]{2})", s):
        return False
    return True


def url(s: Any) -> str:
    """Kubernetes ``url``: the URL, or an evaluation error when ``isURL`` is false."""
    if not is_url(s):
        raise ValueError(f"URL parse error during conversion from string: {s!r}")
    return str(s)


def get_scheme(u: Any) -> str:
    m = _SCHEME.match(str(u))
    return m.group(0)[:-1] if m else ""


def is_ip(s: Any) -> bool:
    """Kubernetes ``isIP``: an IPv4 or IPv6 address (no zone, no leading zeros)."""
    if not isinstance(s, str) or "%" in s:
        return False
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def substring(s: str, start: int, end: int | None = None) -> str:
    """cel-go strings extension: code-point indices, an error when out of range."""
    stop = len(s) if end is None else end
    if not 0 <= start <= stop <= len(s):
        raise ValueError(f"substring: index out of range: {start}, {end}")
    return s[start:stop]


def split(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    return s.split(sep) if n < 0 else s.split(sep, n - 1)


K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isURL": is_url,
    "url": url,
    "getScheme": get_scheme,
    "isIP": is_ip,
    "substring": substring,
    "split": split,
}

#: Functions the engine provides itself (CEL standard definitions and macros it implements)
ENGINE_FUNCTIONS = frozenset(
    {
        "has",
        "size",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "duration",
        "timestamp",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "dyn",
        "max",
        "min",
    }
)

_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def missing_functions(rule: str) -> list[str]:
    """Functions a rule calls that neither the engine nor :data:`K8S_FUNCTIONS` provide."""
    called = set(_CALL.findall(re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', rule)))
    return sorted(called - ENGINE_FUNCTIONS - set(K8S_FUNCTIONS))


@functools.cache
def _program(rule: str) -> Any:
    return celengine.compile(rule)


def evaluate(rule: str, value: Any) -> Any:
    """The result of one rule with ``self`` bound to ``value``."""
    ctx = celengine.Context(variables={"self": value}, functions=K8S_FUNCTIONS)
    return _program(rule).execute(ctx)


# --------------------------------------------------------------------------- walking objects
def _rules_at(
    schema: Mapping[str, Any], value: Any, path: str
) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(path, rule, self) for every rule that applies to ``value`` and its descendants."""
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule, value
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                yield from _rules_at(props[key], sub, f"{path}.{key}" if path else str(key))
            elif isinstance(extra, Mapping):
                yield from _rules_at(extra, sub, f"{path}[{key!r}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _rules_at(schema["items"], item, f"{path}[{i}]")


def check_object(obj: Mapping[str, Any]) -> tuple[list[Issue], dict[str, int]]:
    """(findings, counts: evaluated / transition / not_checked) for one object (no CRD: nothing)."""
    counts = {"evaluated": 0, "transition": 0, "not_checked": 0}
    schema = crd_schema(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if schema is None:
        return [], counts
    md = obj.get("metadata") or {}
    subject = f"{obj.get('kind')} {md.get('namespace') or '-'}/{md.get('name')}"
    findings: list[Issue] = []
    for path, rule, value in _rules_at(schema, dict(obj), ""):
        expr = str(rule.get("rule", ""))
        if re.search(r"\boldSelf\b", expr):
            counts["transition"] += 1
            continue
        missing = missing_functions(expr)
        if missing:
            counts["not_checked"] += 1
            findings.append(
                finding(
                    subject,
                    path,
                    RULE_NOT_CHECKED,
                    f"rule calls {', '.join(missing)}, which the CEL engine lacks: not checked",
                    expr,
                )
            )
            continue
        counts["evaluated"] += 1
        field = f"{path}{rule['fieldPath']}" if rule.get("fieldPath") else path
        try:
            ok = evaluate(expr, value)
        except (RuntimeError, TypeError, ValueError) as err:
            findings.append(finding(subject, field, RULE_ERROR, f"{err}", expr))
            continue
        if ok is not True:
            findings.append(finding(subject, field, RULE_FAILED, _message(rule, value), expr))
    return findings, counts


def _message(rule: Mapping[str, Any], value: Any) -> str:
    if rule.get("messageExpression"):
        try:
            return str(evaluate(str(rule["messageExpression"]), value))
        except (RuntimeError, TypeError, ValueError):
            pass
    return str(rule.get("message") or f"failed rule: {rule.get('rule')}")


def verify(manifests: Iterable[Mapping[str, Any]]) -> Verdict:
    started = time.perf_counter()
    if celengine is None:
        return Verdict(
            "CEL",
            "skipped",
            "CEL engine not installed (pip install common-expression-language): CRD rules NOT checked",
            [],
            0.0,
        )
    findings: list[Issue] = []
    totals = {"evaluated": 0, "transition": 0, "not_checked": 0}
    objects = 0
    for obj in manifests:
        got, counts = check_object(obj)
        if any(counts.values()):
            objects += 1
        findings += got
        for k, v in counts.items():
            totals[k] += v
    errors = [f for f in findings if f.rule != RULE_NOT_CHECKED]
    n = totals["evaluated"]
    summary = f"{n} rules on {objects} objects"
    extra = []
    if totals["transition"]:
        extra.append(f"{totals['transition']} transition rules (update only)")
    if totals["not_checked"]:
        extra.append(f"{totals['not_checked']} NOT checked")
    if extra:
        summary += f" ({', '.join(extra)})"
    seconds = time.perf_counter() - started
    if errors:
        return Verdict("CEL", "fail", f"{len(errors)} failed; {summary}", findings, seconds, n)
    if not n and not totals["not_checked"]:
        return Verdict("CEL", "skipped", "no CEL rules apply", findings, seconds)
    return Verdict("CEL", "pass", summary, findings, seconds, n)
