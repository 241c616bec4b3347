"""The typed ``vllm serve`` arguments and the loader-facing model checks."""

from __future__ import annotations

import pytest
from model_fixtures import ROOT, spec_of, with_model
from pydantic import ValidationError

from fleetkit.engine_args import (
    RULE_DUPLICATE,
    RULE_DUPLICATE_TYPED,
    RULE_POSITIONAL,
    RULE_SECRET,
    EngineArgs,
    extra_args_issues,
    normalize_flag,
)
from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.model_checks import RULE_GPUS_PER_POD, check_models
from fleetkit.resolve import resolve


def engine(**changes) -> EngineArgs:
    spec = (
        with_model(spec_of("aws-us-east-1"), "llama-3-8b", **changes) if changes else spec_of("aws-us-east-1")
    )
    return EngineArgs.from_spec(spec.models["llama-3-8b"], model_path="/models/b/p")


def test_argv_order_is_stable():
    assert engine().argv() == [
        "/models/b/p",
        "--served-model-name",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--tensor-parallel-size",
        "1",
        "--pipeline-parallel-size",
        "1",
        "--max-model-len",
        "8192",
        "--gpu-memory-utilization",
        "0.92",
        "--enable-prefix-caching",
        "--max-num-seqs",
        "256",
        "--dtype",
        "bfloat16",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]


def test_max_model_len_left_to_the_model_when_unset():
    assert "--max-model-len" not in engine(max_model_len=None).argv()


@pytest.mark.parametrize(
    "token",
    [
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--max_model_len=4096",
        "--gpu-memory-utilization",
        "--enable-prefix-caching",
        "--disable-prefix-caching",
        "--max-num-seqs",
        "--dtype",
        "--quantization",
        "-q",
        "--host",
        "--port=9000",
        "--served-model-name",
        "--model",
    ],
)
def test_extra_args_may_not_repeat_a_typed_flag(token):
    issues = extra_args_issues(["--seed", "1", token, "2"])
    assert [(i.path, i.rule) for i in issues] == [((2,), RULE_DUPLICATE_TYPED)]
    with pytest.raises(ValidationError, match="set that field instead"):
        engine(extra_args=[token, "2"])


def test_extra_args_reject_secrets_positionals_and_repeats():
    assert [i.rule for i in extra_args_issues(["--api-key", "s3cr3t"])] == [RULE_SECRET]
    assert [i.rule for i in extra_args_issues(["some/model", "--seed", "1"])] == [RULE_POSITIONAL]
    issues = extra_args_issues(["--seed", "1", "--seed=2"])
    assert [(i.path, i.rule) for i in issues] == [((2,), RULE_DUPLICATE)]


def test_extra_args_values_may_look_negative():
    assert extra_args_issues(["--seed", "-1", "--kv-cache-dtype", "fp8"]) == []


def test_normalize_flag():
    assert normalize_flag("--max_model_len=4096") == "--max-model-len"
    assert normalize_flag("-tp") == "-tp"


def test_check_models_reports_paths_rules_and_values():
    spec = with_model(
        spec_of("aws-us-east-1"),
        "llama-3-8b",
        extra_args=["--kv-cache-dtype", "fp8", "--tensor-parallel-size", "2", "--api-key", "x"],
    )
    issues = check_models(resolve(spec))
    assert [(i.path, i.rule, i.value) for i in issues] == [
        (("models", "llama-3-8b", "extra_args", 2), RULE_DUPLICATE_TYPED, "--tensor-parallel-size"),
        (("models", "llama-3-8b", "extra_args", 4), RULE_SECRET, "--api-key"),
    ]
    assert check_models(resolve(spec_of("aws-us-east-1"))) == []


def test_check_models_gpus_per_pod_with_pipeline_parallel():
    # g6e.12xlarge has 4 GPUs: tp 4 x pp 2 does not fit one node
    spec = with_model(spec_of("aws-us-east-1"), "llama-3-70b", pipeline_parallel=2)
    issues = check_models(resolve(spec))
    assert [(i.path, i.rule) for i in issues] == [
        (("models", "llama-3-70b", "pipeline_parallel"), RULE_GPUS_PER_POD)
    ]
    assert "8 GPUs" in issues[0].message
    ok = with_model(spec_of("aws-us-east-1"), "llama-3-70b", tensor_parallel=2, pipeline_parallel=2)
    assert check_models(resolve(ok)) == []


def test_served_names_unique():
    args = EngineArgs.from_spec(spec_of("aws-us-east-1").models["llama-3-8b"], model_path="/m")
    with pytest.raises(ValidationError, match="unique"):
        EngineArgs(**{**args.model_dump(), "served_model_names": ["x", "x"]})


def test_loader_reports_engine_arg_problems_with_their_source():
    with pytest.raises(SpecError) as err:
        load_fleet(
            ROOT,
            only=["aws-us-east-1"],
            overrides=["models.llama-3-8b.extra_args=[--kv-cache-dtype, fp8, --max_model_len=4096]"],
        )
    rows = [(p.file, p.where, p.rule) for p in err.value.problems]
    assert rows == [("--set", "models.llama-3-8b.extra_args[2]", RULE_DUPLICATE_TYPED)]
