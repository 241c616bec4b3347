"""Every rule has failing and passing cases under corpus/<RULE>-<slug>/{fail,pass}*.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.lint import RULES, lint_paths

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parent / "examples"


def _cases() -> list[tuple[str, Path, bool]]:
    cases = []
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        rule = folder.name.split("-", 1)[0]
        for file in sorted(folder.glob("*.yaml")):
            cases.append((rule, file, file.name.startswith("fail")))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("rule", "file", "should_fire"),
    CASES,
    ids=[f"{c[1].parent.name}/{c[1].name}" for c in CASES],
)
def test_corpus_case(rule: str, file: Path, should_fire: bool) -> None:
    findings = lint_paths([file])
    fired = [f for f in findings if f.rule == rule and f.suppressed is None]
    if should_fire:
        assert fired, f"{rule} expected in {file.name}, got {[(f.rule, f.message) for f in findings]}"
    else:
        assert not fired, f"{rule} unexpected in {file.name}: {[f.message for f in fired]}"


def test_every_rule_has_fail_and_pass_cases() -> None:
    folders = {p.name.split("-", 1)[0]: p for p in CORPUS.iterdir() if p.is_dir()}
    assert sorted(folders) == sorted(RULES)
    for rule_id, folder in folders.items():
        assert folder.name == f"{rule_id}-{RULES[rule_id].slug}"
        names = [f.name for f in folder.glob("*.yaml")]
        assert any(n.startswith("fail") for n in names), rule_id
        assert any(n.startswith("pass") for n in names), rule_id


def test_pass_cases_are_clean_of_errors() -> None:
    """Pass files show the right way; they must not trip any other error rule either."""
    for _, file, should_fire in CASES:
        if should_fire:
            continue
        errors = [f for f in lint_paths([file]) if f.severity == "error" and f.suppressed is None]
        assert not errors, (file.name, errors)


def test_healthy_mesh_has_no_findings() -> None:
    assert lint_paths([EXAMPLES / "good-mesh.yaml"]) == []


def test_whole_corpus_at_once_is_deterministic() -> None:
    first = lint_paths([CORPUS])
    assert first == lint_paths([CORPUS])
    assert len({f.rule for f in first}) == len(RULES)


def test_every_rule_is_documented_in_the_runbook() -> None:
    runbook = (Path(__file__).parents[2] / "runbooks" / "lint.md").read_text(encoding="utf-8")
    for rule in RULES.values():
        assert f"### {rule.id} {rule.slug}\n" in runbook, rule.id


def test_runbook_maps_every_rule_to_its_istioctl_code() -> None:
    runbook = (Path(__file__).parents[2] / "runbooks" / "lint.md").read_text(encoding="utf-8")
    for rule in RULES.values():
        row = next(
            (line for line in runbook.splitlines() if line.startswith(f"| {rule.id} | {rule.slug} |")), None
        )
        assert row is not None, rule.id
        assert (
            (rule.ist or "LLM-specific") in row or "fleetkit-only" in row or rule.id in ("FK001", "FK301")
        ), row


def test_findings_carry_the_istioctl_code() -> None:
    [finding] = [
        f for f in lint_paths([CORPUS / "FK113-host-not-in-gateway" / "fail.yaml"]) if f.rule == "FK113"
    ]
    assert finding.ist == "IST0132" and finding.label == "FK113 (IST0132)"
    assert "not found in Gateway istio-system/public." in finding.message


def test_sarif_keeps_the_rule_id_and_the_istioctl_code() -> None:
    import json

    from fleetkit.lint.formats import render_sarif

    findings = lint_paths([CORPUS / "FK113-host-not-in-gateway" / "fail.yaml"])
    run = json.loads(render_sarif(findings, notes=["x: y"]))["runs"][0]
    [result] = [r for r in run["results"] if r["ruleId"] == "FK113"]
    assert result["properties"]["istioctlCode"] == "IST0132"
    assert result["message"]["text"].startswith("FK113 (IST0132): ")
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "FK113")
    assert rule["properties"]["istioctlCode"] == "IST0132"
    assert run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"] == "not checked: x: y"
