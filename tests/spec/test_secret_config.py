"""Secret config never becomes a setting and is never quoted: credentials live under ``fleetkit-secrets:``.

The engine hands the program secret config decrypted; whatever the program prints (a problem's
``got …``) lands in the ``up`` log. These tests put a recognisable token in a secret and check it
appears nowhere — problems, messages, resources, outputs.
"""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.preview import preview_fleet
from fleetkit.preview import stack as preview_stack
from fleetkit.spec import AdoptCluster, TerraformFoundation

TOKEN = "apiVersion: v1 users: [{user: {token: TOKEN-s3cr3t-0042}}]"
STACK = "aws-us-east-1"


def _edit_stack(project, stack, edit):
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_engine_secret_under_fleetkit_namespace_is_refused_by_key_only(project_root, monkeypatch):
    """`pulumi config set --secret fleetkit:adoptKubeconfig …`: the engine passes it decrypted."""
    real = preview_stack.config_for

    def with_secret(root, stack, sets):
        cfg, secret_keys = real(root, stack, sets)
        return {**cfg, "fleetkit:adoptKubeconfig": TOKEN}, [*secret_keys, "fleetkit:adoptKubeconfig"]

    monkeypatch.setattr(preview_stack, "config_for", with_secret)
    with pytest.raises(SpecError) as err:
        preview_stack.run_stack(project_root, STACK, {})
    text = err.value.render()
    assert "TOKEN-s3cr3t" not in text and "apiVersion" not in text
    assert "config.secret-in-spec-namespace" in text and "[secret]" in text
    assert "fleetkit-secrets:adoptKubeconfig" in text


def test_stack_file_secret_under_fleetkit_namespace_is_refused_without_ciphertext(tmp_project):
    _edit_stack(
        tmp_project, STACK, lambda c: c.update({"fleetkit:adoptKubeconfig": {"secure": "v1:CIPHERTEXT=="}})
    )
    with pytest.raises(SpecError) as err:
        load_fleet(tmp_project)
    (problem,) = err.value.problems
    assert problem.rule == "config.secret-in-spec-namespace"
    assert problem.where == "config.fleetkit:adoptKubeconfig"
    assert "CIPHERTEXT" not in err.value.render() and "(got [secret])" in err.value.render()
    assert problem.to_dict()["value"] == "[secret]"


@pytest.mark.parametrize("key", ["fleetkit:adoptKubeconfig"])
def test_credential_keys_are_refused_in_the_spec_namespace(key):
    with pytest.raises(ValidationError, match="fleetkit-secrets:adoptKubeconfig"):
        AdoptCluster(kubeconfig_secret=key)
    with pytest.raises(ValidationError, match="fleetkit-secrets"):
        TerraformFoundation(
            backend="remote", config={"organization": "acme"}, secret_config={"token": "fleetkit:tfe"}
        )
    assert AdoptCluster(kubeconfig_secret="adoptKubeconfig").kubeconfig_secret == "adoptKubeconfig"


def test_adopted_kubeconfig_secret_stays_secret_end_to_end(tmp_project):
    def adopt(c):
        c["fleetkit:cluster"] = {
            "name": "fleetkit-use1",
            "adopt": {"kubernetes_version": "1.33", "kubeconfig_secret": "adoptKubeconfig"},
        }
        c["fleetkit-secrets:adoptKubeconfig"] = {"secure": "v1:CIPHERTEXT=="}

    _edit_stack(tmp_project, STACK, adopt)
    fleet = load_fleet(tmp_project, only=[STACK])
    res = preview_fleet(fleet, only=[STACK], jobs=1)[STACK]
    provider = next(r for r in res.resources if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    written = json.dumps([res.resources_json(), res.public_outputs(), res.messages, res.manifests()])
    assert "preview-secret-placeholder" not in written and "CIPHERTEXT" not in written
    assert "kubeconfig" not in res.outputs  # no kubeconfig is a stack output
