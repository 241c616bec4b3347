"""Write the flag table of ``vllm serve`` from vLLM's own argument parser (run by hand, not in CI).

The kit checks every rendered ``vllm serve`` command line (typed flags and ``extra_args``) against
this table (:mod:`fleetkit.verify.vllm_args`). A full vLLM install is ~9.5 GB, too big for CI, so the
table is generated once per vLLM version and committed:

    python3.11 -m venv ~/vllm-venv && ~/vllm-venv/bin/pip install vllm==0.33.0
    VLLM_TARGET_DEVICE=cpu ~/vllm-venv/bin/python images/vllm/gen_vllm_flags.py \
        > fleetkit/verify/vllm-flags.json

``VLLM_TARGET_DEVICE=cpu`` lets vLLM build its parser on a machine without a GPU (without it:
"Failed to infer device type"). The parser is the one ``vllm serve`` uses:
``vllm.entrypoints.common.cli_args.make_arg_parser`` applied to a ``FlexibleArgumentParser``
(``vllm.entrypoints.openai.cli_args`` no longer exists in 0.33). Bump ``fleetkit.images.VLLM_VERSION``
and regenerate together; ``tests/verify/test_vllm_args.py`` fails while they differ.

Output (JSON, sorted, deterministic): ``vllm_version``, ``allow_abbrev``, and per option string its
``dest``, ``nargs`` (argparse's: ``null`` = one value, ``0`` = none, ``"?"``, ``"*"``, ``"+"``, or a
number), ``takes_value`` and ``choices`` (as strings; ``null`` when free).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.common.cli_args import make_arg_parser

    try:  # its home moved between releases
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser  # type: ignore[no-redef]
    return make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))


def _nargs(action: argparse.Action) -> int | str | None:
    if action.nargs is None and isinstance(
        action,
        (argparse._StoreConstAction, argparse._CountAction, argparse._HelpAction, argparse._VersionAction),
    ):
        return 0
    return action.nargs  # type: ignore[return-value]


def table() -> dict[str, object]:
    import vllm

    parser = _parser()
    flags: dict[str, dict[str, object]] = {}
    positionals = []
    for action in parser._actions:
        if not action.option_strings:
            positionals.append(action.dest)
            continue
        nargs = _nargs(action)
        choices = sorted(str(c) for c in action.choices) if action.choices is not None else None
        for opt in action.option_strings:
            flags[opt] = {"dest": action.dest, "nargs": nargs, "takes_value": nargs != 0, "choices": choices}
    return {
        "vllm_version": vllm.__version__,
        "source": "vllm.entrypoints.common.cli_args.make_arg_parser(FlexibleArgumentParser())",
        "allow_abbrev": bool(parser.allow_abbrev),
        "positionals": positionals,
        "flags": dict(sorted(flags.items())),
    }


if __name__ == "__main__":
    json.dump(table(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
