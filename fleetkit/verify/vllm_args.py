"""``vllm serve`` command lines checked against vLLM's own argument parser, as a committed table.

``vllm-flags.json`` beside this module is generated from vLLM's parser by
``images/vllm/gen_vllm_flags.py`` (run by hand: vLLM is ~9.5 GB) and records, per option string,
whether it takes a value and its choices. The rules are argparse's
(https://docs.python.org/3/library/argparse.html) with vLLM's ``FlexibleArgumentParser`` additions
(``--flag_name`` is ``--flag-name``; ``--flag=value``; ``--config-json.key value`` sets one key of a
JSON-valued option):

* an option string the parser does not define is an error, with the closest known flags
  (did-you-mean). argparse would also accept a unique *abbreviation*; the kit does not, so a
  reviewed command line names every flag in full;
* an option that takes a value (``nargs`` ``None``, ``+`` or a number) must be followed by one (a
  token that is not itself a flag, or ``=value``); a flag that takes none must not get ``=value``;
* a value of an option with ``choices`` must be one of them.

:func:`check_args` is used twice: on the spec's ``extra_args`` by the loader (a spec error, exit 2,
before anything renders — :mod:`fleetkit.model_checks`) and on every rendered container that runs
``vllm serve`` (the ``vLLM parser`` verdict).
"""

from __future__ import annotations

import difflib
import functools
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fleetkit.issue import Issue
from fleetkit.verify import Verdict, finding

TABLE_FILE = Path(__file__).resolve().parent / "vllm-flags.json"

RULE_UNKNOWN = "model.engine-arg-unknown"
RULE_VALUE = "model.engine-arg-value"
RULE_CHOICE = "model.engine-arg-choice"


def arg_issue(index: int, rule: str, message: str, value: str) -> Issue:
    """A problem with one token of an argv: its path is the token's index in the list checked."""
    return Issue((index,), rule, message, value)


@functools.cache
def table() -> dict[str, Any]:
    return json.loads(TABLE_FILE.read_text(encoding="utf-8"))


def version() -> str:
    return str(table()["vllm_version"])


def _is_flag(token: str) -> bool:
    # "-1" or "-0.5" are values, not flags
    return token.startswith("-") and token != "-" and not token.lstrip("-").replace(".", "", 1).isdigit()


def _name(token: str) -> tuple[str, str | None]:
    """``--max_model_len=4096`` -> (``--max-model-len``, ``"4096"``); ``--x.y`` -> (``--x``, None)."""
    name, _, value = token.partition("=")
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
        name = name.split(".", 1)[0]
    return name, (value if "=" in token else None)


def suggest(flag: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(flag, list(table()["flags"]), n=n, cutoff=0.6)


def check_args(args: list[str], *, positional: bool = True) -> list[Issue]:
    """Every problem vLLM's parser would have with ``args`` (the tokens after ``vllm serve``).

    ``positional``: the first token may be the model (``vllm serve MODEL``); ``extra_args`` have none.
    """
    flags: Mapping[str, Any] = table()["flags"]
    out: list[Issue] = []
    i = 1 if positional and args and not _is_flag(args[0]) else 0
    while i < len(args):
        token = args[i]
        if not _is_flag(token):
            out.append(
                arg_issue(
                    i,
                    RULE_VALUE,
                    "a value without a flag before it (vLLM takes one positional, the model, first)",
                    token,
                )
            )
            i += 1
            continue
        name, inline = _name(token)
        spec = flags.get(name)
        if spec is None:
            near = suggest(name)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            out.append(arg_issue(i, RULE_UNKNOWN, f"vLLM {version()} has no flag {name}{hint}", token))
            i += 1
            while i < len(args) and not _is_flag(args[i]):  # its values belong to it
                i += 1
            continue
        nargs = spec["nargs"]
        values: list[str] = []
        if inline is not None:
            values = [inline]
            if nargs == 0:
                out.append(arg_issue(i, RULE_VALUE, f"{name} takes no value", token))
            i += 1
        else:
            i += 1
            want = {None: 1, "?": 1, "*": None, "+": None}.get(nargs, nargs) if nargs != 0 else 0
            while i < len(args) and not _is_flag(args[i]) and (want is None or len(values) < want):
                values.append(args[i])
                i += 1
            if (
                nargs in (None, "+")
                and not values
                or isinstance(nargs, int)
                and nargs
                and len(values) < nargs
            ):
                out.append(arg_issue(i - 1, RULE_VALUE, f"{name} needs a value", token))
        choices = spec.get("choices")
        if choices:
            for v in values:
                if v not in choices:
                    near = difflib.get_close_matches(v, choices, n=1)
                    hint = f"; did you mean {near[0]!r}?" if near else ""
                    out.append(
                        arg_issue(i - 1, RULE_CHOICE, f"{name} must be one of {', '.join(choices)}{hint}", v)
                    )
    return out


def serve_args(container: Mapping[str, Any]) -> list[str] | None:
    """The tokens after ``vllm serve`` in a container's command + args, or None when it runs no vLLM."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    for i in range(len(argv) - 1):
        if argv[i].rsplit("/", 1)[-1] == "vllm" and argv[i + 1] == "serve":
            return argv[i + 2 :]
    return None


def _containers(obj: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    spec = obj.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec") or {}) if "template" in spec else spec
    for field in ("initContainers", "containers"):
        for i, c in enumerate(pod.get(field) or []):
            yield f"spec.template.spec.{field}[{i}]", c


def verify(manifests: Iterable[Mapping[str, Any]]) -> Verdict:
    started = time.perf_counter()
    findings: list[Issue] = []
    lines = 0
    for obj in manifests:
        if obj.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Job"):
            continue
        md = obj.get("metadata") or {}
        subject = f"{obj.get('kind')} {md.get('namespace') or '-'}/{md.get('name')}"
        for path, container in _containers(obj):
            args = serve_args(container)
            if args is None:
                continue
            lines += 1
            findings += [
                finding(subject, f"{path}.args ({p.path[0]})", p.rule, p.message, p.value)
                for p in check_args(args)
            ]
    seconds = time.perf_counter() - started
    label = f"vLLM {version()} parser"
    if findings:
        return Verdict(
            label, "fail", f"{len(findings)} problem(s) in {lines} command line(s)", findings, seconds, lines
        )
    if not lines:
        return Verdict(label, "skipped", "no vllm serve command lines", [], seconds)
    return Verdict(label, "pass", f"{lines} command line(s)", [], seconds, lines)
