"""The recording mock runtime on a tiny program: what it records, and its one handling of secrets."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from fleetkit.mocks.runtime import (
    SECRET,
    UNKNOWN,
    ProgramRun,
    RecordingMocks,
    is_secret,
    plain,
    public_strings,
    redact,
    run_program,
)
from fleetkit.preview import StackPreview


class _Box(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetkit:test:Box", name, None, opts)
        self.register_outputs({})


def _program() -> dict[str, Any]:
    box = _Box("box")
    ns = k8s.core.v1.Namespace(
        "ns", metadata={"name": "llm"}, opts=pulumi.ResourceOptions(parent=box, protect=True)
    )
    secret = k8s.core.v1.Secret(
        "creds",
        metadata={"name": "creds", "namespace": "llm"},
        string_data={"token": pulumi.Output.secret("s3cr3t"), "user": "me"},
        opts=pulumi.ResourceOptions(parent=box, depends_on=[ns], aliases=[pulumi.Alias(name="old-creds")]),
    )
    return {"namespace": ns.metadata.apply(lambda m: m["name"]), "token": secret.string_data}


def _run() -> ProgramRun:
    return run_program("s", _program, RecordingMocks("s"), preview=False)


def test_records_parent_dependencies_options_and_wrapped_secrets() -> None:
    run = _run()
    box = run.one("fleetkit:test:Box")
    ns = run.one("kubernetes:core/v1:Namespace")
    creds = run.one("kubernetes:core/v1:Secret")
    assert not box.custom and ns.custom and creds.custom
    assert ns.parent == creds.parent == box.urn
    assert ns.urn in creds.deps and ns.urn in run.depends_on(creds)
    assert ns.options == {"protect": True}
    assert creds.options["aliases"] == ["old-creds"]
    # one form for secrets: the SDK's envelope in the record (around the whole property that holds
    # one), every view derived from it
    data = creds.inputs["stringData"]
    assert is_secret(data) and plain(data) == {"token": "s3cr3t", "user": "me"}
    assert creds.plain_inputs["stringData"] == {"token": "s3cr3t", "user": "me"}
    assert "s3cr3t" not in public_strings(creds.inputs) and "creds" in public_strings(creds.inputs)
    assert creds.redacted().inputs["stringData"] == {"token": SECRET, "user": SECRET}
    assert run.kube("Secret", "creds")["stringData"]["token"] == "s3cr3t"


def test_exports_and_their_secretness() -> None:
    run = _run()
    assert run.outputs["namespace"] == "llm"
    assert run.secret_outputs == {"token"}  # a map holding a secret is secret as a whole
    view = StackPreview("s", [r.redacted() for r in run.resources], run.outputs, run.secret_outputs)
    assert view.public_outputs() == {"namespace": "llm", "token": SECRET}


def test_provider_calls_are_recorded_and_an_unknown_one_is_an_error() -> None:
    def program() -> dict[str, Any]:
        pulumi.runtime.invoke("test:index:getThing", {"n": 1})
        return {}

    answered = RecordingMocks("s", invokes={"test:index:getThing": lambda args, stack: {"v": args["n"]}})
    run = run_program("s", program, answered, preview=False)
    assert run.calls == [("test:index:getThing", {"n": 1})]
    with pytest.raises(Exception, match="no mock for provider function 'test:index:getThing'"):
        run_program("s", program, RecordingMocks("s"), preview=False)


def test_redact_keeps_the_shape_of_a_secret_and_names_unknowns() -> None:
    wrapped = pulumi.runtime.rpc.wrap_rpc_secret({"a": [1.0, "x"], "b": "y"})
    assert redact({"k": wrapped, "n": 2.0, "u": pulumi.runtime.rpc.UNKNOWN}) == {
        "k": {"a": [SECRET, SECRET], "b": SECRET},
        "n": 2,
        "u": UNKNOWN,
    }
