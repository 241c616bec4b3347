"""What every ``fleetkit`` command shares: the consoles, finding the project, and failing cleanly.

Lives below the commands (``fleetkit.cli``, ``fleetkit.review.command``, ``fleetkit.lint.command``) so they
import it rather than each other (as fastapi-cli keeps its console in ``utils/cli.py``). Expected
errors are printed here as bullets with exit code 2 — never a traceback.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from fleetkit.errors import EXIT_USAGE, Issue, SpecError

# The options every command spells the same way (typer's ``Annotated`` types), shared by the CLI
# and the tools' own commands so a flag reads and helps alike everywhere.
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        metavar="DIR",
        help="Project directory (holds Pulumi.yaml and stacks/). Default: found from the current directory.",
    ),
]
StackOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--stack",
        "-s",
        metavar="STACK",
        help="Stack to work on (repeatable). Default: every stack in stacks/.",
    ),
]
OutputFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report to this file (replaced whole) instead of stdout; `-` is stdout.",
    ),
]

# piped output (CI logs, files) gets a fixed, wide layout instead of 80 columns
err_console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out_console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def find_root(root: Path | None) -> Path:
    """The project directory: ``--root`` (must hold Pulumi.yaml), else found upwards from the cwd."""
    if root is not None:
        why = (
            "no such directory"
            if not root.exists()
            else "is a file; give the project directory (it holds Pulumi.yaml and stacks/)"
            if not root.is_dir()
            else "no Pulumi.yaml in that directory"
            if not (root / "Pulumi.yaml").is_file()
            else None
        )
        if why:
            raise SpecError([Issue.at("--root", str(root), "cli.not-a-project", why, str(root))])
        return root.resolve()
    here = Path.cwd().resolve()
    for cand in (here, *here.parents):
        if (cand / "Pulumi.yaml").exists() and (cand / "stacks").is_dir():
            return cand
    raise SpecError(
        [
            Issue.at(
                "--root",
                str(here),
                "cli.not-a-project",
                "not inside a fleetkit project (no Pulumi.yaml with a stacks/ directory found upwards)",
            )
        ]
    )


def fail(err: SpecError) -> NoReturn:
    """Print every problem of ``err`` as a bullet and exit with code 2."""
    err_console.print(err.render(), markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


# --------------------------------------------------------------------------- flag values
# Flags whose values need checking are declared as text and checked here, together with the
# command's other inputs, so every mistake on a command line is reported at once (the parser
# underneath typer stops at the first value it cannot convert, and does not show that value).


def int_flag(
    flag: str, text: str | None, problems: list[Issue], minimum: int = 1, rule: str = "cli.bad-value"
) -> int | None:
    """``text`` as a whole number of at least ``minimum``; None (and a problem) otherwise."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        problems.append(Issue.at(flag, text, rule, "expected a whole number", text))
        return None
    if value < minimum:
        problems.append(Issue.at(flag, text, rule, f"must be {minimum} or more", value))
        return None
    return value


def float_flag(flag: str, text: str, problems: list[Issue], minimum: float = 0.0) -> float:
    """``text`` as a finite number of at least ``minimum``; ``minimum`` (and a problem) otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        problems.append(Issue.at(flag, text, "cli.bad-value", "expected a number", text))
        return minimum
    if not math.isfinite(value) or value < minimum:
        problems.append(
            Issue.at(flag, text, "cli.bad-value", f"expected a finite number ≥ {minimum:g}", text)
        )
        return minimum
    return value


def choice_flag(flag: str, text: str, choices: Sequence[str], problems: list[Issue]) -> str | None:
    """``text`` (any case) as one of ``choices``; None (and a problem naming the choices) otherwise."""
    value = text.strip().lower()
    if value in choices:
        return value
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    problems.append(
        Issue.at(flag, text, "cli.bad-choice", f"expected one of {', '.join(choices)}{hint}", text)
    )
    return None


# --------------------------------------------------------------------------- parser errors
# What the parser itself rejects (an unknown command or option, a missing argument, an option without
# its value) is reported like every other mistake: a bullet with the flag, the rule and the bad value,
# exit code 2, then where the help is. The parser classes come from typer (typer 0.29 vendors click as
# typer._click; earlier versions use click), so they are recognised by name and attributes.


def _usage_issue(err: Exception, command: str) -> Issue:
    kind = type(err).__name__
    message = str(getattr(err, "message", "") or err)
    if kind == "NoSuchOption":
        opt = str(getattr(err, "option_name", ""))
        known = sorted(getattr(err, "possibilities", None) or [])
        close = difflib.get_close_matches(opt, known, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]}?" if close else ""
        return Issue.at(opt, "", "cli.unknown-option", f"No such option for `{command}`{hint}", opt)
    param = getattr(err, "param", None)
    name = ""
    if param is not None:
        opts = [o for o in getattr(param, "opts", None) or [] if o.startswith("-")]
        name = opts[0] if opts else str(getattr(param, "metavar", None) or getattr(param, "name", "")).upper()
    if kind == "MissingParameter":
        return Issue.at(name or command, "", "cli.missing", f"missing: `{command}` needs it")
    if kind == "BadOptionUsage":
        opt = str(getattr(err, "option_name", ""))
        return Issue.at(opt, "", "cli.missing-value", message.rstrip("."))
    if kind == "BadParameter":
        return Issue.at(
            name or command, "", "cli.bad-value", message.removeprefix("Value error, ").rstrip(".")
        )
    if message.startswith("No such command"):
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        hint = message.partition(". ")[2].rstrip(".?")
        text = f"no such command of `{command}`" + (f"; {hint[0].lower()}{hint[1:]}?" if hint else "")
        return Issue.at(command, "", "cli.unknown-command", text, name)
    if message.startswith("Got unexpected extra argument"):
        extra = message.rpartition("(")[2].rstrip(")")
        return Issue.at(
            command, "", "cli.extra-argument", "takes no such argument (a value without its flag?)", extra
        )
    return Issue.at(command, "", "cli.usage", message)


class FleetkitGroup(TyperGroup):
    """The ``fleetkit`` command group: parser errors are reported as located issues (exit 2)."""

    def main(
        self, args: Sequence[str] | None = None, prog_name: str | None = None, *rest: Any, **extra: Any
    ) -> Any:
        if not extra.get("standalone_mode", True) or rest:
            return super().main(args, prog_name, *rest, **extra)
        extra["standalone_mode"] = False
        try:
            code = super().main(args, prog_name or "fleetkit", **extra)
        except Exception as err:
            if type(err).__name__ == "Abort":
                err_console.print("aborted; no output was changed", markup=False)
                sys.exit(1)
            if getattr(err, "exit_code", None) != EXIT_USAGE or not hasattr(err, "format_message"):
                raise
            ctx = getattr(err, "ctx", None)
            command = getattr(ctx, "command_path", "") or "fleetkit"
            given = list(sys.argv[1:] if args is None else args)
            sub = next((a for a in given if a in self.commands), None)
            if command == "fleetkit" and sub is not None:  # an error raised before the command's own parsing
                command = f"fleetkit {sub}"
            if type(err).__name__ == "NoArgsIsHelpError":
                err_console.print(err.format_message(), markup=False, highlight=False)
            else:
                err_console.print(
                    SpecError([_usage_issue(err, command)]).render(), markup=False, soft_wrap=True
                )
                err_console.print(f"see `{command} --help`", markup=False)
            sys.exit(EXIT_USAGE)
        if code == 130:
            err_console.print("interrupted", markup=False)
        sys.exit(code if isinstance(code, int) else 0)
