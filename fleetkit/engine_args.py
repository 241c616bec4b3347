"""The ``vllm serve`` command line of a model, typed: the engine arguments the model component renders.

Every engine setting the spec has a field for is rendered from that field, explicitly (vLLM's own
defaults move between releases: ``--gpu-memory-utilization`` went from 0.9 to 0.92, prefix caching
is on by default). ``models.<name>.extra_args`` is the escape hatch for the rest and is appended
last; it may not set a flag the kit renders itself (two values for one setting, the last one
silently winning, is how a reviewed ``tensor_parallel: 4`` ends up serving with 2), may not pass
secrets on the command line, must start with a flag, and must be what vLLM's own parser accepts
(:mod:`fleetkit.verify.vllm_args`: a misspelt flag is an error with a did-you-mean here, not a
crash-looping pod on a GPU node).

GPU domain layer: pure, no engine, no credentials. The spec check over every model of a stack is
:func:`fleetkit.model_checks.check_models`.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from fleetkit.errors import Issue
from fleetkit.spec import ModelSpec
from fleetkit.verify.vllm_args import check_args
from policies.common import MODEL_PORT, StrictModel
from policies.crossguard.rules import VLLM_SECRET_FLAGS

#: Spec ``dtype`` values that are float types vLLM takes as ``--dtype``. The others (fp8, int8, int4)
#: describe quantized weights for sizing; vLLM reads the quantization from the checkpoint config
#: (or ``quantization``) and is given ``--dtype auto``.
FLOAT_DTYPES = frozenset({"auto", "bfloat16", "float16", "float32"})

#: Flags the kit renders from typed fields (normalised: dashes, no value) -> the field that owns it.
TYPED_FLAGS: dict[str, str] = {
    "--model": "the local weights path (weights_uri)",
    "--served-model-name": "served_name (one name per model; aliases are mapped at the edge)",
    "--scheduling-policy": "policies.qos (priority scheduling whenever QoS tiers exist)",
    "--otlp-traces-endpoint": "policies.telemetry.tracing (the kit's OpenTelemetry collector)",
    "--tensor-parallel-size": "tensor_parallel",
    "-tp": "tensor_parallel",
    "--pipeline-parallel-size": "pipeline_parallel",
    "-pp": "pipeline_parallel",
    "--max-model-len": "max_model_len",
    "--gpu-memory-utilization": "gpu_memory_utilization",
    "--enable-prefix-caching": "enable_prefix_caching",
    "--disable-prefix-caching": "enable_prefix_caching",
    "--max-num-seqs": "max_num_seqs",
    "--dtype": "dtype",
    "--quantization": "quantization",
    "-q": "quantization",
    "--host": "the kit (the server listens on 0.0.0.0)",
    "--port": f"the kit (the server listens on {MODEL_PORT}, the Service port)",
}

#: Flags whose value is a secret: a command line is visible to anyone who can read the pod spec. The
#: same list the CrossGuard rule uses (one list, in the standalone policy pack).
SECRET_FLAGS = frozenset(VLLM_SECRET_FLAGS)

RULE_DUPLICATE_TYPED = "model.engine-arg-typed"
RULE_DUPLICATE = "model.engine-arg-duplicate"
RULE_SECRET = "model.engine-arg-secret"
RULE_POSITIONAL = "model.engine-arg-positional"


def normalize_flag(token: str) -> str:
    """``--max_model_len=4096`` -> ``--max-model-len`` (vLLM accepts underscores and ``=value``)."""
    name = token.split("=", 1)[0]
    if name.startswith("--"):
        return "--" + name[2:].replace("_", "-")
    return name


def _is_flag(token: str) -> bool:
    # "-1" or "-0.5" are values, not flags
    return token.startswith("-") and not token.lstrip("-").replace(".", "", 1).isdigit() and token != "-"


def extra_args_issues(extra_args: list[str]) -> list[Issue]:
    """Every problem with an ``extra_args`` list; the path is ``(index,)`` of the offending token."""
    out: list[Issue] = []
    if extra_args and not _is_flag(extra_args[0]):
        out.append(
            Issue(
                (0,),
                RULE_POSITIONAL,
                "extra_args must start with a flag; the model path is set by the kit",
                extra_args[0],
            )
        )
    seen: dict[str, int] = {}
    for i, token in enumerate(extra_args):
        if not _is_flag(token):
            continue
        flag = normalize_flag(token)
        if flag in TYPED_FLAGS:
            out.append(
                Issue(
                    (i,),
                    RULE_DUPLICATE_TYPED,
                    f"{flag} is rendered from {TYPED_FLAGS[flag]}; set that field instead",
                    token,
                )
            )
        elif flag in SECRET_FLAGS:
            out.append(
                Issue(
                    (i,),
                    RULE_SECRET,
                    f"{flag} would put a secret in the pod spec; it is not supported as an extra arg",
                    token,
                )
            )
        elif flag in seen:
            out.append(
                Issue(
                    (i,),
                    RULE_DUPLICATE,
                    f"{flag} is given twice in extra_args (first at index {seen[flag]})",
                    token,
                )
            )
        else:
            seen[flag] = i
    reported = {issue.path[0] for issue in out}

    def owner(index: int) -> int:
        """The flag a token belongs to (itself, or the last flag before a value)."""
        while index > 0 and not _is_flag(extra_args[index]):
            index -= 1
        return index

    # vLLM's own parser (its flag table): unknown or misspelt flags with a did-you-mean, missing values,
    # choices; a flag already reported above is not reported again (nor are its values)
    out += [
        p
        for p in check_args(extra_args, positional=False)
        if p.path[0] not in reported and owner(p.path[0]) not in reported
    ]
    return sorted(out, key=lambda issue: issue.path[0])


class EngineArgs(StrictModel):
    """The arguments after ``vllm serve``, in the order they are rendered."""

    model_path: str = Field(min_length=1, description="local directory holding the weights")
    served_model_names: list[str] = Field(
        min_length=1, description="first name = the model_name metric label"
    )
    tensor_parallel_size: int = Field(ge=1)
    pipeline_parallel_size: int = Field(ge=1)
    max_model_len: int | None = Field(default=None, ge=128)
    gpu_memory_utilization: float = Field(gt=0, le=1)
    enable_prefix_caching: bool
    max_num_seqs: int = Field(ge=1)
    dtype: str
    quantization: str | None = None
    #: vLLM schedules by the request's ``priority`` (set at the edge from the verified tier)
    priority_scheduling: bool = False
    otlp_traces_endpoint: str | None = None
    host: str = "0.0.0.0"
    port: int = MODEL_PORT
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("served_model_names")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"served model names must be unique: {v}")
        return v

    @field_validator("extra_args")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        issues = extra_args_issues(v)
        if issues:
            raise ValueError("; ".join(f"extra_args[{i.path[0]}] {i.value!r}: {i.message}" for i in issues))
        return v

    @model_validator(mode="after")
    def _dtype(self) -> EngineArgs:
        if self.dtype not in FLOAT_DTYPES:
            raise ValueError(f"--dtype {self.dtype!r} is not one of {sorted(FLOAT_DTYPES)}")
        return self

    @classmethod
    def from_spec(
        cls,
        model: ModelSpec,
        *,
        model_path: str,
        priority_scheduling: bool = False,
        otlp_traces_endpoint: str | None = None,
    ) -> EngineArgs:
        return cls(
            model_path=model_path,
            served_model_names=[model.served_name],
            priority_scheduling=priority_scheduling,
            otlp_traces_endpoint=otlp_traces_endpoint,
            tensor_parallel_size=model.tensor_parallel,
            pipeline_parallel_size=model.pipeline_parallel,
            max_model_len=model.max_model_len,
            gpu_memory_utilization=model.gpu_memory_utilization,
            enable_prefix_caching=model.enable_prefix_caching,
            max_num_seqs=model.max_num_seqs,
            dtype=model.dtype if model.dtype in FLOAT_DTYPES else "auto",
            quantization=model.quantization,
            extra_args=list(model.extra_args),
        )

    def argv(self) -> list[str]:
        """``vllm serve`` arguments: the model path, every typed flag explicitly, then ``extra_args``."""
        args = [
            self.model_path,
            "--served-model-name",
            *self.served_model_names,
            "--tensor-parallel-size",
            str(self.tensor_parallel_size),
            "--pipeline-parallel-size",
            str(self.pipeline_parallel_size),
        ]
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        args += [
            "--gpu-memory-utilization",
            f"{self.gpu_memory_utilization:g}",
            # vLLM 0.33 has no --no-enable-prefix-caching (its parser table): the off switch is --disable-…
            "--enable-prefix-caching" if self.enable_prefix_caching else "--disable-prefix-caching",
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--dtype",
            self.dtype,
        ]
        if self.quantization is not None:
            args += ["--quantization", self.quantization]
        if self.priority_scheduling:
            args += ["--scheduling-policy", "priority"]
        if self.otlp_traces_endpoint is not None:
            args += ["--otlp-traces-endpoint", self.otlp_traces_endpoint]
        args += ["--host", self.host, "--port", str(self.port)]
        return args + list(self.extra_args)


# --------------------------------------------------------------------------- loader checks
