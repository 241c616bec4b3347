"""Guardrails on workloads: model Deployments (probes, PDBs), credentials in plain config, the serving path.

Checks only (pure functions over :class:`~policies.crossguard.records.Resource` records); the rule
table in :mod:`policies.crossguard.rules` names, describes and runs them. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any

from .records import (
    GPU_RESOURCES,
    HELM_TYPES,
    MODEL_LABEL,
    SECRET,
    UNKNOWN,
    Resource,
    as_list,
    as_map,
    chart_name,
    dig,
    is_istio_kind,
    is_k8s,
    is_unknown,
    load_balancers,
    selector_matches,
)


# --------------------------------------------------------------------------- model Deployments
def _pod_spec(res: Resource) -> Mapping[str, Any]:
    return as_map(res.get("spec", "template", "spec"))


def _pod_labels(res: Resource) -> Mapping[str, str]:
    return as_map(res.get("spec", "template", "metadata", "labels"))


def _requests_gpu(container: Mapping[str, Any]) -> bool:
    res = as_map(container.get("resources"))
    return any(g in as_map(res.get(part)) for part in ("limits", "requests") for g in GPU_RESOURCES)


def is_model_deployment(res: Resource) -> bool:
    if not is_k8s(res, "apps/v1:Deployment"):
        return False
    containers = [c for c in as_list(_pod_spec(res).get("containers")) if isinstance(c, Mapping)]
    return MODEL_LABEL in _pod_labels(res) or any(_requests_gpu(c) for c in containers)


def check_model_probes(res: Resource) -> Iterator[str]:
    if not is_model_deployment(res):
        return
    containers = [c for c in as_list(_pod_spec(res).get("containers")) if isinstance(c, Mapping)]
    serving = [c for c in containers if _requests_gpu(c)] or containers[:1]
    for c in serving:
        missing = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            yield (
                f"model Deployment {res.ref}: container {c.get('name', '?')} has no {', '.join(missing)}: a "
                "loading or wedged vLLM server would take traffic or never be restarted"
            )


def check_model_pdb(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    pdbs = [
        r
        for r in resources
        if r.type.startswith("kubernetes:policy/") and r.type.endswith(":PodDisruptionBudget")
    ]
    for dep in resources:
        if not is_model_deployment(dep):
            continue
        labels = _pod_labels(dep)
        if any(
            p.namespace == dep.namespace
            and p.get("spec", "selector")
            and selector_matches(as_map(p.get("spec", "selector")), labels)
            for p in pdbs
        ):
            continue
        yield (
            dep,
            (
                f"model Deployment {dep.ref} has no PodDisruptionBudget selecting its pods: a node drain or "
                "upgrade can evict every replica at once"
            ),
        )


# --------------------------------------------------------------------------- secrets in plain config
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_CREDENTIAL_WORDS = {
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "token",
    "secret",
    "credential",
    "credentials",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
}
_CREDENTIAL_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("client", "secret"),
    ("auth", "key"),
    ("signing", "key"),
    ("encryption", "key"),
}
#: a key ending in one of these names *where* a credential is, not the credential itself
_REFERENCE_SUFFIXES = {
    "name",
    "names",
    "ref",
    "file",
    "path",
    "dir",
    "namespace",
    "enabled",
    "mount",
    "type",
    "ttl",
    "header",
    "length",
    "id",
    "ids",
    "key",
    "keys",
    "secret",
    "field",
    "env",
    "selector",
    "uri",
    "url",
    "audience",
    "audiences",
    "issuer",
    "provider",
}
_VALUE_PATTERNS = (
    (re.compile(r"\bA(KIA|SIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "a Hugging Face token"),
    (re.compile(r"\b(ghp|gho|ghs|ghu)_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"), "a GitHub token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "a Google API key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with an embedded password"),
)
#: ``vllm serve`` flags whose value is a credential: the kit's one list (``fleetkit.model_checks`` refuses
#: them in ``extra_args``; the rule below refuses them with a plain value). Checked against vLLM's own
#: parser table by tests/verify/test_vllm_args.py.
VLLM_SECRET_FLAGS = ("--api-key", "--hf-token")
_CREDENTIAL_FLAGS = re.compile(
    r"^--?("
    + "|".join(
        sorted(
            {f.lstrip("-") for f in VLLM_SECRET_FLAGS}
            | {"token", "password", "secret", "access-key", "secret-key"}
        )
    )
    + r")(=(?P<v>.*))?$"
)


def credential_key(key: str) -> bool:
    """``adminPassword``, ``HF_TOKEN``, ``api-key``: names of credentials; ``secretName``, ``existingSecret``,
    ``TOKEN_FILE``, ``passwordKey``: names of places that hold one (references, not credentials)."""
    words = [w.lower() for w in _WORD.findall(key.replace("-", "_"))]
    if not words or words[0] == "existing":
        return False
    pairs = set(pairwise(words))
    # ...Key is a credential only as api/access/secret/private key; ...Secret only as client secret or alone
    named_reference = words[-1] in _REFERENCE_SUFFIXES and words != ["secret"]
    if named_reference and (len(words) < 2 or (words[-2], words[-1]) not in _CREDENTIAL_PAIRS):
        return False
    return any(w in _CREDENTIAL_WORDS for w in words) or bool(pairs & _CREDENTIAL_PAIRS)


def _plain_text(value: Any) -> bool:
    """A non-empty string that is neither a Pulumi secret nor unknown nor a placeholder/reference."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v or v in (SECRET, UNKNOWN) or v.lower() in ("true", "false", "none", "null", "-"):
        return False
    return not (v.startswith("$(") and v.endswith(")"))  # Kubernetes env expansion of another variable


