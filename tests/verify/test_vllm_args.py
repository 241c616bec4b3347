"""vllm serve command lines against vLLM 0.33.0's own parser (the committed flag table)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from fleetkit import images
from fleetkit.engine_args import SECRET_FLAGS, extra_args_issues
from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.verify import finding_line, vllm_args
from policies.crossguard.rules import VLLM_SECRET_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def test_the_table_is_from_the_vllm_version_the_image_runs() -> None:
    table = vllm_args.table()
    assert table["vllm_version"] == images.VLLM_VERSION
    assert "make_arg_parser" in table["source"] and len(table["flags"]) >= 400
    dockerfile = (ROOT / "images" / "vllm" / "Dockerfile").read_text()
    assert re.search(r"^FROM vllm/vllm-openai:v(\S+)$", dockerfile, re.M).group(1) == table["vllm_version"]


def test_one_list_of_secret_bearing_flags_matching_the_parser() -> None:
    flags = vllm_args.table()["flags"]
    credential_like = {f for f in flags if re.search(r"-(api-key|token|password|secret)$", f)}
    assert set(VLLM_SECRET_FLAGS) == credential_like == SECRET_FLAGS


def test_every_rendered_vllm_command_line_parses(demo_preview) -> None:
    lines = 0
    for name, res in demo_preview.items():
        verdict = vllm_args.verify(res.manifests())
        assert verdict.status in ("pass", "skipped"), (name, [finding_line(f) for f in verdict.findings])
        lines += verdict.count
    assert lines >= 4


def test_a_misspelt_flag_in_a_rendered_command_line_fails(demo_preview) -> None:
    objs = copy.deepcopy(demo_preview["aws-us-east-1"].manifests())
    dep = next(
        o
        for o in objs
        if o["kind"] == "Deployment"
        and vllm_args.serve_args(o["spec"]["template"]["spec"]["containers"][0]) is not None
    )
    dep["spec"]["template"]["spec"]["containers"][0]["args"] += ["--enable-chunked-prefil", "--dtype", "bf16"]
    verdict = vllm_args.verify(objs)
    assert verdict.failed and [f.rule for f in verdict.findings] == [
        vllm_args.RULE_UNKNOWN,
        vllm_args.RULE_CHOICE,
    ]
    assert "did you mean --enable-chunked-prefill" in verdict.findings[0].message


@pytest.mark.parametrize(
    ("args", "rule", "needle"),
    [
        (["--max-num-seq", "8"], vllm_args.RULE_UNKNOWN, "did you mean --max-num-seqs"),
        (["--max-num-batched-tokens"], vllm_args.RULE_VALUE, "needs a value"),
        (["--enforce-eager=true"], vllm_args.RULE_VALUE, "takes no value"),
        (["--dtype", "bf16"], vllm_args.RULE_CHOICE, "must be one of"),
        (["--swap-spac", "4"], vllm_args.RULE_UNKNOWN, "has no flag --swap-spac"),
    ],
)
def test_parser_rules(args: list[str], rule: str, needle: str) -> None:
    [problem] = vllm_args.check_args(args, positional=False)
    assert problem.rule == rule and needle in problem.message


@pytest.mark.parametrize(
    "args",
    [
        ["--enforce-eager"],
        ["--max_num_batched_tokens=8192"],
        ["--compilation-config.mode", "3"],
        ["--served-model-name", "a", "b", "--seed", "-1"],
        ["--disable-prefix-caching"],
    ],
)
def test_what_vllm_accepts_passes(args: list[str]) -> None:
    assert vllm_args.check_args(args, positional=False) == []


def test_extra_args_are_checked_before_rendering(tmp_project: Path) -> None:
    path = tmp_project / "stacks" / "fleet.yaml"
    text = path.read_text()
    text = text.replace(
        "      dtype: bfloat16\n", "      dtype: bfloat16\n      extra_args: [--enable-chunked-prefil]\n", 1
    )
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_fleet(tmp_project)
    [problem] = [p for p in err.value.problems if p.rule == vllm_args.RULE_UNKNOWN]
    assert problem.file == "stacks/fleet.yaml" and problem.where.endswith("extra_args[0]")
    assert "did you mean --enable-chunked-prefill" in problem.message


def test_extra_args_issues_report_each_problem_once() -> None:
    issues = extra_args_issues(["8", "--max-num-seq", "--tensor-parallel-size", "2"])
    assert [(i.path, i.rule) for i in issues] == [
        ((0,), "model.engine-arg-positional"),
        ((1,), vllm_args.RULE_UNKNOWN),
        ((2,), "model.engine-arg-typed"),
    ]
