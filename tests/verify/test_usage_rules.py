"""The usage recording rules evaluated by the real promtool (``promtool test rules``).

Synthetic series shaped like what Prometheus scrapes — the collector's token counters and the
gateway's ``istio_requests_total`` with the usage labels — go in; the recorded per-tenant rates must
come out (format: https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fleetkit.verify import promtool
from policies.telemetry import usage_recording_rules

pytestmark = pytest.mark.skipif(
    promtool.promtool_path() is None,
    reason="REAL CHECK NOT RUN: promtool is not installed (apt-get install --no-install-recommends prometheus)",
)

ACME = 'fleetkit_tenant="acme",fleetkit_model="llama-3-70b",fleetkit_tier="premium"'
OTHER = 'fleetkit_tenant="-",fleetkit_model="llama-3-8b",fleetkit_tier="standard"'


def test_usage_rules_record_per_tenant_rates(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "fleetkit-usage", "rules": usage_recording_rules()}]})
    )
    series = [
        # acme: 600 prompt tokens a minute (10/s), 1200 completion tokens a minute (20/s), on two
        # collector instances whose series add up
        {"series": f'fleetkit_gateway_prompt_tokens_total{{{ACME},instance="a"}}', "values": "0+300x10"},
        {"series": f'fleetkit_gateway_prompt_tokens_total{{{ACME},instance="b"}}', "values": "0+300x10"},
        {"series": f'fleetkit_gateway_completion_tokens_total{{{ACME},instance="a"}}', "values": "0+1200x10"},
        {"series": f'fleetkit_gateway_prompt_tokens_total{{{OTHER},instance="a"}}', "values": "0+60x10"},
        # requests: the gateway's own series count; the model pods' (destination) and "unknown" do not
        {
            "series": f'istio_requests_total{{{ACME},reporter="source",response_code="200"}}',
            "values": "0+120x10",
        },
        {
            "series": f'istio_requests_total{{{ACME},reporter="destination",response_code="200"}}',
            "values": "0+999x10",
        },
        {
            "series": 'istio_requests_total{fleetkit_tenant="unknown",fleetkit_model="unknown",'
            'fleetkit_tier="unknown",reporter="source"}',
            "values": "0+999x10",
        },
    ]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "fleetkit:gateway_prompt_tokens:rate5m",
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": f"fleetkit:gateway_prompt_tokens:rate5m{{{ACME}}}", "value": 10}
                        ]
                        + [{"labels": f"fleetkit:gateway_prompt_tokens:rate5m{{{OTHER}}}", "value": 1}],
                    },
                    {
                        "expr": "fleetkit:gateway_completion_tokens:rate5m",
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": f"fleetkit:gateway_completion_tokens:rate5m{{{ACME}}}", "value": 20}
                        ],
                    },
                    {
                        "expr": "fleetkit:gateway_requests:rate5m",
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": f"fleetkit:gateway_requests:rate5m{{{ACME}}}", "value": 2}
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    exe = promtool.promtool_path()
    assert exe is not None
    done = subprocess.run(
        [exe, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lint = subprocess.run(
        [exe, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