def _value_pattern(value: Any) -> str | None:
    if not isinstance(value, str) or value in (SECRET, UNKNOWN):
        return None
    for pattern, what in _VALUE_PATTERNS:
        if pattern.search(value):
            return what
    return None


def _scan(value: Any, path: str) -> Iterator[str]:
    """Credential-named keys with plain values, and credential-shaped values anywhere, in nested data."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and credential_key(k) and _plain_text(v):
                yield f"{sub} holds a plain value"
            else:
                yield from _scan(v, sub)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for i, v in enumerate(value):
            yield from _scan(v, f"{path}[{i}]")
    else:
        what = _value_pattern(value)
        if what:
            yield f"{path} looks like {what}"


_WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


def _containers(res: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = as_map(res.get("spec"))
    if res.kind == "CronJob":
        pod = dig(spec, "jobTemplate", "spec", "template", "spec", default={})
        base = "spec.jobTemplate.spec.template.spec"
    elif res.kind == "Pod":
        pod, base = spec, "spec"
    else:
        pod, base = dig(spec, "template", "spec", default={}), "spec.template.spec"
    for part in ("initContainers", "containers"):
        for i, c in enumerate(as_list(as_map(pod).get(part))):
            if isinstance(c, Mapping):
                yield f"{base}.{part}[{i}]", c


def _container_problems(c: Mapping[str, Any]) -> Iterator[str]:
    name = c.get("name", "?")
    for env in as_list(c.get("env")):
        if not isinstance(env, Mapping) or "value" not in env:
            continue
        ename, value = str(env.get("name", "")), env.get("value")
        if credential_key(ename) and _plain_text(value):
            yield (
                f"container {name}: env {ename} has a plain value; take it from a Secret "
                "(valueFrom.secretKeyRef) fed by a Pulumi secret"
            )
        elif what := _value_pattern(value):
            yield f"container {name}: env {ename} looks like {what}"
    args = [a for a in [*as_list(c.get("command")), *as_list(c.get("args"))] if isinstance(a, str)]
    for i, a in enumerate(args):
        m = _CREDENTIAL_FLAGS.match(a)
        if m:
            value = m.group("v") if m.group("v") is not None else (args[i + 1] if i + 1 < len(args) else "")
            if _plain_text(value):
                yield f"container {name}: argument {a.split('=')[0]} is given a plain value; pass it as $(ENV) from a Secret"
        elif what := _value_pattern(a):
            yield f"container {name}: an argument looks like {what}"


def check_secret_data(res: Resource) -> Iterator[str]:
    """A Kubernetes Secret whose data is not a Pulumi secret was written in plain text somewhere."""
    if not is_k8s(res, "core/v1:Secret"):
        return
    for part in ("data", "stringData"):
        value = res.get(part, default=None)
        if value is None or value == SECRET or is_unknown(value):
            continue
        plain = sorted(
            str(k) for k, v in as_map(value).items() if isinstance(v, str) and v not in (SECRET, UNKNOWN, "")
        )
        if plain:
            yield (
                f"Secret {res.ref}: {part} keys {', '.join(plain)} are not Pulumi secrets (they sit in plain text in "
                "config, code or state); build them from pulumi.Output.secret / `pulumi config set --secret`"
            )


def check_plain_credentials(res: Resource) -> Iterator[str]:
    if res.type.startswith("kubernetes:") and res.kind in _WORKLOAD_KINDS:
        for _, c in _containers(res):
            for p in _container_problems(c):
                yield f"{res.kind} {res.ref}: {p}"
    elif is_k8s(res, "core/v1:ConfigMap"):
        for p in _scan(as_map(res.get("data")), "data"):
            yield f"ConfigMap {res.ref}: {p}; credentials belong in a Secret fed by a Pulumi secret"
    elif res.type in HELM_TYPES:
        for p in _scan(as_map(res.get("values")), "values"):
            yield f"Helm release {res.name} ({chart_name(res) or '?'}): {p}; pass it as a Pulumi secret"


# --------------------------------------------------------------------------- serving path (issue 13)
#: headers named like a caller's identity; routing on one a client can send is a forgery hole
IDENTITY_HEADER = re.compile(r"(tier|cohort|canary|plan|tenant|role|group|priority|premium|beta)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: load-balancer idle timeout annotations (AWS LBC listener attributes, Azure cloud provider)
AWS_LISTENER_ATTRS = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes."
AZURE_IDLE = "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout"


def _seconds(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    parts = _DURATION.findall(value)
    return sum(float(n) * _SECONDS[u] for n, u in parts) if parts else None


def _stripped_headers(resources: Sequence[Resource]) -> set[str]:
    """Headers an ingress EnvoyFilter removes ahead of every other HTTP filter (INSERT_FIRST Lua)."""
    out: set[str] = set()
    for r in resources:
        if not is_istio_kind(r, "networking", "EnvoyFilter"):
            continue
        for patch in as_list(r.get("spec", "configPatches")):
            if dig(patch, "patch", "operation") == "INSERT_FIRST":
                code = str(
                    dig(
                        patch,
                        "patch",
                        "value",
                        "typed_config",
                        "default_source_code",
                        "inline_string",
                        default="",
                    )
                )
                out.update(re.findall(r'remove\("([^"]+)"\)', code))
    return out


def check_serving_routes(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    """VirtualService routes: identity headers must be edge-derived; per-try timeouts must not cut generation."""
    stripped = _stripped_headers(resources)
    for r in resources:
        if not is_istio_kind(r, "networking", "VirtualService"):
            continue
        for http in as_list(r.get("spec", "http")):
            name = dig(http, "name", default="?")
            for match in as_list(dig(http, "match")):
                for header in sorted(as_map(dig(match, "headers"))):
                    if IDENTITY_HEADER.search(header) and header not in stripped:
                        yield (
                            r,
                            (
                                f"VirtualService {r.ref} route {name} matches {header!r}, a header clients can "
                                "send: derive it at the edge from a verified claim and strip client copies"
                            ),
                        )
            timeout = _seconds(dig(http, "timeout"))
            per_try = _seconds(dig(http, "retries", "perTryTimeout"))
            if timeout and per_try and per_try < timeout and dig(http, "retries", "attempts", default=0):
                yield (
                    r,
                    (
                        f"VirtualService {r.ref} route {name}: perTryTimeout {dig(http, 'retries', 'perTryTimeout')} "
                        f"< timeout {dig(http, 'timeout')} ends a non-streaming generation early"
                    ),
                )


def check_lb_idle(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    """Gateway load balancers on AWS/Azure keep idle connections at least as long as the longest route."""
    longest = max(
        (
            _seconds(dig(h, "timeout")) or 0.0
            for r in resources
            if is_istio_kind(r, "networking", "VirtualService")
            for h in as_list(r.get("spec", "http"))
        ),
        default=0.0,
    )
    for exp in load_balancers(resources):
        ann = exp.annotations
        if any(is_unknown(v) for v in ann.values()):
            continue
        if any(k.startswith("service.beta.kubernetes.io/aws-load-balancer") for k in ann):
            idle = [
                float(m)
                for k, v in ann.items()
                if k.startswith(AWS_LISTENER_ATTRS)
                for m in re.findall(r"tcp\.idle_timeout\.seconds=(\d+)", str(v))
            ]
            have, default = (min(idle) if idle else 350.0), "AWS NLB default 350 s"
        elif any(k.startswith("service.beta.kubernetes.io/azure-load-balancer") for k in ann):
            have = float(ann[AZURE_IDLE]) * 60 if str(ann.get(AZURE_IDLE, "")).isdigit() else 240.0
            default = "Azure LB default 4 min"
        else:
            continue
        if have < longest:
            yield (
                exp.resource,
                (
                    f"{exp.what}: load-balancer idle timeout {have:g} s (or the {default}) is below "
                    f"the longest route timeout {longest:g} s; a silent generation would be cut"
                ),
            )
