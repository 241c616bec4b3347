"""The ``fleetkit lint`` command (registered on the main CLI; also runnable as ``python -m fleetkit.lint.command``)."""

from __future__ import annotations

import difflib
import shutil
import sys
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from fleetkit.console import OutputFileOpt, choice_flag, fail
from fleetkit.errors import Issue, SpecError, format_path
from fleetkit.lint.documents import load_paths
from fleetkit.lint.engine import exit_code, lint_documents
from fleetkit.lint.formats import render_json, render_sarif, render_table, summary
from fleetkit.lint.model import RULES, LintConfig, rule_for
from fleetkit.output import check_output_file, write_file

#: the flag each command-line setting comes from (its problems are reported against the flag)
FLAGS = {
    "min_timeout": "--min-timeout",
    "min_per_try_timeout": "--min-per-try-timeout",
    "disable": "--disable",
}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"


_HELP = """
Lint Kubernetes, Istio and KEDA manifests (any YAML, not only what fleetkit renders).

Every object is validated against its schema (Istio 1.30, KEDA 2.20, prometheus-operator, Gateway API,
Kubernetes core kinds; strict: unknown fields are errors), then all objects are analysed together: routes to
undefined subsets, failover without outlier detection, retries that replay LLM generations, timeouts and
connection pools too tight for generation, hosts that cannot resolve across clusters, consistent hashing that
cannot hold, mTLS conflicts, autoscalers on the wrong signal or on metrics vLLM removed, deprecated fields and
apiVersions.

Suppress a finding on one object with an annotation that gives the reason:
fleetkit.dev/lint-ignore: "FK105: backend is idempotent; FK102: spare subset for rollbacks"

Exit codes: 0 clean (warnings allowed), 1 error findings, 2 unusable input. Rules: runbooks/lint.md.
"""
# typer keeps single newlines; reflow each paragraph onto one line.
HELP = "\n\n".join(" ".join(p.split()) for p in _HELP.strip().split("\n\n"))


def _version() -> str:
    try:
        return metadata.version("fleetkit")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _config_from_file(path: Path) -> dict[str, Any]:
    name = path.as_posix()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError([Issue.at(name, "", "config-file", f"cannot read lint config: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Issue.at(name, "", "yaml-syntax", f"invalid YAML: {exc}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(
            [Issue.at(name, "", "config-file", "lint config must be a mapping of LintConfig fields")]
        )
    return data


def build_config(
    config_file: Path | None, overrides: dict[str, Any], source: str = "(command line)"
) -> LintConfig:
    """Defaults < config file < command-line flags. Invalid values become SpecError problems."""
    data: dict[str, Any] = _config_from_file(config_file) if config_file else {}
    origin = {key: config_file.as_posix() if config_file else source for key in data}
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
            origin[key] = FLAGS.get(key, source)
    try:
        return LintConfig(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            key = str(loc[0]) if loc else ""
            file = origin.get(key, source)
            # a flag's problem is the flag's value; a config file's is at its key in the file
            path = "" if file in FLAGS.values() else format_path(loc)
            message = err.get("msg", "invalid value").removeprefix("Value error, ")
            problems.append(Issue.at(file, path, "lint-config", message, err.get("input")))
        raise SpecError(problems) from None


def _known_rules(names: list[str], problems: list[Issue]) -> set[str]:
    """The ``--disable`` names that are rules; each unknown one is a problem with the closest rule."""
    known: set[str] = set()
    for name in names:
        if rule_for(name) is not None:
            known.add(name)
            continue
        slugs = [*RULES, *(r.slug for r in RULES.values())]
        close = difflib.get_close_matches(name.strip(), slugs, n=1) or difflib.get_close_matches(
            name.strip().upper(), list(RULES), n=1
        )
        hint = f"; did you mean {close[0]}?" if close else " (rules: runbooks/lint.md)"
        problems.append(Issue.at("--disable", name, "lint.unknown-rule", f"no such rule{hint}", name))
    return known


def lint_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE_OR_DIR...",
            help="YAML files, directories searched for `*.yaml` and `*.yml`, or `-` for standard input.",
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|sarif",
            help="table (people), json (scripts), sarif (code scanning).",
        ),
    ] = OutputFormat.table.value,
    output: OutputFileOpt = None,
    min_timeout: Annotated[
        str | None,
        typer.Option(
            "--min-timeout", help="Smallest acceptable route timeout for LLM generation (default 60s)."
        ),
    ] = None,
    min_per_try_timeout: Annotated[
        str | None,
        typer.Option("--min-per-try-timeout", help="Smallest acceptable perTryTimeout (default 30s)."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="YAML file with LintConfig fields (thresholds, disable, severity, ...)."
        ),
    ] = None,
    disable: Annotated[
        list[str] | None, typer.Option("--disable", help="Rule id or slug to skip (repeatable).")
    ] = None,
    no_schema: Annotated[
        bool,
        typer.Option("--no-schema", help="Skip schema validation (FK001); cross-object checks still run."),
    ] = False,
) -> None:
    # every unusable input is reported at once, before anything is linted: flags, config, output, files
    problems: list[Issue] = []
    chosen = choice_flag("--format", output_format, [f.value for f in OutputFormat], problems)
    fmt = OutputFormat(chosen) if chosen else OutputFormat.table
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout
    if output is not None:
        try:  # the report may not overwrite a file it lints
            check_output_file(output, "--output", [*paths, *([config_file] if config_file else [])])
        except SpecError as err:
            problems += err.problems
    overrides: dict[str, Any] = {
        "min_timeout": min_timeout,
        "min_per_try_timeout": min_per_try_timeout,
        "schema_validation": False if no_schema else None,
    }
    if disable:
        overrides["disable"] = _known_rules(disable, problems)
    config: LintConfig | None = None
    try:
        config = build_config(config_file, overrides)
    except SpecError as err:
        problems += err.problems
    try:
        docs = load_paths(paths)
    except SpecError as err:
        problems += err.problems
    if problems or config is None:
        fail(SpecError(problems))
    notes: list[str] = []
    findings = lint_documents(docs, config, notes)

    if fmt is OutputFormat.json:
        report = render_json(findings)
    elif fmt is OutputFormat.sarif:
        report = render_sarif(findings, _version(), notes)
    else:
        tty = output is None and sys.stdout.isatty()
        width = max(100, shutil.get_terminal_size().columns) if tty else None
        report = render_table(findings, len(docs), width=width, color=tty, notes=notes)
    if output is not None:
        try:
            write_file(output, report)
        except OSError as exc:
            fail(SpecError([Issue.at("--output", str(output), "output.write-failed",
                                     f"cannot write the report: {exc.strerror or exc}", str(output))]))  # fmt: skip
        typer.echo(f"{summary(findings, len(docs))}; report written to {output}", err=True)
    else:
        sys.stdout.write(report)
        sys.stdout.flush()

    raise typer.Exit(exit_code(findings))


lint_command.__doc__ = HELP


def main() -> None:
    """Entry point for ``python -m fleetkit.lint.command`` (the kit's CLI registers ``lint_command`` itself)."""
    typer.run(lint_command)


if __name__ == "__main__":
    main()
