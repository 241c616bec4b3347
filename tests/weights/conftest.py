"""Fixtures for the weight-cache agent tests (helpers live in weights_support.py)."""

from __future__ import annotations

import os
import uuid

import pytest

from weights_support import CREDS, FaultProxy, cli, free_port, make_model


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log

    old = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _agent_env(monkeypatch, tmp_path):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "FLEETKIT_WEIGHTS_MAX_CACHE_BYTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.aws leaking in


@pytest.fixture
def s3(s3_endpoint):
    import boto3

    return boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3) -> str:
    name = f"weights-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxy(s3_endpoint):
    p = FaultProxy(s3_endpoint)
    yield p
    p.close()


@pytest.fixture
def published(tmp_path, bucket, s3_endpoint):
    """A small model published at s3://<bucket>/llm/rev-1 with 256 KiB chunks."""
    src = tmp_path / "src"
    files = make_model(src, {"model-00001-of-00002.safetensors": 1_500_000, "model-00002-of-00002.safetensors": 700_001,
                             "config.json": 321, "tokenizer/tokenizer.json": 40_000, "empty.txt": 0})
    r = cli("publish", src, f"s3://{bucket}/llm/rev-1", "--endpoint-url", s3_endpoint, "--chunk-size", "256Ki",
            "--quiet")
    assert r.rc == 0, r
    return {"source": f"s3://{bucket}/llm/rev-1", "files": files, "bucket": bucket, "prefix": "llm/rev-1",
            "size": sum(len(v) for v in files.values()), "src": src}
