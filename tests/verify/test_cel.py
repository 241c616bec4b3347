"""CRD x-kubernetes-validations rules on rendered custom resources, with the real CEL engine."""

from __future__ import annotations

import copy

import pytest

from fleetkit.verify import cel, finding_line


def _dr(manifests):
    return next(
        o
        for o in manifests
        if o["kind"] == "DestinationRule" and o["spec"].get("trafficPolicy", {}).get("connectionPool")
    )


def test_every_rendered_custom_resource_passes_its_crd_rules(demo_preview) -> None:
    total = 0
    for name, res in demo_preview.items():
        verdict = cel.verify(res.manifests())
        assert verdict.status in ("pass", "skipped"), (name, [finding_line(f) for f in verdict.findings])
        assert "NOT checked" not in verdict.summary
        total += verdict.count
    assert total > 200


def test_a_cr_violating_a_cel_rule_fails_with_the_crds_message(demo_preview) -> None:
    objs = copy.deepcopy(demo_preview["aws-us-east-1"].manifests())
    dr = _dr(objs)
    dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] = "0s"
    verdict = cel.verify(objs)
    [hit] = [f for f in verdict.findings if f.rule == cel.RULE_FAILED]
    assert verdict.failed and hit.where == "spec.trafficPolicy.connectionPool.tcp.connectTimeout"
    assert hit.message == "must be a valid duration greater than 1ms"


def test_an_evaluation_error_rejects_the_object(demo_preview) -> None:
    objs = copy.deepcopy(demo_preview["aws-us-east-1"].manifests())
    _dr(objs)["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] = "soon"
    verdict = cel.verify(objs)
    assert verdict.failed and [f.rule for f in verdict.findings] == [cel.RULE_ERROR]


def _fake_crd(monkeypatch, rules: list[dict]) -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": rules}}}
    monkeypatch.setattr(cel, "crd_schema", lambda api, kind: schema)


def test_functions_the_engine_lacks_are_not_checked_never_passed(monkeypatch) -> None:
    _fake_crd(monkeypatch, [{"rule": "quantity(self.size).isGreaterThan(quantity('1Gi'))"}])
    verdict = cel.verify(
        [{"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"size": "2Gi"}}]
    )
    assert verdict.status == "pass" and verdict.count == 0 and "1 NOT checked" in verdict.summary
    assert [f.rule for f in verdict.findings] == [cel.RULE_NOT_CHECKED] and "quantity" in verdict.findings[
        0
    ].message


def test_transition_rules_are_not_evaluated_on_create(monkeypatch) -> None:
    _fake_crd(monkeypatch, [{"rule": "self == oldSelf", "message": "immutable"}, {"rule": "has(self.a)"}])
    verdict = cel.verify([{"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"a": 1}}])
    assert verdict.status == "pass" and verdict.count == 1 and "1 transition rules" in verdict.summary


def test_message_expression_is_used(monkeypatch) -> None:
    _fake_crd(monkeypatch, [{"rule": "self.n < 3", "messageExpression": "'n is ' + string(self.n)"}])
    verdict = cel.verify([{"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"n": 5}}])
    assert verdict.findings[0].message == "n is 5"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://example.com/jwks.json", True),
        ("/abs/path", True),
        ("oci://reg/x", True),
        ("relative/path", False),
        ("http://a b", False),
        ("http://host:99999999999/", False),
        ("", False),
        ("http://x/%zz", False),
    ],
)
def test_is_url(value: str, ok: bool) -> None:
    assert cel.is_url(value) is ok
    assert cel.evaluate("isURL(self)", value) is ok


def test_url_get_scheme_and_errors() -> None:
    assert cel.evaluate('url(self).getScheme() in ["http", "https"]', "https://x") is True
    assert cel.evaluate("url(self).getScheme()", "/p") == ""
    with pytest.raises(RuntimeError):
        cel.evaluate("url(self).getScheme()", "not a url")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.0.0.1", True),
        ("::1", True),
        ("2001:db8::1", True),
        ("example.com", False),
        ("010.0.0.1", False),
        ("fe80::1%eth0", False),
        ("10.0.0.0/8", False),
    ],
)
def test_is_ip(value: str, ok: bool) -> None:
    assert cel.evaluate("isIP(self)", value) is ok


def test_strings_extension() -> None:
    assert cel.evaluate("self.substring(2)", "*.example.com") == "example.com"
    assert cel.evaluate("self.substring(7, 8)", "unix:///run/x.sock") == "/"
    assert cel.evaluate('self.split("/")[0]', "a/b/c") == "a"
    with pytest.raises(RuntimeError):
        cel.evaluate("self.substring(9)", "short")


def test_missing_functions_ignores_string_literals() -> None:
    assert cel.missing_functions("self.all(h, !isIP(h)) && self.x == 'quantity(1)'") == []
    assert cel.missing_functions("format.named('x')") == ["named"]
